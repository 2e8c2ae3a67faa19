"""`8here-emulator snapshot`, proved on emulators: a snapshot of an emulator serves the very same
bytes from a second one; a stopped snapshot resumes without fetching a saved link again; a
target that leaves the contract's shape, answers 429 or 5xx, or records other derived values is
handled as documented.

The targets are emulators served from a thread, with an application registered with a limit
it never reaches, and the snapshots run with a rate limit just as high, so nothing waits but
the Retry-After and retry tests (about a second each). Pacing itself is proved in test_drift.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from drift_proxy import (
    LINKS_PATH,
    Alteration,
    AlteringProxy,
    Exchange,
    rename_field,
    too_many_requests,
)
from test_cli import SERVE, _env, _free_port, _wait_healthy

from emulator.drift.pacing import Rate
from emulator.qr import qr_png_base64
from emulator.settings import Settings, default_fixtures_dir
from emulator.snapshot.command import add_parser, run
from emulator.snapshot.run import Plan
from emulator.store import SORT_KEYS, SORT_ORDERS
from emulator.testing import EmulatorServer

TOKEN_PATH = "/api/api-applications/token"
FAST = ("snapshot_fast", "snapshot_fast_secret")
UNPACED = ["--rate-limit", "1000000/m"]
APPLICATIONS = default_fixtures_dir() / "applications.json"


def _register(url: str) -> None:
    response = httpx.post(
        f"{url}/_emulator/applications",
        json={
            "clientId": FAST[0],
            "clientSecret": FAST[1],
            "environment": "sandbox",
            "workspaceId": "sandbox",
            "rateLimitPerMinute": 1_000_000,
        },
        timeout=10,
    )
    assert response.status_code == 201, response.text


def _serve(settings: Settings) -> EmulatorServer:
    server = EmulatorServer(settings).start()
    _register(server.url)
    return server


def _target(size: int) -> Iterator[str]:
    server = _serve(Settings(sandbox_size=size, journal_size=5000))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def source() -> Iterator[str]:
    """The target of the done-when tests: an emulator serving 500 generated links."""
    yield from _target(500)


@pytest.fixture(scope="module")
def small() -> Iterator[str]:
    """A target for the tests of single behaviours: 60 generated links."""
    yield from _target(60)


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


def snapshot(base_url: str, out: Path, *extra: str, fast: bool = True) -> Outcome:
    """`8here-emulator snapshot` through the command's own parser and `run`."""
    parser = argparse.ArgumentParser(prog="8here-emulator")
    add_parser(parser.add_subparsers(dest="command", required=True))
    argv = ["snapshot", "--base-url", base_url, "--out", str(out), *extra]
    if fast:
        argv += [*UNPACED, "--client-id", FAST[0], "--client-secret", FAST[1]]
    stdout, stderr = io.StringIO(), io.StringIO()
    code = run(parser.parse_args(argv), stdout=stdout, stderr=stderr)
    return Outcome(code, stdout.getvalue(), stderr.getvalue())


def _journal(url: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = httpx.get(f"{url}/_emulator/requests", timeout=10).json()[
        "requests"
    ]
    return entries


def _clear_journal(url: str) -> None:
    response = httpx.delete(f"{url}/_emulator/requests", timeout=10)
    assert response.status_code in (200, 204), response.text


def _details_fetched(url: str) -> Counter[str]:
    prefix = LINKS_PATH + "/"
    return Counter(
        entry["path"][len(prefix) :]
        for entry in _journal(url)
        if entry["path"].startswith(prefix) and entry["status"] == 200
    )


def _manifest(folder: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((folder / "manifest.json").read_text("utf-8"))
    return manifest


class Api:
    """The public API of one emulator, as the fast application."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10)
        body = {"clientId": FAST[0], "clientSecret": FAST[1]}
        token = self.http.post(TOKEN_PATH, json=body).json()["accessToken"]
        self.http.headers["Authorization"] = f"Bearer {token}"

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.http.close()

    def get(self, path: str) -> httpx.Response:
        response = self.http.get(path)
        assert response.status_code == 200, (path, response.text)
        return response

    def ids(self) -> list[str]:
        ids: list[str] = []
        while True:
            page = self.get(f"{LINKS_PATH}?limit=100&offset={len(ids)}").json()
            ids += [item["id"] for item in page["data"]]
            if not page["pagination"]["hasMore"]:
                return ids


# -- done when ------------------------------------------------------------------------------------


def test_a_snapshot_serves_the_same_bytes_as_its_source(source: str, tmp_path: Path) -> None:
    out = tmp_path / "set"
    _clear_journal(source)
    outcome = snapshot(source, out)
    assert outcome.code == 0, outcome.stdout + outcome.stderr
    fetched = _details_fetched(source)
    assert len(fetched) == 500 and set(fetched.values()) == {1}
    _assert_written(out, source, links=500, requests=1 + 5 + 500 + 1)

    queries = [
        *(
            f"sortBy={key}&sortOrder={order}&limit=100"
            for key in SORT_KEYS
            for order in SORT_ORDERS
        ),
        "hasVisits=true&limit=100",
        "hasVisits=false&limit=100&sortBy=title",
        "q=launch&limit=100",
        "offset=0",
        "offset=137&limit=50&sortBy=updatedAt",
        "offset=480&sortOrder=asc",
    ]
    copy = _serve(Settings(fixtures_dir=out))
    try:
        with Api(source) as original, Api(copy.url) as served:
            for query in queries:
                expected = original.get(f"{LINKS_PATH}?{query}").content
                assert served.get(f"{LINKS_PATH}?{query}").content == expected, query
            ids = original.ids()
            assert len(ids) == 500
            for link_id in ids:
                path = f"{LINKS_PATH}/{link_id}"
                assert served.get(path).content == original.get(path).content, link_id
    finally:
        copy.stop()


def _assert_written(out: Path, target: str, *, links: int, requests: int) -> None:
    """`out` holds a whole set: sorted records, the default applications, a true manifest."""
    assert sorted(path.name for path in out.iterdir()) == [
        "applications.json",
        "manifest.json",
        "sandbox_links.json",
    ]  # no work folder, no temporary file left
    links_bytes = (out / "sandbox_links.json").read_bytes()
    records = json.loads(links_bytes)["links"]
    ids = [record["id"] for record in records]
    assert ids == sorted(ids) and len(ids) == links
    assert all(list(record) == sorted(record) for record in records)
    assert (out / "applications.json").read_bytes() == APPLICATIONS.read_bytes()
    manifest = _manifest(out)
    assert manifest["target"] == target
    assert manifest["environment"] == "sandbox"
    assert manifest["applications"] == "default"
    assert manifest["counts"]["links"] == links
    assert manifest["counts"]["requests"] == requests
    verbatim = ("clicks", "hasVisits", "qrCodeBase64", "shortUrl")
    assert manifest["counts"]["verbatim"] == dict.fromkeys(verbatim, 0)
    assert manifest["warnings"] == []
    assert manifest["files"] == {
        "sandbox_links.json": hashlib.sha256(links_bytes).hexdigest(),
        "applications.json": hashlib.sha256(APPLICATIONS.read_bytes()).hexdigest(),
    }
    contract = (Path(__file__).parent.parent / "contract" / "openapi.yaml").read_bytes()
    assert manifest["contractSha256"] == hashlib.sha256(contract).hexdigest()
    for key in ("startedAt", "finishedAt"):
        assert manifest[key].endswith("Z")


def test_a_stopped_snapshot_resumes_without_fetching_a_saved_link_again(
    small: str, small_set: Path, tmp_path: Path
) -> None:
    out = tmp_path / "set"
    _clear_journal(small)

    stopped = snapshot(small, out, "--max-requests", "30")

    assert stopped.code == 2, stopped.stdout + stopped.stderr
    message = stopped.stderr.strip().splitlines()[-1]
    assert "stopped after 30 requests (--max-requests)" in message
    assert "28 of 60 links saved" in message and "--resume" in message
    assert not (out / "sandbox_links.json").exists()
    again = snapshot(small, out)  # without --resume: refused, nothing fetched
    assert again.code == 2 and "add --resume" in again.stderr

    resumed = snapshot(small, out, "--resume")

    assert resumed.code == 0, resumed.stdout + resumed.stderr
    assert "resuming: 28 links saved before" in resumed.stdout
    fetched = _details_fetched(small)
    assert len(fetched) == 60
    assert max(fetched.values()) == 1, [i for i, n in fetched.items() if n > 1][:5]
    # 30, then a token, the first page, 32 details and a second look at the first page.
    _assert_written(out, small, links=60, requests=30 + 1 + 1 + 32 + 1)
    for name in ("sandbox_links.json", "applications.json"):
        assert (out / name).read_bytes() == (small_set / name).read_bytes(), name
    assert _manifest(out)["files"] == _manifest(small_set)["files"]


def test_a_renamed_field_stops_the_snapshot_before_anything_is_written(
    small: str, tmp_path: Path
) -> None:
    out = tmp_path / "set"
    with AlteringProxy(small, rename_field("title", "name")) as proxy:
        outcome = snapshot(proxy.url, out)
    assert outcome.code == 1, outcome.stdout + outcome.stderr
    message = outcome.stderr.strip()
    assert "\n" not in message
    assert "$.data[0].title is missing, and the contract requires it" in message
    assert "(the answer has 'name', which the contract does not name)" in message
    assert not out.exists()


def _rename_in_details(old: str, new: str) -> Alteration:
    def change(exchange: Exchange) -> None:
        analytics = exchange.body.get("analytics") if isinstance(exchange.body, dict) else None
        if isinstance(analytics, dict) and old in analytics:
            analytics[new] = analytics.pop(old)

    return Alteration(f"rename analytics.{old}", response=change)


def test_a_detail_out_of_shape_stops_the_snapshot_before_anything_is_written(
    small: str, tmp_path: Path
) -> None:
    out = tmp_path / "set"
    with AlteringProxy(small, _rename_in_details("totalClicks", "total")) as proxy:
        outcome = snapshot(proxy.url, out)
    assert outcome.code == 1, outcome.stdout + outcome.stderr
    assert "$.analytics.totalClicks is missing" in outcome.stderr
    assert not out.exists()


def test_dry_run_prints_the_plan_and_sends_only_the_token_and_the_first_page(
    small: str, tmp_path: Path
) -> None:
    out = tmp_path / "set"
    _clear_journal(small)
    outcome = snapshot(small, out, "--dry-run")
    assert outcome.code == 0, outcome.stderr
    assert outcome.stdout.splitlines() == [
        f"snapshot: {small} (sandbox) lists 60 links",
        "snapshot: plan: 63 requests (1 token exchange, 1 list page of 100, 60 link details, "
        "1 second look at the first page), about 1 s at 1000000/min (a request every 0.0 s)",
        f"snapshot: dry run: nothing was written to {out}",
    ]
    sent = [(entry["method"], entry["path"], entry["query"]) for entry in _journal(small)]
    assert sent == [("POST", TOKEN_PATH, ""), ("GET", LINKS_PATH, "limit=100&offset=0")]
    assert not out.exists()


def test_the_plan_at_the_sandbox_pace() -> None:
    pace = Rate(15, 60.0)
    plan = Plan.make(pages=3, details=240, rechecks=1, interval=pace.interval)
    assert plan.requests == 245
    assert plan.describe(pace) == (
        "245 requests (1 token exchange, 3 list pages of 100, 240 link details, 1 second look "
        "at the first page), about 17 min 05 s at 15/min (a request every 4.2 s)"
    )
    # A run longer than a token lives plans the exchanges that renew it.
    long = Plan.make(pages=20, details=2000, rechecks=1, interval=pace.interval)
    assert long.tokens == 3 and long.requests == 2024
    assert long.seconds == pytest.approx(2023 * 4.2)


# -- a target that misbehaves ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_set(small: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("small") / "set"
    outcome = snapshot(small, out)
    assert outcome.code == 0, outcome.stdout + outcome.stderr
    return out


def _same_set(one: Path, other: Path) -> bool:
    return (one / "sandbox_links.json").read_bytes() == (other / "sandbox_links.json").read_bytes()


def _fault(url: str, status: int, times: int) -> None:
    fault = {"method": "GET", "path": f"{LINKS_PATH}/*", "status": status, "times": times}
    response = httpx.post(f"{url}/_emulator/faults", json=fault, timeout=10)
    assert response.status_code in (200, 201), response.text


def test_a_429_is_waited_out_and_never_stored(small: str, small_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "set"
    with AlteringProxy(small, too_many_requests(times=1, retry_after=1)) as proxy:
        started = time.monotonic()
        outcome = snapshot(proxy.url, out)
        waited = time.monotonic() - started
    assert outcome.code == 0, outcome.stdout + outcome.stderr
    assert "waiting 1 s (Retry-After)" in outcome.stderr
    assert waited >= 1.0
    assert _same_set(out, small_set)
    assert _manifest(out)["counts"]["requests"] == 1 + 1 + 1 + 60 + 1  # the 429 counted


def test_a_5xx_is_tried_again(small: str, small_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "set"
    _fault(small, 503, times=2)
    outcome = snapshot(small, out)
    assert outcome.code == 0, outcome.stdout + outcome.stderr
    assert "answered 503: trying again" in outcome.stderr
    assert _same_set(out, small_set)


def test_a_lasting_5xx_stops_the_snapshot_resumably(
    small: str, small_set: Path, tmp_path: Path
) -> None:
    out = tmp_path / "set"
    _fault(small, 502, times=4)  # the first try and three more
    stopped = snapshot(small, out)
    assert stopped.code == 2, stopped.stdout + stopped.stderr
    message = stopped.stderr.strip().splitlines()[-1]
    assert "answered 502, 4 times in a row" in message
    assert "0 of 60 links saved" in message and "--resume" in message
    assert (out / ".snapshot" / "state.json").is_file()  # the listing is kept
    assert not (out / "sandbox_links.json").exists()

    resumed = snapshot(small, out, "--resume")
    assert resumed.code == 0, resumed.stdout + resumed.stderr
    assert _same_set(out, small_set)


def test_a_previous_set_stays_until_the_new_one_is_complete(
    small: str, small_set: Path, tmp_path: Path
) -> None:
    out = tmp_path / "set"
    out.mkdir()
    old = (default_fixtures_dir() / "sandbox_links.json").read_bytes()
    (out / "sandbox_links.json").write_bytes(old)
    applications = json.loads(APPLICATIONS.read_text("utf-8"))
    applications["applications"] = applications["applications"][:1]
    ours = json.dumps(applications).encode()
    (out / "applications.json").write_bytes(ours)

    stopped = snapshot(small, out, "--max-requests", "20")
    assert stopped.code == 2
    assert (out / "sandbox_links.json").read_bytes() == old

    resumed = snapshot(small, out, "--resume")
    assert resumed.code == 0, resumed.stdout + resumed.stderr
    assert _same_set(out, small_set)
    assert (out / "applications.json").read_bytes() == ours  # DIR's own applications are kept
    manifest = _manifest(out)
    assert manifest["applications"] == "kept"
    assert manifest["files"]["applications.json"] == hashlib.sha256(ours).hexdigest()
    assert f"kept {out / 'applications.json'}" in resumed.stdout


def _recorded_otherwise(exchange: Exchange) -> None:
    """The target's own derived values: short URLs on another host with their QR codes, and
    one link whose clicks disagree with its analytics."""
    for link in exchange.links():
        link["shortUrl"] = f"https://sho.rt/{link['slug']}"
        link["qrCodeBase64"] = qr_png_base64(f"https://sho.rt/x/{link['slug']}")
        if link["slug"].endswith("-3"):
            link["clicks"] = 777_777
            link["hasVisits"] = True


def test_values_the_target_derives_otherwise_are_served_verbatim(
    small: str, tmp_path: Path
) -> None:
    out = tmp_path / "set"
    with AlteringProxy(small, Alteration("recorded", response=_recorded_otherwise)) as proxy:
        outcome = snapshot(proxy.url, out)
        assert outcome.code == 0, outcome.stdout + outcome.stderr
        with Api(proxy.url) as target:
            ids = target.ids()
            details = {link_id: target.get(f"{LINKS_PATH}/{link_id}").json() for link_id in ids}
    assert "qrCodeBase64 kept verbatim for 60 links" in outcome.stdout
    assert "shortUrl kept verbatim for 60 links" in outcome.stdout
    assert "clicks kept verbatim for 1 link:" in outcome.stdout
    assert _manifest(out)["counts"]["verbatim"]["clicks"] == 1
    copy = _serve(Settings(fixtures_dir=out, short_base="http://127.0.0.1:1"))
    try:
        with Api(copy.url) as served:
            for link_id, detail in details.items():
                assert served.get(f"{LINKS_PATH}/{link_id}").json() == detail
            page = served.get(f"{LINKS_PATH}?sortBy=clicks&limit=100").json()["data"]
            assert [item["clicks"] for item in page][:1] == [777_777]  # sorted by what it serves
            for item in page:
                assert item == {k: v for k, v in details[item["id"]].items() if k != "analytics"}
    finally:
        copy.stop()


def _changes_on_second_look() -> Alteration:
    seen = Counter[str]()

    def change(exchange: Exchange) -> None:
        if exchange.path == LINKS_PATH and exchange.query.get("offset") == "0":
            seen["first"] += 1
            if seen["first"] == 2:
                exchange.body["data"][0]["title"] = "Changed meanwhile"

    return Alteration("first page changes", response=change)


def test_a_first_page_that_changed_meanwhile_is_a_warning(small: str, tmp_path: Path) -> None:
    out = tmp_path / "set"
    with AlteringProxy(small, _changes_on_second_look()) as proxy:
        outcome = snapshot(proxy.url, out)
    assert outcome.code == 0, outcome.stdout + outcome.stderr
    warning = "the first page changed while the snapshot ran: 1 link changed (first: lnk_"
    assert f"snapshot: warning: {warning}" in outcome.stdout
    assert any(w.startswith(warning) for w in _manifest(out)["warnings"])


def test_a_listed_link_whose_detail_is_gone_is_left_out_with_a_warning(
    small: str, small_set: Path, tmp_path: Path
) -> None:
    gone = json.loads((small_set / "sandbox_links.json").read_text("utf-8"))["links"][5]["id"]

    def change(exchange: Exchange) -> None:
        if exchange.path == f"{LINKS_PATH}/{gone}":
            exchange.status = 404
            exchange.body = {"error": {"code": "link_not_found", "message": "gone"}}

    out = tmp_path / "set"
    with AlteringProxy(small, Alteration("one gone", response=change)) as proxy:
        outcome = snapshot(proxy.url, out)
    assert outcome.code == 0, outcome.stdout + outcome.stderr
    assert f"{gone} is listed, but its detail answered 404: left out" in outcome.stdout
    records = json.loads((out / "sandbox_links.json").read_bytes())["links"]
    ids = [record["id"] for record in records]
    assert len(ids) == 59 and gone not in ids
    assert _manifest(out)["counts"]["missing"] == 1


def test_a_link_listed_otherwise_than_its_detail_is_a_warning(
    small: str, small_set: Path, tmp_path: Path
) -> None:
    def change(exchange: Exchange) -> None:
        if exchange.path == LINKS_PATH:
            exchange.body["data"][1]["title"] = "Listed title"

    out = tmp_path / "set"
    with AlteringProxy(small, Alteration("list differs", response=change)) as proxy:
        outcome = snapshot(proxy.url, out)
    assert outcome.code == 0, outcome.stdout + outcome.stderr
    warning = "1 link listed with other values than their detail (the set keeps the detail's): "
    assert f"snapshot: warning: {warning}lnk_" in outcome.stdout
    assert outcome.stdout.count("(title)") == 1
    assert _same_set(out, small_set)


# -- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--max-requests", "0"], "--max-requests must be at least 1"),
        (["--rate-limit", "fast"], "--rate-limit: not a rate"),
        (["--base-url", "ftp://example.com"], "is not an http(s) URL"),
        (["--client-id", "only-the-id"], "no client secret"),
    ],
    ids=["max-requests", "rate", "base-url", "half-credentials"],
)
def test_bad_options_are_refused_with_one_line(
    tmp_path: Path, args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EIGHTHERE_CLIENT_ID", raising=False)
    monkeypatch.delenv("EIGHTHERE_CLIENT_SECRET", raising=False)
    argv = ["--base-url", "http://127.0.0.1:9", *args]
    parser = argparse.ArgumentParser(prog="8here-emulator")
    add_parser(parser.add_subparsers(dest="command", required=True))
    stderr = io.StringIO()
    namespace = parser.parse_args(["snapshot", "--out", str(tmp_path / "set"), *argv])
    assert run(namespace, stdout=io.StringIO(), stderr=stderr) == 2
    assert message in stderr.getvalue() and stderr.getvalue().count("\n") == 1


def test_a_target_that_cannot_be_reached_or_rejects_the_credentials(
    small: str, tmp_path: Path
) -> None:
    unreachable = snapshot(f"http://127.0.0.1:{_free_port()}", tmp_path / "a")
    assert unreachable.code == 2
    assert "is unreachable (connection refused)" in unreachable.stderr
    assert "nothing was saved" in unreachable.stderr
    bad = ["--client-id", "x", "--client-secret", "y"]
    rejected = snapshot(small, tmp_path / "b", *bad, fast=False)
    assert rejected.code == 2 and "rejected the credentials for client id 'x'" in rejected.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_resume_refuses_another_target(small: str, tmp_path: Path) -> None:
    out = tmp_path / "set"
    assert snapshot(small, out, "--max-requests", "5").code == 2
    elsewhere = f"http://127.0.0.1:{_free_port()}"
    other = snapshot(elsewhere, out, "--resume")
    assert other.code == 2
    assert f"the unfinished snapshot in {out} is of {small}, not {elsewhere}" in other.stderr


# -- serving a snapshot ---------------------------------------------------------------------------


def test_serve_takes_a_snapshot_from_emulator_fixtures(small: str, small_set: Path) -> None:
    """As the container does: the folder named by EMULATOR_FIXTURES."""
    port = _free_port()
    process = subprocess.Popen(
        [*SERVE, "--port", str(port), "--log-level", "warning"],
        env=_env(EMULATOR_FIXTURES=str(small_set)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(process, url)
        _register(url)
        query = f"{LINKS_PATH}?sortBy=title&limit=100"
        with Api(url) as served, Api(small) as original:
            assert served.get(query).content == original.get(query).content
    finally:
        process.kill()
        process.communicate(timeout=10)


def test_serve_refuses_a_malformed_snapshot_with_one_line(small_set: Path, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "applications.json").write_bytes((small_set / "applications.json").read_bytes())
    document = json.loads((small_set / "sandbox_links.json").read_text("utf-8"))
    document["links"][2]["updatedAt"] = "yesterday"
    (folder / "sandbox_links.json").write_text(json.dumps(document), "utf-8")
    result = subprocess.run(
        [*SERVE, "--port", str(_free_port())],
        env=_env(EMULATOR_FIXTURES=str(folder)),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert str(folder / "sandbox_links.json") in result.stderr
    assert "links[2].updatedAt: 'yesterday' is not a UTC timestamp" in result.stderr
