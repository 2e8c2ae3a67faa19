"""Each finding of the hardening review (issue 10), reproduced as it was found, and refused.

The review tried the emulator as an attacker would: a web page in the developer's browser (a
cross-site form, a foreign Origin, DNS rebinding), a client that fills buffers or holds a request
half-sent, guessable live links, inputs that made 5xx, secrets in the journal, a sample slug taken
by a live link, and bad start-up settings. Each test below names its finding.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import (
    CONTROL,
    JSON,
    LINKS_PATH,
    SANDBOX_CLIENT_ID,
    SANDBOX_SECRET,
    TOKEN_PATH,
    Served,
    assert_error,
    auth_headers,
    bearer,
    emulator_client,
    register_app,
    rss_kb,
    serve_process,
    token_for,
)
from starlette.testclient import TestClient

from emulator.cli import main as cli_main
from emulator.journal import BODY_CAPTURE_BYTES, ENTRY_MAX_BYTES, JOURNAL_MAX_BYTES, Journal
from emulator.limits import HEADER_BYTES_MAX, URL_BYTES_MAX
from emulator.link_names import LinkNames, seed_secret
from emulator.live_store import LiveStore
from emulator.masking import AccessLogMasking
from emulator.models import NewLink, Workspace
from emulator.settings import Settings, default_fixtures_dir
from emulator.store import LinkQuery
from emulator.testing import EmulatorServer

EVIL = "https://evil.example"
LIVE_ID, LIVE_SECRET = "lv_demo_personal", "lvs_demo_personal_secret"
OTHER_ID, OTHER_SECRET = "lv_demo_other", "lvs_demo_other_secret"
SAMPLE_SLUG = "card-data-sea"  # the first link of fixtures/sandbox_links.json
T0 = datetime(2026, 1, 1, tzinfo=UTC)
MB = 1024 * 1024


def _create(client: Any, headers: dict[str, str], **body: Any) -> Any:
    body = {"title": "Mine", "destination": "https://example.com/mine", **body}
    return client.post(LINKS_PATH, json=body, headers=headers)


def _live_count(client: TestClient) -> int:
    listed = client.get(LINKS_PATH, headers=auth_headers(client, LIVE_ID, LIVE_SECRET))
    count: int = listed.json()["pagination"]["total"]
    return count


# --- 1. any web page could drive the control API --------------------------------------------------


@pytest.fixture
def with_links(client: TestClient) -> TestClient:
    live = auth_headers(client, LIVE_ID, LIVE_SECRET)
    for n in range(3):
        assert _create(client, live, slug=f"keep-me-{n}").status_code == 201
    return client


def test_a_cross_site_form_cannot_reset(with_links: TestClient) -> None:
    """As found: a form's POST (urlencoded, empty body: no preflight) answered 200 and emptied
    the store. A browser sends the page's Origin; an old one may send none: both are refused."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    refused = with_links.post(f"{CONTROL}/reset", headers={**form, "Origin": EVIL}, content=b"")
    assert_error(refused, 403, "cross_origin_refused")
    assert "access-control-allow-origin" not in refused.headers
    no_origin = with_links.post(f"{CONTROL}/reset", headers=form, content=b"")
    assert_error(no_origin, 415, "unsupported_media_type")
    for content_type in ("text/plain", "multipart/form-data; boundary=x"):
        other = with_links.post(f"{CONTROL}/reset", headers={"Content-Type": content_type})
        assert_error(other, 415, "unsupported_media_type")
    assert _live_count(with_links) == 3
    assert with_links.post(f"{CONTROL}/reset", headers=JSON).status_code == 200
    assert _live_count(with_links) == 0


def test_state_changes_need_a_json_content_type(client: TestClient) -> None:
    for path in ("/clock", "/applications", "/faults", "/visits", "/reset"):
        response = client.post(f"{CONTROL}{path}")
        assert_error(response, 415, "unsupported_media_type")


def test_a_delete_needs_no_body(client: TestClient) -> None:
    """A browser preflights every DELETE (and the control API refuses preflights), so a DELETE
    needs no JSON declaration: `curl -X DELETE` and `httpx.delete()` work as they are."""
    assert client.delete(f"{CONTROL}/faults").status_code == 204
    refused = client.delete(f"{CONTROL}/requests", headers={"Origin": EVIL})
    assert_error(refused, 403, "cross_origin_refused")


def test_a_foreign_origin_cannot_read_the_journal(client: TestClient) -> None:
    token_for(client)
    response = client.get(f"{CONTROL}/requests", params={"detail": 1}, headers={"Origin": EVIL})
    assert_error(response, 403, "cross_origin_refused")
    assert not [name for name in response.headers if name.startswith("access-control-")]
    for path in ("/ui", "/ui/inspector.js", "/applications", "/health", "/nowhere"):
        assert_error(
            client.get(f"{CONTROL}{path}", headers={"Origin": "null"}), 403, "cross_origin_refused"
        )


def test_a_preflight_to_the_control_api_is_refused(client: TestClient) -> None:
    preflight = {"Access-Control-Request-Method": "POST"}
    preflight["Access-Control-Request-Headers"] = "content-type"
    for origin in (EVIL, "http://testserver"):
        response = client.options(
            f"{CONTROL}/applications", headers={**preflight, "Origin": origin}
        )
        assert_error(response, 403, "cross_origin_refused")
        assert not [name for name in response.headers if name.startswith("access-control-")]


def test_the_own_origin_and_tools_without_one_are_served(client: TestClient) -> None:
    own = {**JSON, "Origin": "http://testserver"}
    assert client.post(f"{CONTROL}/clock", json={"advanceSeconds": 1}, headers=own).is_success
    assert client.get(f"{CONTROL}/requests").is_success  # curl, the plugin, the drift check
    assert client.get(f"{CONTROL}/ui", headers={"Origin": "http://testserver"}).is_success


def test_the_public_api_keeps_its_cors(client: TestClient) -> None:
    preflight = client.options(
        TOKEN_PATH,
        headers={
            "Origin": EVIL,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    answer = client.post(
        TOKEN_PATH,
        json={"clientId": SANDBOX_CLIENT_ID, "clientSecret": SANDBOX_SECRET},
        headers={"Origin": EVIL},
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "*"


def test_a_refused_public_preflight_is_in_the_envelope(client: TestClient) -> None:
    """As found: a preflight asking for a header not allowed got plain text."""
    response = client.options(
        LINKS_PATH,
        headers={
            "Origin": EVIL,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "x-not-allowed",
        },
    )
    error = assert_error(response, 400, "preflight_refused")
    assert "Authorization" in error["message"]


@pytest.mark.parametrize(
    "host",
    ["rebind.attacker.example", "rebind.attacker.example:8080", "localhost.evil.example", ""],
)
def test_a_rebinding_host_is_refused(client: TestClient, host: str) -> None:
    """As found: a request with `Host: rebind.attacker.example` was served."""
    response = client.get(f"{CONTROL}/requests", headers={"Host": host})
    assert_error(response, 403, "host_refused")
    reset = client.post(f"{CONTROL}/reset", headers={**JSON, "Host": host})
    assert_error(reset, 403, "host_refused")
    # the public API answers for any name: its CORS already lets any page read it
    assert client.get(LINKS_PATH, headers={"Host": host}).status_code == 401


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8080", "[::1]:8080", "10.0.0.7", "localhost:8080", "app.localhost"]
)
def test_local_hosts_are_served(host: str) -> None:
    with emulator_client() as client:
        assert client.get(f"{CONTROL}/clock", headers={"Host": host}).status_code == 200


def test_allowed_hosts_name_a_service() -> None:
    with emulator_client(Settings(allowed_hosts=("emulator", "*.ci.internal"))) as client:
        for host in ("emulator:8080", "EMULATOR", "runner-3.ci.internal"):
            assert client.get(f"{CONTROL}/clock", headers={"Host": host}).status_code == 200
        for host in ("emulator.evil.example", "ci.internal"):
            assert_error(
                client.get(f"{CONTROL}/clock", headers={"Host": host}), 403, "host_refused"
            )


# --- 2. memory without bound --------------------------------------------------------------------


def test_headers_over_16_kb_are_refused_in_process(client: TestClient) -> None:
    big = {"X-Big": "a" * (HEADER_BYTES_MAX - 20)}  # with the client's own headers, over
    response = client.get(LINKS_PATH, headers=big)
    assert_error(response, 431, "headers_too_large")
    assert response.headers["x-request-id"]
    assert_error(client.get("/" + "a" * URL_BYTES_MAX), 414, "uri_too_long")
    journal = client.get(f"{CONTROL}/requests").json()["requests"]
    assert journal == [], "refused before the journal: nothing of it is kept"


def _raw_exchange(
    port: int, request: bytes, timeout: float = 10.0
) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; the status, headers and body of the answer (up to the server's close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines)}
    return int(status_line.split()[1]), headers, body


def _refused_over_a_socket(port: int, request: bytes, status: int, code: str) -> None:
    got, headers, body = _raw_exchange(port, request)
    assert got == status, body
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close" and headers["x-request-id"].startswith("req_")
    assert json.loads(body)["error"]["code"] == code, body


@pytest.fixture(scope="module")
def quick_server() -> Iterator[EmulatorServer]:
    """A served emulator that gives a half-sent request half a second."""
    with EmulatorServer(Settings(request_timeout_seconds=0.5)) as server:
        yield server


def test_an_8_mb_header_is_refused_over_a_socket(quick_server: EmulatorServer) -> None:
    """As found: one 8 MB header got a 404 and was kept whole in the journal (64 MB too)."""
    for size in (8 * MB, 64 * MB - 1):
        request = b"GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
        _refused_over_a_socket(quick_server.port, request, 431, "headers_too_large")
    many = b"".join(b"X-%d: %s\r\n" % (n, b"v" * 100) for n in range(200))
    _refused_over_a_socket(
        quick_server.port,
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + many + b"\r\n",
        431,
        "headers_too_large",
    )
    target = b"/" + b"a" * URL_BYTES_MAX
    _refused_over_a_socket(
        quick_server.port,
        b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        414,
        "uri_too_long",
    )
    assert quick_server.app.state.emulator.journal.entries() == []


def test_malformed_http_is_answered_in_the_envelope(quick_server: EmulatorServer) -> None:
    """As found: malformed HTTP got uvicorn's own plain-text 400."""
    for request in (b"NOT HTTP AT ALL\r\n\r\n", b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n"):
        _refused_over_a_socket(quick_server.port, request, 400, "malformed_request")


def test_a_half_sent_request_is_closed(quick_server: EmulatorServer) -> None:
    """As found: a half-sent request was held open indefinitely."""
    state = quick_server.app.state.emulator
    state.journal.clear()
    started = time.monotonic()
    _refused_over_a_socket(
        quick_server.port,
        b"GET /_emulator/health HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        408,
        "request_timeout",
    )
    body_missing = (
        b"POST /api/api-applications/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    _refused_over_a_socket(quick_server.port, body_missing, 408, "request_timeout")
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while not state.journal.entries() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [(e.path, e.status) for e in state.journal.entries()] == [(TOKEN_PATH, 408)]


def test_an_idle_connection_is_closed_silently(quick_server: EmulatorServer) -> None:
    with socket.create_connection(("127.0.0.1", quick_server.port), timeout=5) as sock:
        assert sock.recv(100) == b""  # closed by the server after its timeout, nothing said


def test_a_slow_but_steady_request_within_the_timeout_is_served(
    quick_server: EmulatorServer,
) -> None:
    with socket.create_connection(("127.0.0.1", quick_server.port), timeout=5) as sock:
        for part in (b"GET /_emulator/health HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n"):
            sock.sendall(part)
            time.sleep(0.1)
        sock.sendall(b"Connection: close\r\n\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200 ")


def test_the_journal_has_a_bound_per_entry_and_in_all() -> None:
    journal = Journal(capacity=10_000, max_bytes=4 * ENTRY_MAX_BYTES)
    big = b"x" * (4 * BODY_CAPTURE_BYTES)
    for n in range(20):
        journal.record(
            request_id=f"r{n}",
            time="",
            method="GET",
            path="/" + "p" * 20_000,
            query="q" * 20_000,
            status=200,
            client_id=None,
            duration_ms=0.0,
            request_headers=b"h" * 40_000,
            request_body=big,
            response_headers=b"",
            response_body=big,
        )
    assert journal.size_bytes <= 4 * ENTRY_MAX_BYTES
    kept = journal.entries()
    assert 0 < len(kept) < 20 and kept[-1].request_id == "r19"
    assert all(len(e.request_body) <= BODY_CAPTURE_BYTES for e in kept)
    assert JOURNAL_MAX_BYTES <= 32 * MB


def _worst_case_requests(served: Served, count: int) -> None:
    """`count` requests, each with headers and a target just within their bounds, half of them
    with a 64 KB body and half with a 100-link answer: the most a journal entry keeps."""
    with httpx.Client(base_url=served.url, timeout=30) as http:
        app = {"clientId": "mem_app", "clientSecret": "mem_app_secret", "environment": "sandbox"}
        body = {**app, "rateLimitPerMinute": 10**9, "replace": True}  # registered once per call
        registered = http.post(f"{CONTROL}/applications", json=body)
        assert registered.status_code == 201, registered.text
        token = http.post(TOKEN_PATH, json=app).json()["accessToken"]
    base = f"{LINKS_PATH}?limit=100&fill="
    target = (base + "f" * (URL_BYTES_MAX - len(base))).encode()
    body = b'{"clientId": "mem_app", "clientSecret": "' + b"s" * (64 * 1024 - 60) + b'"}'
    for n in range(count):
        lines = [b"Host: 127.0.0.1", b"Authorization: Bearer " + token.encode()]
        if n % 2:
            request_line = b"POST " + TOKEN_PATH.encode() + b"?" + b"q" * 8000 + b" HTTP/1.1"
            lines += [b"Content-Type: application/json", b"Content-Length: %d" % len(body)]
        else:
            request_line = b"GET " + target + b" HTTP/1.1"
        lines.append(b"Connection: close")
        used = sum(len(line) + 2 for line in lines) + len(b"X-Fill: \r\n")
        lines.append(b"X-Fill: " + b"f" * (HEADER_BYTES_MAX - used))
        request = request_line + b"\r\n" + b"\r\n".join(lines) + b"\r\n\r\n"
        status, _, _ = _raw_exchange(served.port, request + (body if n % 2 else b""))
        assert status == (401 if n % 2 else 200), (n, status)


def test_memory_after_worst_case_requests_stays_near_idle(served_process: Served) -> None:
    """As found: 40 requests with an 8 MB header grew the process from 55 MB to 375 MB; with 1,000
    journal entries the ceiling was tens of GB. Now: within 100 MB of idle."""
    served, pid = served_process, served_process.process.pid
    _worst_case_requests(served, 2)  # warm: QR codes of the 100-link page, code paths
    idle = rss_kb(pid)
    header = b"GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (8 * MB) + b"\r\n\r\n"
    for _ in range(40):
        assert _raw_exchange(served.port, header)[0] == 431
    after_big_headers = rss_kb(pid)
    _worst_case_requests(served, 1000)
    after = rss_kb(pid)
    print(
        f"\nRSS idle {idle / 1024:.1f} MB; after 40 requests with an 8 MB header "
        f"{after_big_headers / 1024:.1f} MB; after 1,000 worst-case requests {after / 1024:.1f} MB"
        f" (+{(after - idle) / 1024:.1f} MB)"
    )
    assert after_big_headers - idle < 10 * 1024
    assert after - idle < 100 * 1024
    with httpx.Client(base_url=served.url, timeout=30) as http:
        kept = http.get(f"{CONTROL}/requests").json()["requests"]
    assert 0 < len(kept) <= 1000


# --- 3. guessable live links ----------------------------------------------------------------------


def _old_names(seq: int) -> tuple[str, str]:
    """The id and slug the store used to give link number `seq` (sha256 of a shared counter)."""
    link_id = "lnk_" + hashlib.sha256(f"live:{seq}".encode()).hexdigest()[:16]
    return link_id, hashlib.sha256(f"slug:{seq}:0".encode()).hexdigest()[:7]


def test_a_counter_derived_slug_no_longer_finds_a_link(client: TestClient) -> None:
    """As found: `GET /{slug}` with no token redirected to other workspaces' destinations, as
    generated slugs were sha256 of a counter shared by all workspaces."""
    mine = _create(client, auth_headers(client, OTHER_ID, OTHER_SECRET)).json()
    old_id, old_slug = _old_names(1)
    assert (mine["id"], mine["slug"]) != (old_id, old_slug)
    assert_error(client.get(f"/{old_slug}", follow_redirects=False), 404, "link_not_found")
    assert client.get(f"/{mine['slug']}", follow_redirects=False).status_code == 302


def test_ids_and_slugs_come_from_a_per_store_secret() -> None:
    firsts = []
    for _ in range(2):
        store = LiveStore.open(None)
        firsts.append(store.create(Workspace("ws", "personal"), NewLink("T", "https://e.x"), T0))
        store.close()
    assert firsts[0].id != firsts[1].id and firsts[0].slug != firsts[1].slug
    seeded = [LiveStore.open(None, seed=42) for _ in range(2)]
    made = [s.create(Workspace("ws", "personal"), NewLink("T", "https://e.x"), T0) for s in seeded]
    names = LinkNames(seed_secret(42))
    assert made[0] == made[1] and (made[0].id, made[0].slug) == (names.link_id(1), names.slug(1))


def test_a_database_file_keeps_its_secret(tmp_path: Path) -> None:
    path = str(tmp_path / "live.db")
    workspace = Workspace("ws", "personal")
    store = LiveStore.open(path)
    first = store.create(workspace, NewLink("One", "https://e.x/1"), T0)
    store.close()
    store = LiveStore.open(path)
    second = store.create(workspace, NewLink("Two", "https://e.x/2"), T0)
    store.close()
    with sqlite3.connect(path) as db:
        secret = db.execute("SELECT secret FROM store_secret").fetchone()[0]
    names = LinkNames(secret)
    assert (first.id, second.id) == (names.link_id(1), names.link_id(2))
    assert (first.slug, second.slug) == (names.slug(1), names.slug(2))


def test_the_pytest_plugin_pins_a_seed(emulator: Any) -> None:
    live = emulator.register_application(environment="live")
    token = emulator.token(live)
    with httpx.Client(base_url=emulator.url, timeout=10) as http:
        made = _create(http, bearer(token)).json()
    from emulator.pytest_plugin import DEFAULT_SEED

    assert made["id"] == LinkNames(seed_secret(DEFAULT_SEED)).link_id(1)


def test_the_in_process_app_answers_its_control_api(emulator_app: Any) -> None:
    """No socket, so no rebinding: the plugin's in-process name is one the control API allows."""

    async def clock() -> int:
        transport = httpx.ASGITransport(app=emulator_app)
        async with httpx.AsyncClient(transport=transport, base_url=emulator_app.url) as http:
            return (await http.post(f"{CONTROL}/clock", json={"advanceSeconds": 5})).status_code

    assert asyncio.run(clock()) == 200


# --- 4. two 5xx -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("clientId", "evil\nclient"),
        ("clientId", "tab\there"),
        ("clientId", "sp ace"),
        ("clientId", "x" * 129),
        ("clientId", "\u0000nul"),
        ("clientSecret", "line\nbreak"),
        ("clientSecret", "s" * 257),
        ("workspaceId", "ws\r\n"),
    ],
)
def test_control_characters_in_credentials_are_refused(
    client: TestClient, field: str, value: str
) -> None:
    """As found: a client id with a newline was accepted; every later request with its token
    answered 500 and reset the connection."""
    body = {"clientId": "ok_client", "clientSecret": "ok_secret", "environment": "live"}
    body["workspaceId"] = "ws_ok"
    response = client.post(f"{CONTROL}/applications", json={**body, field: value})
    assert_error(response, 422, "validation_failed", field)


def test_a_token_with_a_bad_payload_is_invalid_not_a_crash(client: TestClient) -> None:
    state = client.app.state.emulator  # type: ignore[attr-defined]
    payload = b"evil\nclient\n2000000000\nnonce"
    forged = "eh_" + _b64(payload) + "." + _b64(state.tokens._sign(payload))
    assert_error(client.get(LINKS_PATH, headers=bearer(forged)), 401, "invalid_token")


def test_a_giant_integer_cannot_move_the_clock(client: TestClient) -> None:
    """As found: {"advanceSeconds": 1e400 written as an integer} answered 500 (OverflowError)."""
    before = client.get(f"{CONTROL}/clock").json()["epoch"]
    for digits in ("1" + "0" * 400, "-1" + "0" * 400, "1e400", "NaN", "Infinity"):
        body = ('{"advanceSeconds": ' + digits + "}").encode()
        response = client.post(f"{CONTROL}/clock", content=body, headers=JSON)
        assert_error(response, 422, "validation_failed", "advanceSeconds")
    assert abs(client.get(f"{CONTROL}/clock").json()["epoch"] - before) < 60


def test_giant_numbers_elsewhere_in_the_control_api(client: TestClient) -> None:
    huge = "9" * 5000
    assert client.get(f"{CONTROL}/requests", params={"after": huge}).json() == {"requests": []}
    assert_error(client.get(f"{CONTROL}/requests/{huge}"), 404, "not_found")
    for body in (
        '{"times": 1' + "0" * 400 + ', "status": 500}',
        '{"times": 1, "delayMs": 1' + "0" * 400 + "}",
    ):
        response = client.post(f"{CONTROL}/faults", content=body.encode(), headers=JSON)
        assert_error(response, 422, "validation_failed")
    response = client.post(
        f"{CONTROL}/applications",
        json={"clientId": "n", "clientSecret": "s", "rateLimitPerMinute": 10**400},
    )
    assert_error(response, 422, "validation_failed", "rateLimitPerMinute")


# --- 5. smaller ones ------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_a_token_has_exactly_one_spelling(client: TestClient) -> None:
    """As found: characters outside base64 were dropped before decoding, so one token was
    accepted in several spellings."""
    # 14 characters of client id: a payload of 32 bytes, whose last base64 character has 2 bits
    # that do not count (a second spelling, unless refused).
    register_app(client, "spelling_abcde", "spelling_secret")
    token = token_for(client, "spelling_abcde", "spelling_secret")
    assert client.get(LINKS_PATH, headers=bearer(token)).status_code == 200
    body, signature = token.removeprefix("eh_").split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    stray = alphabet[alphabet.index(body[-1]) ^ 1]
    spellings = [
        f"eh_{body[:5]}!{body[5:]}.{signature}",
        f"eh_{body}.{signature}==",
        f"eh_{body}=.{signature}",
        f"eh_{body[:-1]}{stray}.{signature}",
        f"eh_{body[:4]} {body[4:]}.{signature}",
        f"eh_{body.replace('-', '+').replace('_', '/')}.{signature}",
    ]
    for spelling in {s for s in spellings if s != token}:
        assert_error(client.get(LINKS_PATH, headers=bearer(spelling)), 401, "invalid_token")


def test_tokens_and_secrets_are_masked_wherever_they_are_sent(client: TestClient) -> None:
    """As found: the journal showed bearer tokens sent anywhere but `Authorization` (query
    `access_token`, path, `Proxy-Authorization`)."""
    token = token_for(client)
    client.get(LINKS_PATH, params={"access_token": token, "limit": 1})
    client.get(f"{LINKS_PATH}/{token}", headers=bearer(token))
    client.get(LINKS_PATH, headers={"Proxy-Authorization": f"Bearer {token}"})
    client.get(LINKS_PATH, headers={"X-Anything": token, "X-Auth": f"Bearer {token}"})
    client.get(LINKS_PATH, headers={"Cookie": f"session={token}", "X-Api-Key": "k3y-value-1234"})
    client.get(f"/api/{SANDBOX_SECRET}", params={"client_secret": SANDBOX_SECRET})
    client.post(
        TOKEN_PATH, content=f"token={token}".encode(), headers={"Content-Type": "text/plain"}
    )
    client.post(TOKEN_PATH, json={"note": f"mine is {token}", "clientSecret": SANDBOX_SECRET})
    shown = client.get(f"{CONTROL}/requests", params={"detail": 1}).text
    for secret in (token, token.split(".")[1], SANDBOX_SECRET, "k3y-value-1234"):
        assert secret not in shown
    entries = client.get(f"{CONTROL}/requests").json()["requests"]
    assert entries[1]["query"] == "access_token=***&limit=1"
    assert entries[2]["path"] == f"{LINKS_PATH}/***"
    assert entries[6]["path"] == "/api/***" and entries[6]["query"] == "client_secret=***"


def test_the_access_log_masks_tokens() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/x/eh_abc.def?access_token=eh_abc.def&limit=1", "1.1", 401),
        None,
    )
    assert AccessLogMasking(lambda: ["sbs_demo_secret"]).filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "GET /x/***?access_token=***&limit=1 HTTP/1.1" 401'


def test_a_live_link_cannot_take_a_sample_slug(client: TestClient) -> None:
    """As found: a live create could take a sandbox sample's slug, and `GET /{slug}` then
    redirected to it."""
    sample = client.get(f"/{SAMPLE_SLUG}", follow_redirects=False)
    assert sample.status_code == 302
    live = auth_headers(client, LIVE_ID, LIVE_SECRET)
    taken = _create(client, live, slug=SAMPLE_SLUG, destination="https://evil.example/phish")
    assert_error(taken, 409, "slug_taken", "slug")
    again = client.get(f"/{SAMPLE_SLUG}", follow_redirects=False)
    assert again.headers["location"] == sample.headers["location"]


def test_live_q_reads_only_the_workspace_rows() -> None:
    """As found: `q` in a live workspace scanned every workspace's rows."""
    store = LiveStore.open(None, seed=1)
    small = Workspace("ws_small", "personal")
    big = Workspace("ws_big", "company", link_quota=10**6)
    store.create(small, NewLink("Launch day", "https://example.com/launch"), T0)
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    def search_steps() -> int:
        nonlocal steps
        steps = 0
        store._db.set_progress_handler(count, 10)  # SQLite VM instructions, in tens
        page = store.query(small.id, LinkQuery(q="launch"))
        store._db.set_progress_handler(None, 0)
        assert [link.title for link in page.items] == ["Launch day"]
        return steps

    alone = search_steps()
    for n in range(3000):
        store.create(big, NewLink(f"Launch {n}", f"https://example.com/launch/{n}"), T0)
    assert search_steps() <= alone + 20  # 3,000 rows of another workspace would be thousands
    store.close()


def test_an_application_whose_workspace_is_missing_is_refused_at_start(tmp_path: Path) -> None:
    """As found: such an application answered 403 api_access_disabled."""
    fixtures = _fixtures_copy(tmp_path)
    apps = json.loads((fixtures / "applications.json").read_text())
    apps["applications"].append(
        {
            "clientId": "orphan",
            "clientSecret": "orphan_secret",
            "environment": "live",
            "workspaceId": "ws_nowhere",
        }
    )
    (fixtures / "applications.json").write_text(json.dumps(apps))
    line = _start_error(["serve", "--fixtures", str(fixtures)])
    assert "orphan" in line and "ws_nowhere" in line


# --- start-up errors: one line, exit 2, never a traceback -----------------------------------------


def _fixtures_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "fixtures"
    folder.mkdir()
    for name in ("applications.json", "sandbox_links.json"):
        (folder / name).write_bytes((default_fixtures_dir() / name).read_bytes())
    return folder


def _start_error(argv: list[str], env: dict[str, str] | None = None) -> str:
    """Run the CLI in a subprocess that must stop at start: its one stderr line."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EMULATOR_")}
    result = subprocess.run(
        [sys.executable, "-m", "emulator", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environment, **(env or {})},
        check=False,
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("8here-emulator: "), result.stderr
    assert not result.stdout
    return lines[0]


def test_malformed_fixtures_are_one_line(tmp_path: Path) -> None:
    """As found: `--fixtures` with malformed files printed a traceback (exit 1)."""
    fixtures = _fixtures_copy(tmp_path)
    (fixtures / "sandbox_links.json").write_text('{"version": 1, "links": [{"id": 3}]}')
    assert "sandbox_links.json" in _start_error(["serve", "--fixtures", str(fixtures)])
    (fixtures / "sandbox_links.json").write_text("not json")
    assert "sandbox_links.json" in _start_error(["serve", "--fixtures", str(fixtures)])
    shipped = default_fixtures_dir() / "sandbox_links.json"
    (fixtures / "sandbox_links.json").write_bytes(shipped.read_bytes())
    (fixtures / "applications.json").write_text('{"workspaces": 3}')
    assert "applications.json" in _start_error(["serve", "--fixtures", str(fixtures)])


def test_a_port_out_of_range_is_one_line() -> None:
    """As found: `--port 99999` listened on a random port. Port 0 (any free port) is refused too:
    a user must know where the emulator listens."""
    assert "99999" in _start_error(["serve", "--port", "99999"])
    assert "0" in _start_error(["serve", "--port", "0"])
    assert "70000" in _start_error(["serve"], {"EMULATOR_PORT": "70000"})
    assert "EMULATOR_PORT" in _start_error(["serve"], {"EMULATOR_PORT": "eighty"})


def test_a_blank_control_token_is_one_line() -> None:
    """As found: a blank `--control-token` locked the control API."""
    assert "blank" in _start_error(["serve", "--control-token", "  "])
    assert "blank" in _start_error(["serve"], {"EMULATOR_CONTROL_TOKEN": "  "})
    secret = "two words"
    assert secret not in _start_error(["serve", "--control-token", secret])


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--port", "-1"],
        ["serve", "--sandbox-size", "0"],
        ["serve", "--seed", "-1"],
        ["serve", "--seed", "x"],
        ["serve", "--request-timeout", "0"],
        ["serve", "--request-timeout", "nan"],
        ["serve", "--allowed-hosts", "bad host"],
        ["serve", "--log-level", "loud"],
        ["serve", "--control-token", "two words"],
        ["serve", "--no-such-flag"],
        ["serve", "--host", "no-such-host.invalid"],
        ["serve", "--db", "/nonexistent-dir/live.db"],
    ],
)
def test_every_bad_flag_is_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli_main(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("8here-emulator: "), err


def test_a_port_in_use_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert str(port) in _start_error(["serve", "--port", str(port)])


def test_the_served_allowed_hosts_setting() -> None:
    """The compose/service-container setting: EMULATOR_ALLOWED_HOSTS=emulator."""
    with (
        serve_process({"EMULATOR_ALLOWED_HOSTS": "emulator"}) as served,
        httpx.Client(base_url=served.url, timeout=10) as http,
    ):
        by_name = http.get(f"{CONTROL}/clock", headers={"Host": f"emulator:{served.port}"})
        assert by_name.status_code == 200
        refused = http.get(f"{CONTROL}/clock", headers={"Host": "db:5432"})
        assert_error(refused, 403, "host_refused")
