"""The request layer (emulator/middleware.py): request ids, CORS, the control API's guard, the
journal's timing and fields, injected faults and the rate-limit headers it puts on answers.

Most go through Starlette's TestClient; the journal's timing is read from inside the ASGI `send`,
where a client would first see the status."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from conftest import (
    CONTROL,
    JSON,
    LINKS_PATH,
    TESTCLIENT_HOST,
    TOKEN_PATH,
    assert_error,
    auth_headers,
    client_settings,
    emulator_client,
)
from starlette.testclient import TestClient

from emulator.app import create_app
from emulator.request_ids import id_source, new_request_id
from emulator.settings import Settings

ORIGIN = "http://localhost:3000"
NEW_ID = re.compile(r"req_[0-9a-f]{16}")
EXPOSED = {
    "x-request-id",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "retry-after",
    "location",
    "www-authenticate",
    "x-emulator-check",
}
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "GET",
    "Access-Control-Request-Headers": "authorization, x-request-id",
}


# --- request ids -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [LINKS_PATH, f"{CONTROL}/health", "/openapi.json", "/nope/x"])
def test_a_valid_client_request_id_is_echoed_on_every_kind_of_path(
    client: TestClient, path: str
) -> None:
    for given in ("trace-123.abc", "a" * 64, "span:1_2-3.4"):
        response = client.get(path, headers={"X-Request-Id": given})
        assert response.headers["X-Request-Id"] == given


def test_the_client_request_id_is_echoed_on_a_preflight(client: TestClient) -> None:
    response = client.options(LINKS_PATH, headers={**PREFLIGHT, "X-Request-Id": "pre-1"})
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] == "pre-1"


@pytest.mark.parametrize("given", ["bad id", "a" * 65, "semi;colon", 'quote"d', "", "naïve"])
def test_an_invalid_request_id_is_replaced_by_a_new_one(client: TestClient, given: str) -> None:
    headers = {"X-Request-Id": given.encode()}  # as bytes: "naïve" goes as UTF-8
    response = client.get(f"{CONTROL}/health", headers=headers)
    assert NEW_ID.fullmatch(response.headers["X-Request-Id"]), response.headers["X-Request-Id"]


def test_the_first_well_formed_request_id_of_several_is_echoed() -> None:
    app = create_app(client_settings(Settings(warm_up=False)))
    headers = [
        (b"host", TESTCLIENT_HOST.encode()),
        (b"x-request-id", b"not valid"),
        (b"x-request-id", b"second-ok"),
        (b"x-request-id", b"third-ok"),
    ]
    start, _ = asyncio.run(_call(app, "GET", f"{CONTROL}/health", headers))
    assert dict(start["headers"])[b"x-request-id"] == b"second-ok"


def test_new_request_ids_are_unique_and_well_formed() -> None:
    ids = [new_request_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert all(NEW_ID.fullmatch(i) for i in ids)
    # Consecutive ids share no obvious pattern: no common 8-digit prefix run.
    assert len({i[:12] for i in ids[:1000]}) > 990


def test_each_id_source_has_keys_of_its_own() -> None:
    first, second = id_source(), id_source()
    assert {first() for _ in range(100)}.isdisjoint({second() for _ in range(100)})


def test_the_journal_keeps_the_request_id_the_client_saw(client: TestClient) -> None:
    seen = client.get(LINKS_PATH, headers={"X-Request-Id": "mine-1"}).headers["X-Request-Id"]
    fresh = client.get(LINKS_PATH).headers["X-Request-Id"]
    journal = client.get(f"{CONTROL}/requests").json()["requests"]
    assert [e["requestId"] for e in journal] == [seen, fresh]


# --- CORS ----------------------------------------------------------------------------------------


def test_an_allowed_preflight_answers_starlettes_cors_headers(client: TestClient) -> None:
    response = client.options(LINKS_PATH, headers=PREFLIGHT)
    assert response.status_code == 200 and response.text == "OK"
    headers = response.headers
    assert headers["access-control-allow-origin"] == "*"
    assert headers["access-control-max-age"] == "600"
    assert set(headers["access-control-allow-methods"].split(", ")) == {
        "GET",
        "POST",
        "DELETE",
        "OPTIONS",
    }
    allowed = {h.lower() for h in headers["access-control-allow-headers"].split(", ")}
    assert {"authorization", "content-type", "x-request-id"} <= allowed
    assert "origin" in headers["vary"].lower()
    assert NEW_ID.fullmatch(headers["x-request-id"])


def test_a_preflight_is_neither_journaled_nor_faulted(client: TestClient) -> None:
    client.post(f"{CONTROL}/faults", json={"status": 503, "times": 1})
    assert client.options(LINKS_PATH, headers=PREFLIGHT).status_code == 200
    assert client.get(f"{CONTROL}/requests").json()["requests"] == []
    assert client.get(LINKS_PATH).status_code == 503  # the fault was kept for the call


@pytest.mark.parametrize(
    ("asked", "refused"),
    [
        ({"Access-Control-Request-Method": "PUT"}, "method 'PUT' is not allowed"),
        ({"Access-Control-Request-Headers": "x-secret"}, "headers 'x-secret'"),
    ],
)
def test_a_refused_preflight_is_in_the_envelope_with_cors_headers(
    client: TestClient, asked: dict[str, str], refused: str
) -> None:
    response = client.options(LINKS_PATH, headers={**PREFLIGHT, **asked})
    error = assert_error(response, 400, "preflight_refused")
    assert refused in error["message"]
    assert response.headers["access-control-allow-methods"]
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"]


def test_every_answer_to_a_page_exposes_the_same_headers(client: TestClient) -> None:
    headers = {**auth_headers(client), "Origin": ORIGIN}
    answers = [
        client.get(LINKS_PATH, params={"limit": 1}, headers=headers),  # 200
        client.get(f"{LINKS_PATH}/lnk_nope", headers=headers),  # 404 after admission
        client.get(LINKS_PATH, headers={"Origin": ORIGIN}),  # 401
        client.get("/openapi.json", headers={"Origin": ORIGIN}),  # not journaled
    ]
    for answer in answers:
        assert answer.headers["access-control-allow-origin"] == "*"
        exposed = {h.lower() for h in answer.headers["access-control-expose-headers"].split(", ")}
        assert exposed == EXPOSED, answer.status_code
        assert answer.headers["vary"] == "Origin"


def test_an_answer_without_an_origin_varies_on_it_and_allows_none(client: TestClient) -> None:
    response = client.get(LINKS_PATH, headers=auth_headers(client))
    assert response.headers["vary"] == "Origin"
    assert "access-control-allow-origin" not in response.headers


def test_listed_origins_are_mirrored_and_others_are_not() -> None:
    settings = Settings(cors_origins=(ORIGIN,), warm_up=False)
    with emulator_client(settings) as client:
        allowed = client.get(LINKS_PATH, headers={"Origin": ORIGIN})
        assert allowed.headers["access-control-allow-origin"] == ORIGIN
        assert allowed.headers["vary"] == "Origin"
        other = client.get(LINKS_PATH, headers={"Origin": "http://elsewhere.example"})
        assert "access-control-allow-origin" not in other.headers
        refused = client.options(LINKS_PATH, headers={**PREFLIGHT, "Origin": "http://x.example"})
        assert_error(refused, 400, "preflight_refused")


def test_the_control_api_answers_without_cors(client: TestClient) -> None:
    own = f"http://{TESTCLIENT_HOST}"
    response = client.get(f"{CONTROL}/requests", headers={"Origin": own})
    assert response.status_code == 200
    assert not [h for h in response.headers if h.startswith("access-control-")]
    assert "vary" not in response.headers and response.headers["x-request-id"]
    foreign = client.get(f"{CONTROL}/requests", headers={"Origin": ORIGIN})
    assert_error(foreign, 403, "cross_origin_refused")
    assert not [h for h in foreign.headers if h.startswith("access-control-")]


def test_health_answers_every_method_as_its_route_does(client: TestClient) -> None:
    """The layer answers a GET of health itself; the router still answers the rest of it."""
    got = client.get(f"{CONTROL}/health", headers={"X-Request-Id": "probe-1"})
    assert (got.status_code, got.content) == (200, b'{"status":"ok"}')
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-request-id"] == "probe-1"
    assert got.headers["content-length"] == str(len(got.content))
    head = client.head(f"{CONTROL}/health")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(got.content))
    assert_error(client.post(f"{CONTROL}/health", headers=JSON), 405, "method_not_allowed")
    refused = client.get(f"{CONTROL}/health", headers={"Host": "evil.example"})
    assert_error(refused, 403, "host_refused")


# --- rate-limit headers --------------------------------------------------------------------------


def test_rate_limit_headers_come_with_every_answer_after_admission(client: TestClient) -> None:
    headers = auth_headers(client)
    for response in (
        client.get(LINKS_PATH, params={"limit": 1}, headers=headers),
        client.get(f"{LINKS_PATH}/lnk_nope", headers=headers),
        client.get(LINKS_PATH, params={"sortBy": "nope"}, headers=headers),
        client.post(LINKS_PATH, content=b"{", headers={**headers, **JSON}),
    ):
        assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(
            response.headers
        ), response.status_code
    for before_admission in (
        client.get(LINKS_PATH),
        client.post(TOKEN_PATH, json={"clientId": "x", "clientSecret": "y"}),
    ):
        assert "x-ratelimit-limit" not in before_admission.headers


# --- journal and faults --------------------------------------------------------------------------


async def _call(
    app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]], on_start: Any = None
) -> tuple[dict[str, Any], bytes]:
    """One request straight through the ASGI app; `on_start()` runs when the answer's start is
    sent, before any byte of it could reach a client."""
    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8080),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and on_start is not None:
            on_start(message)
        sent.append(message)

    await app(scope, receive, send)
    return sent[0], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize("fault", [None, {"status": 429, "times": 1}])
def test_the_entry_is_in_the_journal_before_the_first_byte(fault: dict[str, Any] | None) -> None:
    with TestClient(create_app(client_settings(Settings(warm_up=False)))) as client:
        token = auth_headers(client)["Authorization"]
        if fault is not None:
            client.post(f"{CONTROL}/faults", json=fault)
        app = client.app
        state = app.state.emulator  # type: ignore[attr-defined]
        seen: list[tuple[int, list[str]]] = []

        def on_start(message: dict[str, Any]) -> None:
            seen.append((message["status"], [e.request_id for e in state.journal.entries()]))

        headers = [(b"host", b"127.0.0.1"), (b"authorization", token.encode())]
        start, _ = asyncio.run(_call(app, "GET", f"{LINKS_PATH}?limit=2", headers, on_start))
        request_id = dict(start["headers"])[b"x-request-id"].decode()
        status, journaled = seen[0]
        assert status == (200 if fault is None else 429)
        assert journaled[-1] == request_id
        entry = client.get(f"{CONTROL}/requests").json()["requests"][-1]
        assert (entry["requestId"], entry["status"]) == (request_id, status)


def test_the_entry_holds_what_the_handler_noted(client: TestClient) -> None:
    headers = auth_headers(client)
    listed = client.get(LINKS_PATH, params={"limit": 3}, headers=headers)
    client.get(f"{CONTROL}/requests")  # not journaled
    entry = client.get(f"{CONTROL}/requests", params={"detail": 1}).json()["requests"][-1]
    assert entry["clientId"] == "sb_demo_client"
    assert entry["tokenFingerprint"].startswith("tok_")
    assert entry["pagination"] == listed.json()["pagination"]
    sent = {name.lower(): value for name, value in entry["response"]["headers"]}
    assert sent["x-request-id"] == listed.headers["x-request-id"]
    assert sent["x-ratelimit-remaining"] == listed.headers["x-ratelimit-remaining"]
    assert json.loads(entry["response"]["body"]) == listed.json()


def test_a_fault_is_taken_by_the_api_only_and_answers_with_cors_and_an_id(
    client: TestClient,
) -> None:
    client.post(f"{CONTROL}/faults", json={"status": 503, "times": 1})
    assert client.get(f"{CONTROL}/health").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    faulted = client.get(LINKS_PATH, headers={"Origin": ORIGIN, "X-Request-Id": "f-1"})
    assert_error(faulted, 503, "injected_fault")
    assert faulted.headers["access-control-allow-origin"] == "*"
    assert faulted.headers["x-request-id"] == "f-1"
    assert client.get(f"{CONTROL}/faults").json()["faults"] == []
    entry = client.get(f"{CONTROL}/requests").json()["requests"][-1]
    assert (entry["requestId"], entry["status"]) == ("f-1", 503)


def test_an_injected_429_is_journaled_with_its_retry_after(client: TestClient) -> None:
    headers = auth_headers(client)
    client.post(f"{CONTROL}/faults", json={"status": 429, "retryAfter": 7, "times": 1})
    faulted = client.get(LINKS_PATH, headers=headers)
    assert faulted.status_code == 429 and faulted.headers["retry-after"] == "7"
    assert faulted.headers["x-ratelimit-remaining"] == "0"
    entry = client.get(f"{CONTROL}/requests").json()["requests"][-1]
    assert (entry["status"], entry["retryAfter"]) == (429, 7)
    assert entry["tokenFingerprint"].startswith("tok_")
