"""`8here-emulator proxy`, proved on emulators: in front of a clean one every exchange is `ok` and
every answer is the target's, byte for byte; in front of an altering proxy
(`tests/drift_proxy.py`) each alteration is one group with the right place and count.

The target is an emulator served from a thread and wrapped in `Captured`, which keeps each answer
as the target sent it (and each request as it arrived), so a test can compare what the client got
through the proxy with what the target said, and count what reached the target.
"""

from __future__ import annotations

import gzip
import json
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import (
    CONTROL,
    LINKS_PATH,
    SANDBOX_CLIENT_ID,
    SANDBOX_SECRET,
    TOKEN_PATH,
    assert_error,
    bearer,
    register_app,
    token_for,
)
from drift_proxy import (
    Alteration,
    AlteringProxy,
    bad_parameter_status,
    drop_header,
    rename_field,
    stringify_field,
)
from starlette.types import Message, Receive, Scope, Send

from emulator.app import create_app
from emulator.proxy.app import create_proxy_app
from emulator.settings import Settings
from emulator.store import LinkQuery
from emulator.testing import ThreadedServer

FAST = ("proxy_fast", "proxy_fast_secret")
DEMO = (SANDBOX_CLIENT_ID, SANDBOX_SECRET)
SLOW = ("proxy_slow", "proxy_slow_secret")  # one request a minute
LIVE = ("proxy_live", "proxy_live_secret")
CHECK = "x-emulator-check"


@dataclass
class Seen:
    """One request as the target received it, and its answer as the target sent it."""

    method: str
    raw_path: bytes
    query: bytes
    body: bytes = b""
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    answer: bytes = b""

    @property
    def request_id(self) -> str:
        return dict(self.headers)[b"x-request-id"].decode()


class Captured:
    """An ASGI wrapper that keeps every API exchange of the app it wraps."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[Seen] = []

    def api(self) -> list[Seen]:
        return [s for s in self.seen if s.raw_path.startswith(b"/api/")]

    def by_id(self, request_id: str) -> Seen:
        (found,) = [s for s in self.seen if s.request_id == request_id]
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen = Seen(scope["method"], scope["raw_path"], scope["query_string"])

        async def receive_kept() -> Message:
            message = await receive()
            seen.body += message.get("body", b"")
            return message

        async def send_kept(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen.status = message["status"]
                seen.headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
            else:
                seen.answer += message.get("body", b"")
            await send(message)

        await self.app(scope, receive_kept, send_kept)
        self.seen.append(seen)


@pytest.fixture(scope="module")
def target() -> Iterator[tuple[str, Captured]]:
    """An emulator as the target, with a fast, a slow and a live application of its own (the
    proxy's emulator does not know them)."""
    captured = Captured(create_app(Settings()))
    with ThreadedServer(captured, name="proxy-target", date_header=False) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            register_app(client, *FAST)
            register_app(client, *SLOW, rate_limit=1)
            register_app(client, *LIVE, environment="live", workspace_id="ws_proxy_live")
        yield server.url, captured


@contextmanager
def proxying(target_url: str, **options: Any) -> Iterator[tuple[httpx.Client, Any]]:
    """A proxy in front of `target_url`, served from a thread: a client of it, and its app."""
    settings = options.pop("settings", Settings())
    app = create_proxy_app(settings, target_url, **options)
    with (
        ThreadedServer(app, name="proxy", date_header=False) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield client, app


def checks(client: httpx.Client) -> dict[str, Any]:
    response = client.get(f"{CONTROL}/checks")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def entry_of(response: httpx.Response) -> int:
    """The journal sequence that `X-Emulator-Check: differences=N; entry=SEQ` names."""
    value = response.headers[CHECK]
    return int(value.rsplit("entry=", 1)[1])


def _same_answer(response: httpx.Response, seen: Seen) -> None:
    """The client got the target's answer: status, headers (X-Emulator-Check aside), bytes."""
    assert response.status_code == seen.status
    got = [(k.lower(), v) for k, v in response.headers.raw if k.lower() != CHECK.encode()]
    assert got == [(k.lower(), v) for k, v in seen.headers]
    assert response.content == seen.answer


# -- a clean target -------------------------------------------------------------------------


def _exchanges(client: httpx.Client) -> list[httpx.Response]:
    """The seed's calls and the other answers a client meets: errors, filters, a detail."""
    sent = [client.post(TOKEN_PATH, json={"clientId": FAST[0], "clientSecret": FAST[1]})]
    auth = bearer(sent[0].json()["accessToken"])
    seed_list = "?limit=25&offset=0&sortBy=updatedAt&sortOrder=desc&q=launch&hasVisits=true"
    sent.append(client.get(LINKS_PATH + seed_list, headers=auth))
    for query in (
        "",
        "?sortBy=clicks&sortOrder=asc&limit=10",
        "?sortBy=title&hasVisits=false&offset=20",
        "?q=https&limit=100",
        "?offset=100000",
        "?limit=0",
        "?limit=abc",
        "?hasVisits=maybe",
        "?sortBy=nothing",
    ):
        sent.append(client.get(LINKS_PATH + query, headers=auth))
    listed = sent[2].json()["data"][0]["id"]
    sent.append(client.get(f"{LINKS_PATH}/{listed}", headers=auth))
    sent.append(client.get(f"{LINKS_PATH}/lnk_not_there", headers=auth))
    link = {"title": "Launch page", "destination": "https://8here.in/launch"}
    sent.append(client.post(LINKS_PATH, json={**link, "slug": "launch-page"}, headers=auth))
    created = client.post(LINKS_PATH, json=link, headers=auth)
    sent.append(created)
    sent.append(client.get(f"{LINKS_PATH}/{created.json()['id']}", headers=auth))
    sent.append(client.post(LINKS_PATH, json={"title": "No destination"}, headers=auth))
    sent.append(client.post(LINKS_PATH, json={"title": 5, "destination": "x"}, headers=auth))
    sent.append(
        client.post(LINKS_PATH, content=b"{}", headers={**auth, "Content-Type": "text/plain"})
    )
    sent.append(client.get(LINKS_PATH))
    sent.append(client.get(LINKS_PATH, headers=bearer("not-a-token")))
    sent.append(client.post(TOKEN_PATH, json={"clientId": FAST[0], "clientSecret": "wrong"}))
    sent.append(client.post(TOKEN_PATH, json={"clientId": FAST[0]}))
    sent.append(client.post(TOKEN_PATH, content=b"not json", headers={"Content-Type": "x/y"}))
    sent.append(client.get("/api/not-an-endpoint"))
    return sent


def test_in_front_of_a_clean_emulator_every_exchange_is_ok_and_every_answer_the_targets(
    target: tuple[str, Captured],
) -> None:
    url, captured = target
    before = len(captured.api())
    with proxying(url) as (client, _):
        sent = _exchanges(client)
        found = checks(client)
    assert {r.headers[CHECK] for r in sent} == {"ok"}, [
        (r.request.url, r.headers[CHECK]) for r in sent if r.headers[CHECK] != "ok"
    ]
    for response in sent:
        _same_answer(response, captured.by_id(response.headers["x-request-id"]))
    assert found["exchanges"] == len(sent)
    assert (found["withDifferences"], found["groups"]) == (0, [])
    # Only the client's requests reached the target: the shadow answers never go there.
    assert len(captured.api()) - before == len(sent)


def test_the_request_reaches_the_target_as_the_client_sent_it(
    target: tuple[str, Captured],
) -> None:
    url, captured = target
    with proxying(url) as (client, _):
        token = token_for(client, *FAST)
        raw = b"/api/api-applications/public/links/lnk%5Fodd%2Fid/../x?q=a%20b&q=c&limit=5"
        request = client.build_request(
            "GET", LINKS_PATH, headers=bearer(token), extensions={"target": raw}
        )
        response = client.send(request)
    seen = captured.by_id(response.headers["x-request-id"])
    assert seen.raw_path == b"/api/api-applications/public/links/lnk%5Fodd%2Fid/../x"
    assert seen.query == b"q=a%20b&q=c&limit=5"
    _same_answer(response, seen)


# -- altering targets -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alteration", "queries", "kind", "location"),
    [
        (
            rename_field("hasVisits", "visited"),
            ["", "?limit=5", "?sortBy=title", "?q=https"],
            "renamed",
            "body $.data[*].hasVisits → visited",
        ),
        (
            stringify_field("clicks"),
            ["", "?limit=5", "?sortBy=clicks", "?hasVisits=true"],
            "type",
            "body $.data[*].clicks",
        ),
        (
            drop_header("X-RateLimit-Remaining"),
            ["", "?limit=5", "?offset=3"],
            "header-presence",
            "header X-RateLimit-Remaining",
        ),
        (
            bad_parameter_status("limit", 422),
            ["?limit=0", "?limit=101", "?limit=abc", "?limit=-1"],
            "status",
            "status",
        ),
    ],
    ids=["renamed-field", "changed-type", "missing-rate-limit-header", "status-of-bad-parameter"],
)
def test_each_alteration_is_one_group_with_its_place_and_count(
    target: tuple[str, Captured],
    alteration: Alteration,
    queries: list[str],
    kind: str,
    location: str,
) -> None:
    url, _ = target
    with AlteringProxy(url, alteration) as altering, proxying(altering.url) as (client, _):
        auth = bearer(token_for(client, *FAST))
        sent = [client.get(LINKS_PATH + query, headers=auth) for query in queries]
        found = checks(client)
    assert [r.headers[CHECK].split(";")[0] for r in sent] == ["differences=1"] * len(sent)
    entries = [entry_of(r) for r in sent]
    (group,) = found["groups"]
    assert (group["operation"], group["kind"], group["location"]) == ("listLinks", kind, location)
    assert group["count"] == len(sent)
    assert (group["first"], group["last"]) == (entries[0], entries[-1])
    assert group["entries"] == entries
    assert found["withDifferences"] == len(sent)
    assert found["exchanges"] == len(sent) + 1  # and the token exchange, ok


def test_many_identical_differences_are_one_group_with_a_count(
    target: tuple[str, Captured],
) -> None:
    url, _ = target
    rename = rename_field("hasVisits", "visited")
    with AlteringProxy(url, rename) as altering, proxying(altering.url) as (client, _):
        auth = bearer(token_for(client, *FAST))
        for offset in range(500):
            client.get(f"{LINKS_PATH}?limit=3&offset={offset % 200}", headers=auth)
        found = checks(client)
        entry = client.get(f"{CONTROL}/requests/{found['groups'][0]['first']}").json()
    (group,) = found["groups"]
    assert group["count"] == 500
    assert group["location"] == "body $.data[*].hasVisits → visited"
    assert len(group["entries"]) < 500  # bounded: the count is exact, the list is not all
    example = group["example"]
    assert (example["emulator"], example["target"]) == ("hasVisits: boolean", "visited: boolean")
    assert example["contractAgreesWith"] == "emulator"
    assert "hasVisits" in example["detail"] and "visited" in example["detail"]
    # The journal entry holds the target's answer, the emulator's and the contract's verdict.
    check = entry["check"]
    assert check["verdict"] == "differences"
    assert check["found"][0]["location"] == group["location"]
    assert check["emulator"]["status"] == 200 and '"hasVisits"' in check["emulator"]["body"]
    assert '"visited"' in entry["response"]["body"]
    problems = {(p["kind"], p["location"]) for p in check["response"]["problems"]}
    assert ("missing-field", "body $.data[*].hasVisits") in problems
    assert ("undocumented-field", "body $.data[*].visited") in problems
    assert check["request"]["conforms"] is True


# -- the target's own errors, and none at all -------------------------------------------------


def test_the_targets_429_and_5xx_reach_the_client_unchanged(
    target: tuple[str, Captured],
) -> None:
    url, captured = target
    with proxying(url) as (client, _):
        auth = bearer(token_for(client, *SLOW))
        first = client.get(LINKS_PATH, headers=auth)
        limited = client.get(LINKS_PATH, headers=auth)
        fault = {"path": f"{LINKS_PATH}*", "status": 503, "times": 1}
        assert httpx.post(f"{url}{CONTROL}/faults", json=fault).status_code == 201
        failed = client.get(LINKS_PATH, headers=bearer(token_for(client, *FAST)))
    assert first.status_code == 200
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    _same_answer(limited, captured.by_id(limited.headers["x-request-id"]))
    assert limited.headers[CHECK] == "ok"  # a 429 as the contract has it
    assert failed.status_code == 503
    _same_answer(failed, captured.by_id(failed.headers["x-request-id"]))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_target_is_the_proxys_own_502() -> None:
    with proxying(f"http://127.0.0.1:{_closed_port()}") as (client, _):
        response = client.get(LINKS_PATH, headers=bearer("anything"))
        entry = client.get(f"{CONTROL}/requests/{entry_of(response)}").json()
        found = checks(client)
    error = assert_error(response, 502, "upstream_unreachable")
    assert "proxy" in error["message"]
    assert response.headers[CHECK].startswith("proxy-answer; entry=")
    assert entry["status"] == 502 and entry["check"]["verdict"] == "proxy-answer"
    assert found["exchanges"] == 0


def test_a_slow_target_is_the_proxys_own_504(target: tuple[str, Captured]) -> None:
    url, _ = target
    fault = {"path": f"{LINKS_PATH}*", "delayMs": 3000, "times": 1}
    assert httpx.post(f"{url}{CONTROL}/faults", json=fault).status_code == 201
    with proxying(url, timeout=0.5) as (client, _):
        response = client.get(LINKS_PATH, headers=bearer("anything"))
    assert_error(response, 504, "upstream_timeout")
    assert response.headers[CHECK].startswith("proxy-answer; entry=")


# -- state, bounds, encodings -------------------------------------------------------------------


def test_a_forwarded_live_create_changes_nothing_in_the_proxys_emulator(
    target: tuple[str, Captured],
) -> None:
    url, captured = target
    before = len(captured.api())
    with proxying(url) as (client, app):
        auth = bearer(token_for(client, *LIVE))
        created = client.post(
            LINKS_PATH,
            json={"title": "Through the proxy", "destination": "https://example.com/p"},
            headers=auth,
        )
        detail = client.get(created.headers["location"], headers=auth)
        listed = client.get(LINKS_PATH, headers=auth)
        state = app.state.emulator
        assert state.live.total() == 0
    assert created.status_code == 201 and created.json()["persisted"] is True
    assert [created.headers[CHECK], detail.headers[CHECK], listed.headers[CHECK]] == ["ok"] * 3
    assert detail.json()["id"] == created.json()["id"]
    assert len(captured.api()) - before == 4


def test_bodies_over_the_bound_pass_through_unchecked(target: tuple[str, Captured]) -> None:
    url, captured = target
    with proxying(url, body_bytes=1024) as (client, _):
        auth = bearer(token_for(client, *FAST))
        page = client.get(f"{LINKS_PATH}?limit=20", headers=auth)
        long_title = "x" * 5000
        created = client.post(
            LINKS_PATH,
            json={"title": long_title, "destination": "https://example.com/long"},
            headers=auth,
        )
    assert page.headers[CHECK] == "unchecked"
    assert len(page.json()["data"]) == 20
    assert page.content == captured.by_id(page.headers["x-request-id"]).answer
    seen = captured.by_id(created.headers["x-request-id"])
    assert json.loads(seen.body)["title"] == long_title  # the whole body reached the target
    assert_error(created, 422, "validation_failed", "title")


def _gzip_target(body: dict[str, Any]) -> Callable[[Scope, Receive, Send], Any]:
    """A target that answers every request with `body`, gzipped."""
    payload = gzip.compress(json.dumps(body).encode())

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = [
            (b"content-type", b"application/json"),
            (b"content-encoding", b"gzip"),
            (b"content-length", str(len(payload)).encode()),
            (b"x-request-id", b"req_gzip"),
        ]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    return app


def test_a_compressed_answer_is_passed_on_compressed_and_checked_decompressed(
    tmp_path: Path,
) -> None:
    error = {"error": {"code": "missing_token", "message": "Send your credentials."}}
    record = tmp_path / "gzip.jsonl"
    with (
        ThreadedServer(_gzip_target(error), name="gzip-target") as gzip_target,
        proxying(gzip_target.url, record=record) as (client, _),
    ):
        response = client.get(LINKS_PATH, headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.json() == error  # httpx decompressed what came compressed
    # WWW-Authenticate is missing: a difference found in the decompressed body's answer.
    assert response.headers[CHECK].startswith("differences=1;")
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert lines[1]["response"]["body"] == error


def test_checks_clear_and_are_guarded_like_the_control_api(target: tuple[str, Captured]) -> None:
    url, _ = target
    settings = Settings(control_token="proxy-control-token")
    with (
        AlteringProxy(url, drop_header("X-RateLimit-Limit")) as altering,
        proxying(altering.url, settings=settings) as (client, _),
    ):
        auth = bearer(token_for(client, *FAST))
        client.get(LINKS_PATH, headers=auth)
        assert_error(client.get(f"{CONTROL}/checks"), 401, "control_unauthorized")
        guard = bearer("proxy-control-token")
        assert len(client.get(f"{CONTROL}/checks", headers=guard).json()["groups"]) == 1
        assert client.delete(f"{CONTROL}/checks", headers=guard).status_code == 204
        cleared = client.get(f"{CONTROL}/checks", headers=guard).json()
    assert (cleared["groups"], cleared["exchanges"]) == ([], 0)


def test_serve_has_no_checks(client: Any) -> None:
    found = client.get(f"{CONTROL}/checks").json()
    assert (found["target"], found["groups"], found["exchanges"]) == (None, [], 0)


def test_the_seed_credentials_work_through_the_proxy(target: tuple[str, Captured]) -> None:
    url, _ = target
    with proxying(url) as (client, _):
        token = token_for(client, SANDBOX_CLIENT_ID, SANDBOX_SECRET)
        response = client.get(LINKS_PATH, headers=bearer(token))
    assert response.status_code == 200 and response.headers[CHECK] == "ok"


# -- what the emulator cannot know, matched to the target's answer ------------------------------


def test_the_targets_data_and_tokens_are_matched_not_reported() -> None:
    """A proxy whose emulator has another sample set and knows none of the target's tokens: an
    expired token, a link only the target has, a link only the emulator has, a slug the target
    has taken, a workspace without API access and a wrong secret are all `ok`."""
    with (
        ThreadedServer(create_app(Settings()), name="matched-target", date_header=False) as target,
        httpx.Client(base_url=target.url, timeout=10) as direct,
        proxying(target.url, settings=Settings(sandbox_size=50)) as (client, app),
    ):
        register_app(direct, *LIVE, environment="live", workspace_id="ws_proxy_live")
        sandbox = bearer(token_for(client, *DEMO))
        listed = client.get(LINKS_PATH, headers=sandbox)
        theirs = client.get(f"{LINKS_PATH}/{listed.json()['data'][0]['id']}", headers=sandbox)
        ours_id = app.state.emulator.sandbox.query(LinkQuery(limit=1)).items[0].id
        ours = client.get(f"{LINKS_PATH}/{ours_id}", headers=sandbox)
        live = bearer(token_for(client, *LIVE))
        body = {"title": "Taken", "destination": "https://example.com/t", "slug": "proxy-taken"}
        first = client.post(LINKS_PATH, json=body, headers=live)
        taken = client.post(LINKS_PATH, json=body, headers=live)
        disabled = client.post(
            TOKEN_PATH,
            json={"clientId": "lv_demo_disabled", "clientSecret": "lvs_demo_disabled_secret"},
        )
        wrong = client.post(
            TOKEN_PATH, json={"clientId": SANDBOX_CLIENT_ID, "clientSecret": "not it"}
        )
        expired_token = bearer(token_for(client))
        assert direct.post(f"{CONTROL}/clock", json={"advanceSeconds": 3601}).status_code == 200
        expired = client.get(LINKS_PATH, headers=expired_token)
    statuses = [r.status_code for r in (theirs, ours, first, taken, disabled, wrong, expired)]
    assert statuses == [200, 404, 201, 409, 403, 401, 401]
    assert expired.json()["error"]["code"] == "token_expired"
    sent = (listed, theirs, ours, first, taken, disabled, wrong, expired)
    assert [r.headers[CHECK] for r in sent] == ["ok"] * len(sent)


def test_a_throwaway_copy_has_all_a_state_has_and_changes_none_of_it() -> None:
    from emulator.state import EmulatorState

    state = EmulatorState(Settings())
    copy = state.throwaway_copy()
    try:
        assert set(vars(copy)) == set(vars(state))
        shared = {name for name in vars(state) if getattr(copy, name) is getattr(state, name)}
        # Only what no API request changes is shared (scenarios are compiled, frozen values).
        assert shared == {
            "settings",
            "sandbox",
            "rendered",
            "registry",
            "_warm_lock",
            "_warm",
            "start_scenario",
            "scenario",
        }
    finally:
        copy.close()
        state.close()


def test_the_readmes_worked_example_is_what_the_proxy_says(
    target: tuple[str, Captured], tmp_path: Path
) -> None:
    """The README's `/_emulator/checks` example, from the same four calls (a token, three pages
    of two with `hasVisits` renamed `visited`), as the proxy answers it."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Proxy: the real API, checked request by request", 1)[1]
    shown = json.loads(section.split("```json\n", 1)[1].split("```", 1)[0])
    url, _ = target
    record = tmp_path / "exchanges.jsonl"
    with (
        AlteringProxy(url, rename_field("hasVisits", "visited")) as altering,
        proxying(altering.url, record=record) as (client, _),
    ):
        auth = bearer(token_for(client, *FAST))
        for _ in range(3):
            last = client.get(f"{LINKS_PATH}?limit=2", headers=auth)
        found = checks(client)
    assert last.headers[CHECK] == "differences=1; entry=4"
    assert found["target"] == altering.url and found["recording"]["file"] == str(record)
    found["target"], found["recording"]["file"] = shown["target"], shown["recording"]["file"]
    assert found == shown
