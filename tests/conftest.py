"""Shared fixtures and helpers: an in-process emulator, tokens, registered apps and the clock.

Every helper talks to the emulator over HTTP (the public API and the control API), as a user's
test suite would; nothing here reaches into the emulator's state.

Test modules import the helpers with `from conftest import ...` (pytest puts `tests/` on the path).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from starlette.testclient import TestClient

from emulator.app import create_app
from emulator.settings import Settings

TOKEN_PATH = "/api/api-applications/token"
LINKS_PATH = "/api/api-applications/public/links"
CONTROL = "/_emulator"

SANDBOX_CLIENT_ID = "sb_demo_client"
SANDBOX_SECRET = "sbs_demo_secret"
SANDBOX_LIMIT = 15
# A fixed instant for frozen-clock tests: 2026-01-01T00:00:00Z.
FROZEN_NOW = "2026-01-01T00:00:00Z"
FROZEN_EPOCH = 1_767_225_600
HIGH_LIMIT = 100_000
STAMP_PATTERN = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"

# Starlette's TestClient sends `Host: testserver`. The control API answers only for IP
# addresses, localhost and the names it is given (--allowed-hosts), so the test apps are given
# this one, as a compose file gives the emulator's service name.
TESTCLIENT_HOST = "testserver"
JSON = {"Content-Type": "application/json"}

_app_numbers = itertools.count(1)


def client_settings(settings: Settings | None = None) -> Settings:
    """`settings` (default: the defaults) with the TestClient's host allowed."""
    settings = settings or Settings()
    return dataclasses.replace(settings, allowed_hosts=(*settings.allowed_hosts, TESTCLIENT_HOST))


def emulator_client(settings: Settings | None = None) -> TestClient:
    """A TestClient over a fresh emulator; use it as a context manager (runs the lifespan)."""
    return TestClient(create_app(client_settings(settings)))


@pytest.fixture
def client() -> Iterator[TestClient]:
    """A fresh emulator with the default settings, for one test."""
    with emulator_client() as test_client:
        yield test_client


@pytest.fixture
def frozen_client(client: TestClient) -> TestClient:
    """`client` with its clock frozen at FROZEN_NOW."""
    set_clock(client, FROZEN_NOW)
    return client


@pytest.fixture
def fast_headers(client: TestClient) -> dict[str, str]:
    """Authorization headers of a sandbox app registered with a limit no test reaches."""
    return register_fast_app(client)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_for(
    client: TestClient, client_id: str = SANDBOX_CLIENT_ID, secret: str = SANDBOX_SECRET
) -> str:
    """Exchange credentials for an access token (asserting the exchange succeeds)."""
    response = client.post(TOKEN_PATH, json={"clientId": client_id, "clientSecret": secret})
    assert response.status_code == 200, response.text
    token = response.json()["accessToken"]
    assert isinstance(token, str) and token
    return token


def auth_headers(
    client: TestClient, client_id: str = SANDBOX_CLIENT_ID, secret: str = SANDBOX_SECRET
) -> dict[str, str]:
    return bearer(token_for(client, client_id, secret))


def register_app(
    client: TestClient,
    client_id: str,
    secret: str,
    *,
    environment: str = "sandbox",
    rate_limit: int | None = HIGH_LIMIT,
    workspace_id: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Register an application through the control API; returns its JSON (asserting 201)."""
    body: dict[str, Any] = {
        "clientId": client_id,
        "clientSecret": secret,
        "environment": environment,
    }
    if rate_limit is not None:
        body["rateLimitPerMinute"] = rate_limit
    if workspace_id is not None:
        body["workspaceId"] = workspace_id
    elif environment == "live":
        body["workspaceId"] = f"ws_{client_id}"
    response = client.post(f"{CONTROL}/applications", json=body, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def register_fast_app(client: TestClient, client_id: str | None = None) -> dict[str, str]:
    """A sandbox app with a limit no test reaches; returns its Authorization headers."""
    client_id = client_id or f"fast_sandbox_{next(_app_numbers)}"
    secret = f"{client_id}_secret"
    register_app(client, client_id, secret, rate_limit=HIGH_LIMIT)
    return auth_headers(client, client_id, secret)


def set_clock(client: TestClient, now: str = FROZEN_NOW) -> dict[str, Any]:
    """Freeze the emulator's clock at `now` (ISO 8601)."""
    response = client.post(f"{CONTROL}/clock", json={"now": now})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def reset(client: Any, headers: Mapping[str, str] | None = None) -> Any:
    """`POST /_emulator/reset`, declared JSON as every state-changing control call must be."""
    return client.post(f"{CONTROL}/reset", headers={**JSON, **(headers or {})})


def advance_clock(client: TestClient, seconds: float) -> dict[str, Any]:
    response = client.post(f"{CONTROL}/clock", json={"advanceSeconds": seconds})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    """The response is the JSON error envelope with this status and code (and field, if given)."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"].strip(), body
    assert set(error) <= {"code", "message", "field"}, body
    if field is not None:
        assert error.get("field") == field, body
    return error


def assert_envelope(response: Any) -> None:
    """Any 4xx: a JSON error envelope with a non-empty code and message."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    error = body["error"]
    assert isinstance(error.get("code"), str) and error["code"], body
    assert isinstance(error.get("message"), str) and error["message"], body


# --- `8here-emulator serve` in a process of its own ---------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@dataclass
class Served:
    url: str
    port: int
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def serve_process(env: Mapping[str, str] | None = None) -> Iterator[Served]:
    """`python -m emulator serve` (log level warning) on a free port, as users start it, with
    the parent's environment but its EMULATOR_* settings, plus `env`."""
    port = free_port()
    command = [sys.executable, "-m", "emulator", "serve", "--port", str(port)]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EMULATOR_")}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [*command, "--log-level", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**environment, **(env or {})},
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, process, log)
            yield Served(url, port, process)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def served_process() -> Iterator[Served]:
    """`serve_process()`, with its memory readable from /proc."""
    if not Path("/proc/self/status").exists():
        pytest.skip("reads the server's memory from /proc")
    with serve_process() as served:
        yield served


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: IO[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            log.seek(0)
            pytest.fail(f"the emulator exited: {log.read().decode(errors='replace')}")
        try:
            if httpx.get(f"{url}/_emulator/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the emulator did not start within 30 s"
        time.sleep(0.02)
