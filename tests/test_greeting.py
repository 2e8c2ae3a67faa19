"""What `serve` says once it listens and when it stops, for each kind of setup, in-process."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from emulator import __version__
from emulator.greeting import (
    Line,
    fit,
    print_greeting,
    render,
    serve_farewell,
    serve_greeting,
    wants_colour,
)
from emulator.models import Workspace
from emulator.serving import Listening
from emulator.settings import Settings, default_fixtures_dir
from emulator.state import EmulatorState

LOCAL = Listening("127.0.0.1", 8080)


@pytest.fixture
def state() -> Iterator[EmulatorState]:
    emulator = EmulatorState(Settings())
    yield emulator
    emulator.close()


def _lines(state: EmulatorState, listening: Listening = LOCAL) -> dict[str, str]:
    title, lines = serve_greeting(state, listening)
    assert "8here-emulator" in title
    return {line.label: " ".join(filter(None, (line.text, line.path))) for line in lines}


def test_the_default_greeting(state: EmulatorState) -> None:
    lines = _lines(state)
    assert lines == {
        "API": "http://127.0.0.1:8080  (contract: /openapi.json)",
        "Inspector": "http://127.0.0.1:8080/_emulator/ui",
        "Sandbox app": "sb_demo_client / sbs_demo_secret",
        "Sample set": "240 sample links (the packaged set)",
        "Live links": "in memory: lost on exit (--db FILE keeps them)",
        "Control API": "open to anyone on this machine: no token (--control-token guards it)",
        "Try it": "the README's curl examples work here with BASE=http://127.0.0.1:8080",
    }


def test_the_readme_shows_the_default_greeting(state: EmulatorState) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    rendered = render(*serve_greeting(state, LOCAL))
    shown = rendered.replace(f" {__version__} ", " 0.1.0 ")
    assert f"```\n{shown}```\n" in readme, rendered


@pytest.mark.parametrize(
    ("host", "url", "note"),
    [
        ("0.0.0.0", "http://127.0.0.1:9000", "every interface: 0.0.0.0:9000"),
        ("::", "http://[::1]:9000", "every interface: [::]:9000"),
        ("::1", "http://[::1]:9000", None),
        ("localhost", "http://localhost:9000", None),
        ("192.168.1.20", "http://192.168.1.20:9000", None),
    ],
)
def test_the_url_is_one_a_browser_here_can_open(
    state: EmulatorState, host: str, url: str, note: str | None
) -> None:
    lines = _lines(state, Listening(host, 9000))
    assert lines["API"].split()[0] == url
    assert (note is not None) == ("every interface" in lines["API"])
    if note:
        assert note in lines["API"]
    assert lines["Try it"].endswith(f"BASE={url}")
    loopback = host in ("::1", "localhost")
    assert ("anyone on this machine" in lines["Control API"]) == loopback
    assert ("anyone who can reach the port" in lines["Control API"]) == (not loopback)


def test_no_control_and_a_control_token(state: EmulatorState) -> None:
    state.settings = replace(state.settings, control=False)
    lines = _lines(state)
    assert lines["Inspector"].startswith("control API off")
    assert "Control API" not in lines
    state.settings = replace(state.settings, control=True, control_token="s3cret-t0ken")
    title, greeting = serve_greeting(state, LOCAL)
    assert "asks for the control token" in {g.label: g.text for g in greeting}["Inspector"]
    assert "needs the control token" in {g.label: g.text for g in greeting}["Control API"]
    assert "s3cret-t0ken" not in render(title, greeting)


def test_a_generated_sample_set() -> None:
    state = EmulatorState(Settings(sandbox_size=1234))
    try:
        assert _lines(state)["Sample set"] == "1,234 generated links (--sandbox-size)"
    finally:
        state.close()


def test_own_fixtures_keep_their_secret_out_of_the_greeting(tmp_path: Path) -> None:
    fixtures = tmp_path / "fixtures"
    shutil.copytree(default_fixtures_dir(), fixtures, ignore=shutil.ignore_patterns("*.py"))
    copy = EmulatorState(Settings(fixtures_dir=fixtures))
    try:  # the published demo secret, in a copy of the packaged fixtures: shown
        assert _lines(copy)["Sandbox app"] == "sb_demo_client / sbs_demo_secret"
    finally:
        copy.close()
    applications = json.loads((fixtures / "applications.json").read_text())
    for app in applications["applications"]:
        app["clientSecret"] = "real-looking-secret-" + app["clientId"]
    (fixtures / "applications.json").write_text(json.dumps(applications))
    state = EmulatorState(Settings(fixtures_dir=fixtures))
    try:
        title, lines = serve_greeting(state, LOCAL)
        shown = _lines(state)
        assert shown["Sandbox app"] == "sb_demo_client (its secret is in applications.json)"
        assert shown["Sample set"] == f"240 links from {fixtures.resolve()}"
        assert "real-looking-secret" not in render(title, lines)
    finally:
        state.close()


def test_farewells(state: EmulatorState, tmp_path: Path) -> None:
    assert serve_farewell(state) == (
        "8here-emulator: stopped; no live links were made in memory, so none are lost"
    )
    workspace = Workspace("ws_personal_demo", "personal")
    _create_links(state, workspace, 3)
    assert serve_farewell(state) == (
        "8here-emulator: stopped; 3 live links lost: they were in memory (--db FILE keeps them)"
    )
    db = tmp_path / "live.db"
    durable = EmulatorState(Settings(db_path=str(db)))
    try:
        _create_links(durable, workspace, 1)
        assert serve_farewell(durable) == f"8here-emulator: stopped; 1 live link kept in {db}"
        assert _lines(durable)["Live links"] == f"kept in {db}"
    finally:
        durable.close()


def _create_links(state: EmulatorState, workspace: Workspace, count: int) -> None:
    from emulator.models import NewLink

    for number in range(count):
        new = NewLink(title=f"Link {number}", destination="https://example.com/x", slug=None)
        state.live.create(workspace, new, state.clock.now())


# -- rendering ------------------------------------------------------------------------------------


def test_long_text_is_shortened_in_the_middle_to_fit_100_columns() -> None:
    text = render("title", [Line("Sample set", "many words " * 20 + "the end")])
    line = text.splitlines()[1]
    assert len(line) == 100
    assert line.startswith("  Sample set  many words many")
    assert line.endswith("the end") and "..." in line
    assert fit("short", 10) == "short"


def test_a_long_path_is_never_cut_but_takes_a_line_of_its_own() -> None:
    short, long = "/data/emulator.db", "/tmp/" + "deep/" * 16 + "live.db"
    assert render("t", [Line("Live links", "kept in", path=short)]).splitlines()[1:] == [
        f"  Live links  kept in {short}"
    ]
    assert render("t", [Line("Live links", "kept in", path=long)]).splitlines()[1:] == [
        "  Live links  kept in",
        f"    {long}",
    ]
    assert len(f"    {long}") <= 100


def test_at_most_ten_lines() -> None:
    render("title", [Line(f"l{n}", "x") for n in range(9)])
    with pytest.raises(ValueError, match="at most 10 lines"):
        render("title", [Line(f"l{n}", "x") for n in range(10)])


def test_every_setup_at_once_fits_in_ten_lines_of_100_columns(tmp_path: Path) -> None:
    deep = tmp_path / "folder"
    fixtures = deep / "fixtures"
    shutil.copytree(default_fixtures_dir(), fixtures, ignore=shutil.ignore_patterns("*.py"))
    settings = Settings(fixtures_dir=fixtures, db_path=str(deep / "live.db"), control_token="t")
    state = EmulatorState(settings)
    try:
        text = render(*serve_greeting(state, Listening("0.0.0.0", 65535)))
    finally:
        state.close()
    lines = text.splitlines()
    assert len(lines) <= 10
    assert all(len(line) <= 100 for line in lines), text
    assert str(deep / "live.db") in text
    assert str(fixtures) in text


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "env", "colour"),
    [
        (_Terminal(), {}, True),
        (_Terminal(), {"NO_COLOR": "1"}, False),
        (_Terminal(), {"NO_COLOR": ""}, True),  # no-color.org: set and not empty
        (_Terminal(), {"TERM": "dumb"}, False),
        (io.StringIO(), {}, False),
    ],
    ids=["terminal", "NO_COLOR", "NO_COLOR-empty", "dumb", "pipe"],
)
def test_colour_only_on_a_terminal(
    stream: io.StringIO, env: dict[str, str], colour: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert wants_colour(stream) is colour
    print_greeting("title", [Line("API", "http://x", "link")], stream)
    assert ("\x1b[" in stream.getvalue()) is colour


def test_a_closed_stream_does_not_stop_the_server() -> None:
    stream = io.StringIO()
    stream.close()
    print_greeting("title", [Line("API", "http://x")], stream)  # no exception


def test_the_proxys_greeting_and_farewell(tmp_path: Path) -> None:
    from emulator.greeting import proxy_farewell, proxy_greeting
    from emulator.proxy.app import create_proxy_app

    record = tmp_path / "exchanges.jsonl"
    app = create_proxy_app(Settings(), "https://user:pass@8here.in/", record=record)
    state = app.state.emulator
    try:
        title, lines = proxy_greeting(state, LOCAL)
        shown = {line.label: " ".join(filter(None, (line.text, line.path))) for line in lines}
        assert "is proxying the 8here Open Links API" in title
        assert shown["API"] == "http://127.0.0.1:8080/api/… forwarded to https://8here.in"
        assert shown["Recording"].endswith(str(record))
        assert "pass" not in render(title, lines)  # the target's user:password is not shown
        assert shown["Control API"].startswith("open to anyone on this machine")
        assert proxy_farewell(state) == (
            "8here-emulator: stopped; 0 exchanges checked, 0 with differences (0 groups); "
            f"0 recorded in {record}"
        )
    finally:
        state.checks.recording.close()  # type: ignore[union-attr]
        state.close()


def test_a_start_scenario_is_named_and_its_links_are_in_memory(tmp_path: Path) -> None:
    settings = Settings(
        db_path=str(tmp_path / "live.db"),
        scenarios=("slow-network", "quota-nearly-full"),
        latency_scale=0.5,
    )
    state = EmulatorState(settings)
    try:
        lines = _lines(state)
        farewell = serve_farewell(state)
    finally:
        state.close()
    assert lines["Scenario"] == (
        "slow-network + quota-nearly-full: every reset returns to it; latency x0.5"
    )
    assert lines["Live links"] == (
        f"the scenario's, in memory: every reset rebuilds them ({tmp_path / 'live.db'} is not used)"
    )
    assert farewell == (
        "8here-emulator: stopped; 9 live links were in memory, "
        "rebuilt by the scenario at each start"
    )
    assert not (tmp_path / "live.db").exists()


def test_every_setup_at_once_with_a_scenario_fits_in_ten_lines(tmp_path: Path) -> None:
    settings = Settings(
        fixtures_dir=default_fixtures_dir(),
        db_path=str(tmp_path / ("deep" * 20) / "live.db"),
        control_token="t",
        scenarios=("busy-link", "slow-network"),
        latency_scale=0,
    )
    state = EmulatorState(settings)
    try:
        text = render(*serve_greeting(state, Listening("0.0.0.0", 65535)))
    finally:
        state.close()
    assert len(text.splitlines()) <= 10
    assert all(len(line) <= 100 for line in text.splitlines()), text
    assert "busy-link + slow-network: every reset returns to it; latency off" in text
