"""`8here-emulator proxy` as a user runs it, and `--record FILE`: the seed's four calls recorded
with no secret and no token anywhere in the file; a line that would leak is not written.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
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
    bearer,
    token_for,
)
from test_cli import START_TIMEOUT, Served, _env, _serve

from emulator.app import create_app
from emulator.proxy.app import create_proxy_app
from emulator.proxy.record import FORMAT, RecordError, Secrets, contract_digest
from emulator.settings import Settings, contract_path
from emulator.testing import ThreadedServer

PROXY = [sys.executable, "-m", "emulator", "proxy"]


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    with ThreadedServer(create_app(Settings()), name="record-target") as server:
        yield server.url


def _proxy(*flags: str) -> Iterator[Served]:
    yield from _serve(*flags, command=PROXY)


def _greeting(proxy: Served) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while "Control API" not in proxy.stderr:
        assert proxy.process.poll() is None, proxy.stderr
        assert time.monotonic() < deadline, f"no greeting within {START_TIMEOUT} s"
        time.sleep(0.02)  # waiting for a subprocess's output, not testing time
    return proxy.stderr[proxy.stderr.index("is proxying") :]


def _seed_calls(base_url: str) -> tuple[str, list[httpx.Response]]:
    """The seed's four calls: the token, a list, a create, a detail. The access token and the
    answers."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        exchanged = client.post(
            TOKEN_PATH, json={"clientId": SANDBOX_CLIENT_ID, "clientSecret": SANDBOX_SECRET}
        )
        token = exchanged.json()["accessToken"]
        auth = bearer(token)
        listed = client.get(
            f"{LINKS_PATH}?limit=25&offset=0&sortBy=updatedAt&sortOrder=desc&q=launch"
            "&hasVisits=true",
            headers=auth,
        )
        created = client.post(
            LINKS_PATH,
            json={
                "title": "Launch page",
                "destination": "https://8here.in/launch",
                "slug": "launch-page",
            },
            headers=auth,
        )
        detail = client.get(f"{LINKS_PATH}/{listed.json()['data'][0]['id']}", headers=auth)
    return token, [exchanged, listed, created, detail]


def test_the_seeds_four_calls_are_recorded_without_a_secret_or_a_token(
    target: str, tmp_path: Path
) -> None:
    record = tmp_path / "exchanges.jsonl"
    for proxy in _proxy("--target", target, "--record", str(record)):
        greeting = _greeting(proxy)
        assert target in greeting and str(record) in greeting
        token, answers = _seed_calls(proxy.url)
        assert [a.headers["x-emulator-check"] for a in answers] == ["ok"] * 4
        assert proxy.stop() in (0, -signal.SIGTERM)
        farewell = proxy.farewell()
    assert "4 exchanges checked, 0 with differences" in farewell
    assert f"4 recorded in {record}" in farewell
    text = record.read_text(encoding="utf-8")
    header, *exchanges = [json.loads(line) for line in text.splitlines()]
    assert header["format"] == FORMAT and header["version"] == 1
    assert header["target"] == target
    assert header["contract"] == {"sha256": contract_digest(contract_path())}
    assert [(e["request"]["method"], e["response"]["status"]) for e in exchanges] == [
        ("POST", 200),
        ("GET", 200),
        ("POST", 201),
        ("GET", 200),
    ]
    assert exchanges[1]["response"]["body"] == answers[1].json()  # JSON as JSON
    assert exchanges[0]["request"]["body"]["clientSecret"] == "***"
    assert exchanges[0]["response"]["body"]["accessToken"] == "***"
    assert ["authorization", "Bearer ***"] in [
        [k.lower(), v] for k, v in exchanges[1]["request"]["headers"]
    ]
    assert SANDBOX_SECRET not in text
    assert token not in text and token[:16] not in text
    assert "eh_" not in text  # no emulator token at all, not even another one


def test_a_line_holding_a_secret_the_proxy_has_seen_is_not_written(
    target: str, tmp_path: Path
) -> None:
    record = tmp_path / "leak.jsonl"
    app = create_proxy_app(Settings(), target, record=record)
    with (
        ThreadedServer(app, name="record-proxy", date_header=False) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        token = token_for(client)
        # The client secret where no redaction looks for one: a link's title.
        leaky = client.post(
            LINKS_PATH,
            json={"title": SANDBOX_SECRET, "destination": "https://example.com/oops"},
            headers=bearer(token),
        )
        fine = client.get(LINKS_PATH, headers=bearer(token))
        recording = client.get(f"{CONTROL}/checks").json()["recording"]
        entries = client.get(f"{CONTROL}/requests?detail=1").json()["requests"]
    assert leaky.status_code == 201 and fine.status_code == 200
    assert leaky.headers["x-emulator-check"] == "ok"  # the exchange itself is fine
    assert recording == {"file": str(record), "written": 2, "refused": 1}
    notes = [e["check"]["notes"] for e in entries if e["path"] == LINKS_PATH]
    assert notes == [["not recorded: its line held a secret the proxy has seen"], []]
    text = record.read_text(encoding="utf-8")
    assert SANDBOX_SECRET not in text and token not in text
    assert len(text.splitlines()) == 3  # header, token exchange, the fine list


def test_a_record_file_is_appended_to_only_for_the_same_target(target: str, tmp_path: Path) -> None:
    record = tmp_path / "twice.jsonl"
    for _ in range(2):
        app = create_proxy_app(Settings(), target, record=record)
        with ThreadedServer(app, name="record-proxy", date_header=False) as server:
            httpx.get(f"{server.url}{LINKS_PATH}", timeout=30)
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [line.get("format") for line in lines] == [FORMAT, None, None]
    with pytest.raises(RecordError, match="recorded against"):
        create_proxy_app(Settings(), "http://127.0.0.1:9", record=record)
    other = tmp_path / "other.txt"
    other.write_text("not a record\n")
    with pytest.raises(RecordError, match="is not a"):
        create_proxy_app(Settings(), target, record=other)


def test_secrets_are_found_as_is_and_escaped() -> None:
    secrets = Secrets()
    secrets.add("short")  # too short to search for: it would match everywhere
    secrets.add('se"cret/with spaces')
    assert not secrets.found_in("a short line")
    assert secrets.found_in(json.dumps({"x": 'se"cret/with spaces'}))
    assert secrets.found_in("q=se%22cret%2Fwith%20spaces")
    assert secrets.found_in("q=se%22cret%2Fwith+spaces")
    assert not secrets.found_in("secret with spaces")


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PROXY, *argv], capture_output=True, text=True, timeout=30, env=_env(), check=False
    )


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        ([], "the following arguments are required: --target"),
        (["--target", "ftp://example.com"], "--target must be an http:// or https:// URL"),
        (["--target", "http://127.0.0.1:8080"], "is this proxy itself"),
        (["--target", "http://127.0.0.1:9", "--target-timeout", "0"], "must be from 0.001"),
        (["--target", "http://127.0.0.1:9", "--record", "/nonexistent/dir/x"], "cannot record"),
        (["--target", "http://127.0.0.1:9", "--port", "0"], "must be from 1 to 65535"),
    ],
)
def test_a_proxy_that_cannot_start_says_why(argv: list[str], said: str) -> None:
    result = _run(*argv)
    assert result.returncode == 2, result
    assert said in result.stderr
    assert "Traceback" not in result.stderr


def test_proxy_takes_every_flag_serve_takes() -> None:
    from emulator.cli import build_parser

    def flags(command: str) -> set[str]:
        (sub,) = [a for a in build_parser()._actions if hasattr(a, "choices") and a.choices]
        parser: Any = sub.choices[command]
        return {o for a in parser._actions for o in a.option_strings}

    assert flags("serve") <= flags("proxy")
    assert flags("proxy") - flags("serve") == {"--target", "--record", "--target-timeout"}
