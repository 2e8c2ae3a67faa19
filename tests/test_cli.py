"""`python -m emulator serve` as a user runs it: a subprocess on a free port, stopped by SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
SERVE = [sys.executable, "-m", "emulator", "serve"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env() -> dict[str, str]:
    """The parent's environment without EMULATOR_* settings that would change the defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMULATOR_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _wait_healthy(process: subprocess.Popen[bytes], base_url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, stderr = process.communicate(timeout=STOP_TIMEOUT)
            raise AssertionError(f"server exited {process.returncode}: {stderr.decode()[-2000:]}")
        try:
            response = httpx.get(f"{base_url}/_emulator/health", timeout=1.0)
            if response.status_code == 200:
                assert response.json() == {"status": "ok"}
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # polling a subprocess for readiness, not testing time
    raise AssertionError(f"server not healthy within {START_TIMEOUT} s")


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)
        raise AssertionError("server did not stop within the bounded time after SIGTERM") from None


class Served:
    def __init__(self, process: subprocess.Popen[bytes], url: str) -> None:
        self.process = process
        self.url = url


def _serve(*flags: str) -> Iterator[Served]:
    port = _free_port()
    process = subprocess.Popen(
        [*SERVE, "--port", str(port), "--log-level", "warning", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(process, url)
        yield Served(process, url)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def served() -> Iterator[Served]:
    yield from _serve()


def test_serve_answers_health_and_the_api(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=5.0) as client:
        assert client.get("/_emulator/health").json() == {"status": "ok"}
        token = client.post(
            "/api/api-applications/token",
            json={"clientId": "sb_demo_client", "clientSecret": "sbs_demo_secret"},
        )
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['accessToken']}"}
        listed = client.get("/api/api-applications/public/links", headers=headers)
        assert listed.status_code == 200
        assert listed.json()["pagination"]["total"] >= 200


def test_serve_stops_on_sigterm(served: Served) -> None:
    code = _stop(served.process)
    assert code in (0, -signal.SIGTERM), code
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{served.url}/_emulator/health", timeout=1.0)


def test_no_control_hides_the_control_api() -> None:
    for served in _serve("--no-control"):
        with httpx.Client(base_url=served.url, timeout=5.0) as client:
            assert client.get("/_emulator/health").status_code == 200
            response = client.post("/_emulator/reset")
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "not_found"
            assert client.get("/_emulator/requests").status_code == 404
        _stop(served.process)


def test_control_token_flag_guards_the_control_api() -> None:
    for served in _serve("--control-token", "cli-t0k"):
        with httpx.Client(base_url=served.url, timeout=5.0) as client:
            assert client.post("/_emulator/reset").status_code == 401
            guarded = {"Authorization": "Bearer cli-t0k"}
            assert client.post("/_emulator/reset", headers=guarded).status_code == 200
        _stop(served.process)


@pytest.mark.parametrize("argv", [["--help"], ["serve", "--help"]], ids=["top", "serve"])
def test_help(argv: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "emulator", *argv],
        capture_output=True,
        timeout=30,
        env=_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert "usage" in out.lower()
    if argv[0] == "serve":
        for flag in ("--port", "--db", "--no-control", "--control-token", "--host"):
            assert flag in out


def test_unknown_command_fails() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "emulator", "bogus"],
        capture_output=True,
        timeout=30,
        env=_env(),
        check=False,
    )
    assert result.returncode != 0
    assert b"Traceback" not in result.stderr


@pytest.mark.parametrize(
    "garbage",
    [os.urandom(4096), b"this is not a database\n" * 200, b"SQLite format 3\x00" + b"\xff" * 4080],
    ids=["random", "text", "bad-header"],
)
def test_corrupt_db_exits_with_a_one_line_message(tmp_path: Path, garbage: bytes) -> None:
    db = tmp_path / "corrupt.db"
    db.write_bytes(garbage)
    result = subprocess.run(
        [*SERVE, "--port", str(_free_port()), "--db", str(db)],
        capture_output=True,
        timeout=30,
        env=_env(),
        check=False,
    )
    assert result.returncode != 0
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert str(db) in lines[0]


def test_db_file_keeps_live_links_across_restarts(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    body = {"title": "Durable", "destination": "https://example.com/d", "slug": "durable-link"}
    credentials = {"clientId": "lv_demo_personal", "clientSecret": "lvs_demo_personal_secret"}
    link_id = None
    for served in _serve("--db", str(db)):
        with httpx.Client(base_url=served.url, timeout=5.0) as client:
            token = client.post("/api/api-applications/token", json=credentials).json()
            headers = {"Authorization": f"Bearer {token['accessToken']}"}
            created = client.post("/api/api-applications/public/links", json=body, headers=headers)
            assert created.status_code == 201, created.text
            link_id = created.json()["id"]
        assert _stop(served.process) in (0, -signal.SIGTERM)
    for served in _serve("--db", str(db)):
        with httpx.Client(base_url=served.url, timeout=5.0) as client:
            token = client.post("/api/api-applications/token", json=credentials).json()
            headers = {"Authorization": f"Bearer {token['accessToken']}"}
            detail = client.get(f"/api/api-applications/public/links/{link_id}", headers=headers)
            assert detail.status_code == 200, detail.text
            assert detail.json()["slug"] == "durable-link"
        _stop(served.process)
