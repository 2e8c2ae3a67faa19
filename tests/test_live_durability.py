"""`8here-emulator serve --db PATH` as a process: a 201 survives SIGKILL, an old schema is upgraded,
and a file the emulator cannot use stops it at start with one clear line (no traceback).
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from invariants import assert_wire_link_consistent

from emulator.live_store import MIGRATIONS, SCHEMA_VERSION, LiveStore
from emulator.models import NewLink, Workspace

SERVE = [sys.executable, "-m", "emulator", "serve", "--log-level", "warning"]
TOKEN_PATH = "/api/api-applications/token"
LINKS_PATH = "/api/api-applications/public/links"
PERSONAL = {"clientId": "lv_demo_personal", "clientSecret": "lvs_demo_personal_secret"}
COMPANY_A = {"clientId": "lv_demo_company_a", "clientSecret": "lvs_demo_company_a_secret"}
COMPANY_B = {"clientId": "lv_demo_company_b", "clientSecret": "lvs_demo_company_b_secret"}
START_TIMEOUT = 20.0
EXIT_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMULATOR_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Served:
    def __init__(self, process: subprocess.Popen[bytes], url: str) -> None:
        self.process = process
        self.url = url
        self.client = httpx.Client(base_url=url, timeout=10.0)

    def headers(self, credentials: dict[str, str]) -> dict[str, str]:
        response = self.client.post(TOKEN_PATH, json=credentials)
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['accessToken']}"}

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, nothing is flushed or closed by the emulator."""
        os.kill(self.process.pid, signal.SIGKILL)
        assert self.process.wait(timeout=EXIT_TIMEOUT) == -signal.SIGKILL


@contextmanager
def serve(db: Path, *flags: str) -> Iterator[Served]:
    port = _free_port()
    process = subprocess.Popen(
        [*SERVE, "--port", str(port), "--db", str(db), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    served = Served(process, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                stderr = process.communicate(timeout=EXIT_TIMEOUT)[1].decode()
                raise AssertionError(f"server exited {process.returncode}: {stderr[-2000:]}")
            try:
                if served.client.get("/_emulator/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"server not healthy within {START_TIMEOUT} s"
            time.sleep(0.05)  # polling a subprocess for readiness, not testing time
        yield served
    finally:
        served.client.close()
        if process.poll() is None:
            process.kill()
        process.wait(timeout=EXIT_TIMEOUT)
        if process.stderr is not None:
            process.stderr.close()


def _refused_at_start(db: Path | str) -> str:
    """Run serve against `db`, expecting it to stop at once; returns its stderr."""
    result = subprocess.run(
        [*SERVE, "--port", str(_free_port()), "--db", str(db)],
        capture_output=True,
        timeout=EXIT_TIMEOUT,
        env=_env(),
        check=False,
    )
    stderr = result.stderr.decode()
    assert result.returncode != 0, stderr
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert str(db) in lines[0], stderr
    return lines[0]


# --- SIGKILL right after a 201 ---------------------------------------------------------------


def test_sigkill_right_after_a_201_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    with serve(db) as first:
        headers = first.headers(PERSONAL)
        company = first.headers(COMPANY_A)
        made = []
        for n in range(4):
            body = {"title": f"Kept {n} ✓", "destination": f"https://example.com/{n}"}
            if n == 0:
                body["slug"] = "kept-slug"
            response = first.client.post(LINKS_PATH, json=body, headers=headers)
            assert response.status_code == 201, response.text
            made.append(response.json())
        assert first.client.get("/kept-slug", follow_redirects=False).status_code == 302
        visits = first.client.post("/_emulator/visits", json={"slug": made[1]["slug"], "count": 3})
        assert visits.status_code == 201
        last = first.client.post(
            LINKS_PATH,
            json={"title": "Company", "destination": "https://c.example/"},
            headers=company,
        )
        assert last.status_code == 201, last.text
        first.kill()  # immediately after the last 201
    with serve(db) as second:
        headers = second.headers(PERSONAL)
        for n, link in enumerate(made):
            detail = second.client.get(f"{LINKS_PATH}/{link['id']}", headers=headers)
            assert detail.status_code == 200, detail.text
            body = detail.json()
            assert_wire_link_consistent(body)
            for field in ("id", "title", "slug", "destination", "createdAt", "shortUrl"):
                assert body[field] == link[field]
            assert body["clicks"] == {0: 1, 1: 3}.get(n, 0)
        listed = second.client.get(LINKS_PATH, params={"limit": 100}, headers=headers).json()
        assert sorted(x["id"] for x in listed["data"]) == sorted(x["id"] for x in made)
        # The company link is there for the other company app, and the slug is still taken.
        b = second.headers(COMPANY_B)
        assert second.client.get(f"{LINKS_PATH}/{last.json()['id']}", headers=b).status_code == 200
        again = second.client.post(
            LINKS_PATH,
            json={"title": "x", "destination": "https://e.com", "slug": "kept-slug"},
            headers=b,
        )
        assert again.status_code == 409 and again.json()["error"]["code"] == "slug_taken"
        fresh = second.client.post(
            LINKS_PATH, json={"title": "After", "destination": "https://e.com"}, headers=headers
        )
        assert fresh.status_code == 201
        assert fresh.json()["id"] not in {x["id"] for x in made} | {last.json()["id"]}
        used = {
            ws["id"]: ws.get("linksUsed")
            for ws in second.client.get("/_emulator/applications").json()["workspaces"]
        }
        assert used["ws_personal_demo"] == 5 and used["ws_company_demo"] == 1


def test_sigkill_during_a_burst_keeps_every_acknowledged_create(tmp_path: Path) -> None:
    db = tmp_path / "burst.db"
    acknowledged: list[str] = []
    lock = threading.Lock()
    total = 60
    with serve(db) as first:
        headers = first.headers(COMPANY_A)
        killed = threading.Event()

        def create(n: int) -> None:
            if killed.is_set():
                return
            body = {
                "title": f"Burst {n}",
                "destination": f"https://e.com/{n}",
                "slug": f"burst-{n}",
            }
            try:
                with httpx.Client(base_url=first.url, timeout=10.0) as client:
                    response = client.post(LINKS_PATH, json=body, headers=headers)
            except httpx.TransportError:
                return  # the process died while this one was in flight: either outcome is fine
            assert response.status_code == 201, response.text
            with lock:
                acknowledged.append(response.json()["id"])
                if len(acknowledged) == total // 3 and not killed.is_set():
                    killed.set()
                    os.kill(first.process.pid, signal.SIGKILL)

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(create, range(total), timeout=60))
        first.process.wait(timeout=EXIT_TIMEOUT)
        assert killed.is_set()
    assert len(acknowledged) >= total // 3
    with serve(db) as second:
        headers = second.headers(COMPANY_B)
        listed = second.client.get(LINKS_PATH, params={"limit": 100}, headers=headers).json()
        stored = {x["id"] for x in listed["data"]}
        assert set(acknowledged) <= stored, "every 201 was committed before it was sent"
        assert listed["pagination"]["total"] == len(stored) <= total
        for link in listed["data"]:
            detail = second.client.get(f"{LINKS_PATH}/{link['id']}", headers=headers)
            assert detail.status_code == 200
            assert_wire_link_consistent(detail.json())


# --- an older schema is upgraded -------------------------------------------------------------


def test_a_version_1_file_is_upgraded_when_served(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    connection = sqlite3.connect(db)
    connection.executescript(MIGRATIONS[0])
    connection.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    connection.execute("INSERT INTO schema_version (version) VALUES (1)")
    stamp = int(datetime(2025, 6, 1, tzinfo=UTC).timestamp())
    connection.execute(
        "INSERT INTO links (id, workspace_id, title, slug, destination, created_at, updated_at)"
        " VALUES ('lnk_from_v1_000001', 'ws_personal_demo', 'Große Straße', 'from-v1',"
        " 'https://Example.com/Été', ?, ?)",
        (stamp, stamp),
    )
    connection.commit()
    connection.close()
    with serve(db) as served:
        headers = served.headers(PERSONAL)
        detail = served.client.get(f"{LINKS_PATH}/lnk_from_v1_000001", headers=headers)
        assert detail.status_code == 200, detail.text
        assert detail.json()["createdAt"] == "2025-06-01T00:00:00Z"
        assert_wire_link_consistent(detail.json())
        for q in ("STRASSE", "große", "example.com/été"):
            found = served.client.get(LINKS_PATH, params={"q": q}, headers=headers).json()
            assert [x["id"] for x in found["data"]] == ["lnk_from_v1_000001"], q
        made = served.client.post(
            LINKS_PATH, json={"title": "New", "destination": "https://e.com"}, headers=headers
        )
        assert made.status_code == 201
        assert served.client.get("/from-v1", follow_redirects=False).status_code == 302
        served.kill()
    with sqlite3.connect(db) as check:
        versions = [row[0] for row in check.execute("SELECT version FROM schema_version")]
        assert sorted(versions) == list(range(1, SCHEMA_VERSION + 1))
        assert check.execute("SELECT clicks FROM links WHERE slug = 'from-v1'").fetchone() == (1,)


# --- a file the emulator cannot use: one line at start ---------------------------------------


def test_a_missing_directory_is_refused_at_start(tmp_path: Path) -> None:
    line = _refused_at_start(tmp_path / "no" / "such" / "dir" / "live.db")
    assert line.startswith("8here-emulator:")


def test_a_directory_is_refused_at_start(tmp_path: Path) -> None:
    _refused_at_start(tmp_path)


def test_a_newer_schema_is_refused_at_start(tmp_path: Path) -> None:
    db = tmp_path / "future.db"
    LiveStore.open(str(db)).close()
    with sqlite3.connect(db) as connection:
        connection.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    assert "newer" in _refused_at_start(db)


def test_a_truncated_file_is_refused_at_start(tmp_path: Path) -> None:
    db = tmp_path / "truncated.db"
    live = LiveStore.open(str(db))
    workspace = Workspace("ws_personal_demo", "personal", link_quota=10_000)
    live._db.execute("PRAGMA synchronous=OFF")  # building a fixture: no fsync per create
    for n in range(500):
        live.create(workspace, NewLink(f"t{n}", f"https://e.com/{n}"), datetime.now(UTC))
    live.close()
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    _refused_at_start(db)


@pytest.mark.parametrize(
    "how",
    [
        pytest.param("whole-page", id="whole-page"),
        pytest.param("half-page", id="half-page"),
    ],
)
def test_a_damaged_page_is_refused_at_start(tmp_path: Path, how: str) -> None:
    """A valid header and schema over garbled cells: refused at start, not a 500 on some list."""
    db = tmp_path / "damaged.db"
    live = LiveStore.open(str(db))
    workspace = Workspace("ws_personal_demo", "personal", link_quota=10_000)
    now = datetime.now(UTC)
    live._db.execute("PRAGMA synchronous=OFF")  # building a fixture: no fsync per create
    for n in range(2000):
        live.create(workspace, NewLink(f"title {n} " + "x" * 100, f"https://e.com/{n}"), now)
    live.close()
    data = bytearray(db.read_bytes())
    start = (len(data) // 2) // 4096 * 4096
    if how == "whole-page":
        data[start : start + 4096] = hashlib.sha256(b"x").digest() * 128
    else:  # a torn write: random bytes from the middle of one page into the next
        data[start + 2048 : start + 2048 + 4096] = random.Random(0).randbytes(4096)
    db.write_bytes(bytes(data))
    assert "damaged" in _refused_at_start(db)
