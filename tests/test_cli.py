"""`python -m emulator serve` as a user runs it: a subprocess on a free port, stopped by SIGTERM or
Ctrl-C, its greeting and farewell read from stderr."""

from __future__ import annotations

import argparse
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest

import emulator
from emulator.cli import build_parser, main

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
SERVE = [sys.executable, "-m", "emulator", "serve"]
JSON = {"Content-Type": "application/json"}  # what every state-changing control call declares
DEMO = {"clientId": "sb_demo_client", "clientSecret": "sbs_demo_secret"}
LIVE = {"clientId": "lv_demo_personal", "clientSecret": "lvs_demo_personal_secret"}
LINKS = "/api/api-applications/public/links"
TOKEN = "/api/api-applications/token"
FAULT_HEADER = "X-Emulator-Fault"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(**extra: str) -> dict[str, str]:
    """The parent's environment without EMULATOR_* settings that would change the defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMULATOR_")}
    env.pop("NO_COLOR", None)
    env["PYTHONUNBUFFERED"] = "1"
    return {**env, **extra}


def _wait_healthy(process: subprocess.Popen[bytes], base_url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited {process.returncode} before it was healthy")
        try:
            response = httpx.get(f"{base_url}/_emulator/health", timeout=1.0)
            if response.status_code == 200:
                assert response.json() == {"status": "ok"}
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # polling a subprocess for readiness, not testing time
    raise AssertionError(f"server not healthy within {START_TIMEOUT} s")


class Served:
    """A `serve` subprocess; its stderr is read as it comes, so the greeting can be read while it
    runs and the farewell once it has stopped."""

    def __init__(self, process: subprocess.Popen[bytes], url: str) -> None:
        self.process = process
        self.url = url
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._chunks.append(line)

    @property
    def stderr(self) -> str:
        return b"".join(self._chunks).decode()

    def greeting(self) -> list[str]:
        """The greeting's lines: from its title to its last line (the README pointer)."""
        deadline = time.monotonic() + START_TIMEOUT
        while "Try it" not in self.stderr:
            assert self.process.poll() is None, f"exited {self.process.returncode}: {self.stderr}"
            assert time.monotonic() < deadline, f"no greeting within {START_TIMEOUT} s"
            time.sleep(0.02)
        lines = self.stderr.splitlines()
        first = next(i for i, line in enumerate(lines) if "is serving the 8here" in line)
        last = next(i for i, line in enumerate(lines) if "Try it" in line)
        return lines[first : last + 1]

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send `sig`, wait (bounded) for the exit and the last of stderr; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)
            raise AssertionError(f"not stopped {STOP_TIMEOUT} s after {sig.name}") from None
        self._reader.join(timeout=STOP_TIMEOUT)
        return code

    def farewell(self) -> str:
        lines = [line for line in self.stderr.splitlines() if "8here-emulator: stopped" in line]
        assert len(lines) == 1, self.stderr
        return lines[0]


def _serve(
    *flags: str, env: dict[str, str] | None = None, command: list[str] = SERVE
) -> Iterator[Served]:
    """`command` (`serve`, or another that serves, like `proxy`) on a free port, until it is
    healthy."""
    port = _free_port()
    process = subprocess.Popen(
        [*command, "--port", str(port), "--log-level", "warning", *flags],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env or _env(),
    )
    served = Served(process, f"http://127.0.0.1:{port}")
    try:
        try:
            _wait_healthy(process, served.url)
        except AssertionError as exc:
            served.stop()
            raise AssertionError(f"{exc}: {served.stderr[-2000:]}") from None
        yield served
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)
        served._reader.join(timeout=STOP_TIMEOUT)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def served() -> Iterator[Served]:
    yield from _serve()


def _token(client: httpx.Client, credentials: dict[str, str]) -> dict[str, str]:
    token = client.post("/api/api-applications/token", json=credentials)
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['accessToken']}"}


def _line(greeting: list[str], label: str) -> str:
    """The text of the greeting's line labelled `label`, with the path that may follow it on a
    line of its own."""
    found = []
    for number, line in enumerate(greeting):
        name, _, text = line.strip().partition("  ")
        if name == label:
            following = greeting[number + 1] if number + 1 < len(greeting) else ""
            path = following.strip() if following.startswith("    /") else ""
            found.append(f"{text.strip()} {path}".strip())
    assert len(found) == 1, f"no {label!r} line in:\n" + "\n".join(greeting)
    return found[0]


def _assert_fits(greeting: list[str]) -> None:
    assert len(greeting) <= 10, greeting
    for line in greeting:
        assert len(ANSI.sub("", line)) <= 100, line


# -- the greeting ---------------------------------------------------------------------------------


def test_serve_answers_health_and_the_api(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=5.0) as client:
        assert client.get("/_emulator/health").json() == {"status": "ok"}
        listed = client.get(LINKS, headers=_token(client, DEMO))
        assert listed.status_code == 200
        assert listed.json()["pagination"]["total"] >= 200


def test_the_greeting_says_where_everything_is_and_it_is_true(served: Served) -> None:
    greeting = served.greeting()
    _assert_fits(greeting)
    assert not any("\x1b" in line for line in greeting), "colour on a pipe"
    assert f"8here-emulator {emulator.__version__}" in greeting[0]
    assert _line(greeting, "API").split()[0] == served.url
    inspector = _line(greeting, "Inspector").split()[0]
    assert inspector == f"{served.url}/_emulator/ui"
    assert "sb_demo_client / sbs_demo_secret" in _line(greeting, "Sandbox app")
    assert "240 sample links" in _line(greeting, "Sample set")
    assert "in memory: lost on exit" in _line(greeting, "Live links")
    assert "open to anyone on this machine" in _line(greeting, "Control API")
    assert f"BASE={served.url}" in _line(greeting, "Try it")
    # What it says holds: the page answers, the credentials work, the count is the API's.
    with httpx.Client(timeout=5.0) as client:
        page = client.get(inspector)
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
    with httpx.Client(base_url=served.url, timeout=5.0) as client:
        listed = client.get(LINKS, headers=_token(client, DEMO))
        assert listed.json()["pagination"]["total"] == 240
    assert served.stop() in (0, -signal.SIGTERM)
    assert served.process.stdout is not None
    assert served.process.stdout.read() == b"", "the greeting goes to stderr, not stdout"
    assert "no live links were made in memory, so none are lost" in served.farewell()


def test_serve_stops_on_sigterm(served: Served) -> None:
    code = served.stop()
    assert code in (0, -signal.SIGTERM), code
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{served.url}/_emulator/health", timeout=1.0)


def test_ctrl_c_says_the_live_links_in_memory_are_lost(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=5.0) as client:
        body = {"title": "Gone", "destination": "https://example.com/g"}
        for _ in range(2):
            created = client.post(LINKS, json=body, headers=_token(client, LIVE))
            assert created.status_code == 201, created.text
    assert served.stop(signal.SIGINT) == 0
    assert served.farewell() == (
        "8here-emulator: stopped; 2 live links lost: they were in memory (--db FILE keeps them)"
    )
    assert "Traceback" not in served.stderr


def test_serve_renders_the_sample_qr_codes_in_the_background() -> None:
    from emulator.cli import build_parser, settings_from
    from emulator.testing import EmulatorServer

    settings = settings_from(build_parser().parse_args(["serve"]))
    assert settings.warm_up

    with EmulatorServer(settings) as server:
        state = server.app.state.emulator
        assert httpx.get(f"{server.url}/_emulator/health", timeout=5.0).status_code == 200
        deadline = time.monotonic() + START_TIMEOUT
        while not state.warm:
            assert time.monotonic() < deadline, "the warm-up never finished"
            time.sleep(0.02)


def test_no_control_hides_the_control_api() -> None:
    for served in _serve("--no-control"):
        greeting = served.greeting()
        assert "control API off" in _line(greeting, "Inspector")
        assert "/_emulator/ui" not in served.stderr
        assert not any("Control API" in line for line in greeting)
        assert "sb_demo_client" in _line(greeting, "Sandbox app")
        with httpx.Client(base_url=served.url, timeout=5.0) as client:
            assert client.get("/_emulator/health").status_code == 200
            response = client.post("/_emulator/reset", headers=JSON)
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "not_found"
            assert client.get("/_emulator/requests").status_code == 404
            assert client.get("/_emulator/ui").status_code == 404
            _assert_fault_header_ignored(client)
        served.stop()


def _assert_fault_header_ignored(client: httpx.Client) -> None:
    for value in ("503", "429; retry-after=20", "network=reset", "nonsense;;"):
        answered = client.post(TOKEN, json=DEMO, headers={FAULT_HEADER: value})
        assert answered.status_code == 200, (value, answered.text)


def test_request_faults_are_on_unless_no_request_faults() -> None:
    for served in _serve("--quiet"):
        with httpx.Client(base_url=served.url, timeout=5.0) as client:
            refused = client.post(TOKEN, json=DEMO, headers={FAULT_HEADER: "503"})
            assert refused.status_code == 503
            with pytest.raises(httpx.ReadError):  # a reset, on the socket of `serve`
                client.post(TOKEN, json=DEMO, headers={FAULT_HEADER: "network=reset"})
        served.stop()
    for served in _serve("--no-request-faults", "--quiet"):
        with httpx.Client(base_url=served.url, timeout=5.0) as client:
            _assert_fault_header_ignored(client)
            planned = {"status": 502, "times": 1, "path": TOKEN}
            assert client.post("/_emulator/faults", json=planned).status_code == 201
            assert client.post(TOKEN, json=DEMO).status_code == 502  # the control API's still work
        served.stop()


def test_control_token_flag_guards_the_control_api_and_is_never_printed() -> None:
    for served in _serve("--control-token", "cli-t0k", "--log-level", "debug"):
        greeting = served.greeting()
        assert "needs the control token" in _line(greeting, "Control API")
        assert "asks for the control token" in _line(greeting, "Inspector")
        with httpx.Client(base_url=served.url, timeout=5.0) as client:
            assert client.post("/_emulator/reset", headers=JSON).status_code == 401
            guarded = {**JSON, "Authorization": "Bearer cli-t0k"}
            assert client.post("/_emulator/reset", headers=guarded).status_code == 200
        served.stop()
        assert "cli-t0k" not in served.stderr


def test_quiet_prints_neither_greeting_nor_farewell() -> None:
    for served in _serve("--quiet"):
        with httpx.Client(base_url=served.url, timeout=5.0) as client:
            _token(client, DEMO)
        assert served.stop() in (0, -signal.SIGTERM)
        assert served.stderr == "", "--quiet with --log-level warning prints nothing at all"


def test_a_line_per_request_only_with_access_log_and_no_token_in_it() -> None:
    for flags, logged in (((), False), (("--access-log",), True)):
        for served in _serve("--log-level", "info", "--quiet", *flags):
            with httpx.Client(base_url=served.url, timeout=5.0) as client:
                headers = _token(client, DEMO)
                token = headers["Authorization"].split()[1]
                assert client.get(f"{LINKS}?access_token={token}", headers=headers).is_success
            served.stop()
            assert served.process.stdout is not None
            printed = served.process.stdout.read().decode() + served.stderr  # uvicorn's: stdout
            lines = [line for line in printed.splitlines() if LINKS in line]
            assert token not in printed
            if logged:
                assert len(lines) == 1 and "access_token=***" in lines[0], printed
            else:
                assert lines == [], printed


def _read_terminal(fd: int, until: str, timeout: float) -> str:
    """What a terminal shows, read from its master side until `until` appears (bounded)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while until.encode() not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {until!r} on the terminal within {timeout} s: {seen!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:  # the other side closed
                break
    return seen.decode()


@pytest.mark.parametrize("no_color", [False, True], ids=["terminal", "terminal-NO_COLOR"])
def test_colour_only_on_a_terminal_and_never_with_no_color(no_color: bool) -> None:
    port = _free_port()
    env = _env(TERM="xterm-256color", **({"NO_COLOR": "1"} if no_color else {}))
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [*SERVE, "--port", str(port), "--log-level", "warning"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
        env=env,
    )
    os.close(terminal)
    try:
        _wait_healthy(process, f"http://127.0.0.1:{port}")
        shown = _read_terminal(controller, "Try it", START_TIMEOUT)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=STOP_TIMEOUT)
        os.close(controller)
    assert f"http://127.0.0.1:{port}/_emulator/ui" in ANSI.sub("", shown)
    if no_color:
        assert "\x1b" not in shown
    else:
        assert ANSI.search(shown), shown
    _assert_fits(ANSI.sub("", shown).strip().splitlines())


# -- help, version, variables ---------------------------------------------------------------------


def _cli(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emulator", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        env=_env(**env),
        check=False,
    )


def test_no_command_prints_the_help_and_exits_2() -> None:
    result = _cli()
    assert result.returncode == 2
    assert result.stdout.startswith("usage: 8here-emulator")
    for command in ("serve", "drift", "snapshot"):
        assert re.search(rf"^\s+{command}\s+\w", result.stdout, re.MULTILINE), result.stdout


def test_version_is_the_package_version() -> None:
    result = _cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"8here-emulator {version('8here-emulator')}\n"
    assert version("8here-emulator") == emulator.__version__


def test_unknown_command_fails() -> None:
    result = _cli("bogus")
    assert result.returncode == 2
    assert "invalid choice: 'bogus'" in result.stderr
    assert "Traceback" not in result.stderr


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command of the CLI, nested ones included, from the parser itself."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                yield from _commands(command, (*path, name))


COMMANDS = [path for path, _ in _commands(build_parser())]
# "(default: …; env NAME", the default possibly holding parentheses of its own
VARIABLE = re.compile(r"\(default: [^;]+; env ((?:EMULATOR|EIGHTHERE)_[A-Z_]+)")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("EMULATOR_", "EIGHTHERE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "100")
    return monkeypatch


def _parser_of(path: tuple[str, ...]) -> argparse.ArgumentParser:
    return dict(_commands(build_parser()))[path]


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [action for action in parser._actions if action.option_strings]


def _help_of(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """`8here-emulator … --help` read as a user reads it: each option's help text (its lines
    joined), by the option's first spelling."""
    with pytest.raises(SystemExit) as exited:
        main([*path, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert all(len(line) <= 100 for line in text.splitlines()), text
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("  -"):
            blocks.append([line.strip()])
        elif blocks and blocks[-1] and re.match(r" {3,}\S", line):
            blocks[-1].append(line.strip())
        else:
            blocks.append([])
    entries = [" ".join(block) for block in blocks if block]
    parser = _parser_of(path)
    formatter = parser._get_formatter()
    helps = {}
    for action in _options(parser):
        invocation = formatter._format_action_invocation(action)
        entry = next((e for e in entries if f"{e} ".startswith(f"{invocation} ")), "")
        helps[action.option_strings[0]] = entry[len(invocation) :].strip()
    return helps


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "top")
def test_every_option_of_every_command_has_a_help_line_with_default_and_variable(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str], clean_env: pytest.MonkeyPatch
) -> None:
    for action in _parser_of(path)._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action._choices_actions:
                assert command.help, f"{' '.join(path)} {command.dest}: no summary in --help"
    variables = []
    for flag, text in _help_of(path, capsys).items():
        assert text, f"{' '.join(path)} {flag}: no help line"
        if flag in ("-h", "--version"):
            continue
        found = VARIABLE.search(text)
        assert found, f"{' '.join(path)} {flag}: no default and variable in {text!r}"
        variables.append(found.group(1))
    assert len(variables) == len(set(variables)), variables


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "top")
def test_every_variable_named_in_the_help_sets_its_option(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str], clean_env: pytest.MonkeyPatch
) -> None:
    helps = _help_of(path, capsys)
    required = [action for action in _options(_parser_of(path)) if action.required]
    for action in _options(_parser_of(path)):
        found = VARIABLE.search(helps[action.option_strings[0]])
        if found is None:
            continue
        others = [arg for a in required if a is not action for arg in (a.option_strings[0], "7")]
        before = (
            None
            if action.required
            else getattr(build_parser().parse_args([*path, *others]), action.dest)
        )
        if action.nargs == 0:
            value, expected = "1", "True"
        elif action.choices:
            value = expected = str(next(c for c in action.choices if c != action.default))
        else:
            value = expected = "7"
        clean_env.setenv(found.group(1), value)
        after = getattr(build_parser().parse_args([*path, *others]), action.dest)
        clean_env.delenv(found.group(1))
        assert after != before and expected in str(after), (path, action.dest, before, after)


def test_a_variable_sets_its_flag_and_the_flag_wins() -> None:
    for served in _serve("--no-control", env=_env(EMULATOR_NO_CONTROL="1", EMULATOR_QUIET="yes")):
        with httpx.Client(base_url=served.url, timeout=5.0) as client:
            assert client.get("/_emulator/ui").status_code == 404
        served.stop()
        assert served.stderr == ""


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "EMULATOR_PORT",
            "eighty",
            "argument --port: EMULATOR_PORT='eighty' is not a whole number",
        ),
        ("EMULATOR_NO_CONTROL", "maybe", "argument --no-control: EMULATOR_NO_CONTROL='maybe' is "),
        (
            "EMULATOR_LOG_LEVEL",
            "loud",
            "argument --log-level: EMULATOR_LOG_LEVEL='loud' is not one",
        ),
    ],
)
def test_a_bad_variable_is_a_usage_error_that_names_it(
    variable: str, value: str, message: str
) -> None:
    result = _cli("serve", **{variable: value})
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


# -- the live store -------------------------------------------------------------------------------


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
    link_id = None
    for served in _serve("--db", str(db)):
        assert _line(served.greeting(), "Live links").endswith(f"kept in {db}")
        with httpx.Client(base_url=served.url, timeout=5.0) as client:
            created = client.post(LINKS, json=body, headers=_token(client, LIVE))
            assert created.status_code == 201, created.text
            link_id = created.json()["id"]
        assert served.stop() in (0, -signal.SIGTERM)
        assert served.farewell() == f"8here-emulator: stopped; 1 live link kept in {db}"
    for served in _serve("--db", str(db)):
        with httpx.Client(base_url=served.url, timeout=5.0) as client:
            detail = client.get(f"{LINKS}/{link_id}", headers=_token(client, LIVE))
            assert detail.status_code == 200, detail.text
            assert detail.json()["slug"] == "durable-link"
        served.stop(signal.SIGINT)
        assert served.farewell() == f"8here-emulator: stopped; 1 live link kept in {db}"
