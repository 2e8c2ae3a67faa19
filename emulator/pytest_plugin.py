"""Pytest fixtures for testing 8here clients against the emulator; registered on install.

This module loads in every pytest run wherever the package is installed, so it imports nothing
heavy: the server, Starlette and uvicorn are imported inside the fixtures that need them.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from emulator.handle import Emulator
    from emulator.settings import Settings
    from emulator.testing import EmulatorServer

IN_PROCESS_URL = "http://8here-emulator.test"
IN_PROCESS_HOST = "8here-emulator.test"  # no socket: the control API may answer for this name
# Live link ids and generated slugs derive from it, so that test runs are reproducible.
DEFAULT_SEED = 0


def _scenarios(text: str) -> tuple[str, ...]:
    """Scenario names or files, comma-separated."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


# command-line option (dest), environment variable, Settings field, type
_OPTIONS = (
    ("emulator_db", "EMULATOR_TEST_DB", "db_path", str),
    ("emulator_sandbox_size", "EMULATOR_TEST_SANDBOX_SIZE", "sandbox_size", int),
    ("emulator_short_base", "EMULATOR_TEST_SHORT_BASE", "short_base", str),
    ("emulator_rate_limit", "EMULATOR_TEST_RATE_LIMIT", "rate_limit_per_minute", int),
    ("emulator_seed", "EMULATOR_TEST_SEED", "seed", int),
    ("emulator_fixtures", "EMULATOR_TEST_FIXTURES", "fixtures_dir", Path),
    ("emulator_scenario", "EMULATOR_TEST_SCENARIO", "scenarios", _scenarios),
    ("emulator_latency_scale", "EMULATOR_TEST_LATENCY_SCALE", "latency_scale", float),
)
MARKER = "emulator_scenario"
_TIMINGS = pytest.StashKey[dict[str, list[Any]]]()
_WORKER_OUTPUT = "8here_emulator_timings"
_UNFIRED = ("warn", "fail", "ignore")
_HANDLE_FIXTURES = ("emulator", "emulator_app")


class UnfiredFaultWarning(UserWarning):
    """A test passed with faults it injected still pending: the requests it meant to fail or
    delay never came, so the test may not test what it says."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("8here-emulator", "8here-emulator fixtures")
    group.addoption(
        "--emulator-db",
        metavar="PATH",
        help="SQLite file for live links (one per xdist worker; emptied before each test); "
        "env EMULATOR_TEST_DB",
    )
    group.addoption(
        "--emulator-sandbox-size",
        type=int,
        metavar="N",
        help="serve a generated sample set of N links; env EMULATOR_TEST_SANDBOX_SIZE",
    )
    group.addoption(
        "--emulator-short-base",
        metavar="URL",
        help="base of shortUrl; env EMULATOR_TEST_SHORT_BASE",
    )
    group.addoption(
        "--emulator-rate-limit",
        type=int,
        metavar="N",
        help="requests per minute for the sandbox and every live workspace; "
        "env EMULATOR_TEST_RATE_LIMIT",
    )
    group.addoption(
        "--emulator-seed",
        type=int,
        metavar="N",
        help=f"seed of live link ids and generated slugs (default {DEFAULT_SEED}, so runs repeat); "
        "env EMULATOR_TEST_SEED",
    )
    group.addoption(
        "--emulator-fixtures",
        type=Path,
        metavar="DIR",
        help="fixture folder to serve (applications.json, sandbox_links.json), e.g. one made by "
        "8here-emulator snapshot (default: the shipped one); env EMULATOR_TEST_FIXTURES",
    )
    group.addoption(
        "--emulator-scenario",
        type=_scenarios,
        metavar="NAMES",
        help="scenarios (shipped names or files, comma-separated) the session's emulators start "
        "from, and every reset goes back to; env EMULATOR_TEST_SCENARIO",
    )
    group.addoption(
        "--emulator-latency-scale",
        type=float,
        metavar="X",
        help="multiply the delays of a scenario's latency profile by X (0: none); "
        "env EMULATOR_TEST_LATENCY_SCALE",
    )
    group.addoption(
        "--emulator-unfired-faults",
        choices=_UNFIRED,
        help="what a passing test with faults that never fired gets: warn (the default), fail, "
        "or ignore; ini emulator_unfired_faults, env EMULATOR_TEST_UNFIRED_FAULTS",
    )
    parser.addini(
        "emulator_unfired_faults",
        "what a passing test with faults that never fired gets: warn, fail or ignore",
        default="warn",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(scenario): load a scenario (a shipped name, a file relative to the test's "
        "own, or a dict) into the emulator or emulator_app fixture before the test",
    )


@pytest.fixture(scope="session")
def emulator_settings(pytestconfig: pytest.Config) -> Settings:
    """The emulator's Settings for the session, from --emulator-db, --emulator-sandbox-size,
    --emulator-short-base, --emulator-rate-limit, --emulator-seed, --emulator-fixtures,
    --emulator-scenario and --emulator-latency-scale, or the EMULATOR_TEST_DB, _SANDBOX_SIZE,
    _SHORT_BASE, _RATE_LIMIT, _SEED, _FIXTURES, _SCENARIO and _LATENCY_SCALE environment
    variables. The seed is DEFAULT_SEED unless given, so live ids and generated slugs are the same
    on every run. Override it (session-scoped) in a conftest.py:
    `return dataclasses.replace(emulator_settings, short_base="http://sho.rt")`.
    """
    from emulator.settings import Settings

    values: dict[str, Any] = {"seed": DEFAULT_SEED}
    for dest, env, field, kind in _OPTIONS:
        given = pytestconfig.getoption(dest)
        if given is None and os.environ.get(env):
            given = kind(os.environ[env])
        if given is not None:
            values[field] = given
    return Settings(**values)


@pytest.fixture(scope="session")
def emulator_server(
    emulator_settings: Settings, pytestconfig: pytest.Config
) -> Iterator[EmulatorServer]:
    """The emulator served by uvicorn in a background thread on a free port, started once per
    session (once per xdist worker): `.url`, `.app`. Tests normally take `emulator`, which
    resets it first. The sample set's QR codes are rendered before the first test; the terminal
    summary gives both times (start-up: fixture call to first 200).
    """
    started = time.perf_counter()
    import urllib.request

    from emulator.testing import EmulatorServer

    server = EmulatorServer(_own_database(emulator_settings, pytestconfig, "")).start()
    try:
        with urllib.request.urlopen(f"{server.url}/_emulator/health", timeout=10) as response:
            assert response.status == 200
        _timings(pytestconfig)["server"].append(
            [_worker(pytestconfig), time.perf_counter() - started]
        )
        _warm_up(server.app.state.emulator, pytestconfig)
        yield server
    finally:
        server.stop()


@pytest.fixture
def emulator(
    emulator_server: EmulatorServer, pytestconfig: pytest.Config, request: pytest.FixtureRequest
) -> Emulator:
    """The session's emulator, reset for this test (live links, added applications, tokens,
    rate windows, journal, faults, clock; requests of earlier tests still in flight are fenced
    off): a handle with `url`, the default `credentials`, `token(app)`, `clock` (`advance`,
    `set`, `freeze`, `now`), `journal` (the API requests received, oldest first), `fault(...)`,
    `register_application(...)`, `visit(slug, ...)` and the `assert_*` client-behaviour checks.
    Faults the test injected that never fired are reported when it passes. A test marked
    `@pytest.mark.emulator_scenario("file.yaml")` starts from that scenario.
    """
    from emulator.handle import Emulator

    handle = Emulator(emulator_server.app, emulator_server.url)
    return _marked_scenario(_reset(handle, pytestconfig), request)


@pytest.fixture(scope="session")
def _emulator_asgi(emulator_settings: Settings, pytestconfig: pytest.Config) -> Iterator[Emulator]:
    from emulator.app import create_app
    from emulator.handle import Emulator

    settings = _own_database(emulator_settings, pytestconfig, "asgi")
    hosts = (*settings.allowed_hosts, IN_PROCESS_HOST)
    app = create_app(replace(settings, allowed_hosts=hosts))
    handle = Emulator(app, IN_PROCESS_URL, in_process=True)
    try:
        _warm_up(app.state.emulator, pytestconfig)
        yield handle
    finally:
        handle.close()
        app.state.emulator.close()


@pytest.fixture
def emulator_app(
    _emulator_asgi: Emulator, pytestconfig: pytest.Config, request: pytest.FixtureRequest
) -> Emulator:
    """An in-process emulator with no socket at all, reset for this test: an ASGI app for
    `httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator_app), base_url=emulator_app.url)`
    and, for a sync client, `httpx.Client(transport=emulator_app.sync_transport(), base_url=...)`,
    with the same handle as `emulator` (`clock`, `journal`, `token()`...). Its state is its own,
    not the `emulator` server's. The `emulator_scenario` marker works here too.
    """
    return _marked_scenario(_reset(_emulator_asgi, pytestconfig), request)


def _marked_scenario(handle: Emulator, request: pytest.FixtureRequest) -> Emulator:
    """Load the scenario of the test's `emulator_scenario` marker: a shipped name, a dict, or
    a file relative to the test file's folder."""
    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        return handle
    if len(marker.args) != 1 or marker.kwargs:
        raise pytest.UsageError(f"@pytest.mark.{MARKER} takes one scenario: a name, file or dict")
    from emulator.scenario_source import is_shipped_name

    scenario = marker.args[0]
    if isinstance(scenario, str | os.PathLike) and not (
        isinstance(scenario, str) and is_shipped_name(scenario)
    ):
        scenario = request.path.parent / scenario
    handle.load_scenario(scenario)
    return handle


def _warm_up(state: Any, config: pytest.Config) -> None:
    """Render the sample set's QR codes now, so that no test pays for them."""
    started = time.perf_counter()
    count = state.warm_up()
    _timings(config)["warm"].append([_worker(config), time.perf_counter() - started, count])


def _reset(handle: Emulator, config: pytest.Config) -> Emulator:
    started = time.perf_counter()
    handle.reset()
    _timings(config)["reset"].append(time.perf_counter() - started)
    return handle


def _worker(config: pytest.Config) -> str:
    workerinput: dict[str, Any] = getattr(config, "workerinput", {})
    return str(workerinput.get("workerid", ""))


def _own_database(settings: Settings, config: pytest.Config, variant: str) -> Settings:
    """A file database of its own for each xdist worker and variant, since reset empties it."""
    parts = [part for part in (_worker(config), variant) if part]
    if settings.db_path in (None, ":memory:") or not parts:
        return settings
    path = Path(settings.db_path)
    own = path.with_name(f"{path.stem}.{'-'.join(parts)}{path.suffix}")
    return replace(settings, db_path=str(own))


def _timings(config: pytest.Config) -> dict[str, list[Any]]:
    return config.stash.setdefault(_TIMINGS, {"server": [], "warm": [], "reset": []})


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    result = yield  # a test that failed is not judged again
    _report_unfired_faults(item)
    return result


def _report_unfired_faults(item: pytest.Item) -> None:
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    handles = [funcargs[name] for name in _HANDLE_FIXTURES if name in funcargs]
    unfired = [
        fault
        for handle in handles
        for fault in handle.pending_faults
        if fault.source != "scenario"  # a scenario's faults are its setting, not a test's asks
    ]
    if not unfired:
        return
    config = item.config
    mode = (
        config.getoption("emulator_unfired_faults")
        or os.environ.get("EMULATOR_TEST_UNFIRED_FAULTS")
        or config.getini("emulator_unfired_faults")
    )
    if mode not in _UNFIRED:
        raise pytest.UsageError(f"emulator_unfired_faults must be one of {', '.join(_UNFIRED)}")
    if mode == "ignore":
        return
    count = f"{len(unfired)} fault{'s' if len(unfired) > 1 else ''}"
    message = (
        f"{count} injected by this test never fired (or not as often as asked):"
        + "".join(f"\n  {fault}" for fault in unfired)
        + "\nDrop a fault meant not to fire with emulator.clear_faults()."
    )
    if mode == "fail":
        pytest.fail(message, pytrace=False)
    warnings.warn(UnfiredFaultWarning(message), stacklevel=1)


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the timings to the controller
        workeroutput[_WORKER_OUTPUT] = _timings(session.config)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    theirs = getattr(node, "workeroutput", {}).get(_WORKER_OUTPUT)
    if theirs:
        ours = _timings(node.config)
        for key, values in theirs.items():
            ours[key].extend(values)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    import statistics

    timings = config.stash.get(_TIMINGS, None)
    if not timings or not (timings["server"] or timings["reset"]):
        return
    parts = []
    if timings["server"]:
        starts = ", ".join(
            f"{seconds:.3f} s" + (f" ({worker})" if worker else "")
            for worker, seconds in sorted(timings["server"])
        )
        parts.append(f"session server ready in {starts} (fixture call to first 200)")
    if timings["warm"]:
        by_worker: dict[str, float] = {}
        for worker, seconds, _count in timings["warm"]:
            by_worker[worker] = by_worker.get(worker, 0.0) + seconds
        warm = ", ".join(
            f"{seconds:.3f} s" + (f" ({worker})" if worker else "")
            for worker, seconds in sorted(by_worker.items())
        )
        count = max(count for _worker, _seconds, count in timings["warm"])
        parts.append(f"QR codes of {count} sample links rendered in {warm} before the first test")
    if timings["reset"]:
        median_ms = statistics.median(timings["reset"]) * 1000
        parts.append(f"per-test reset median {median_ms:.3f} ms over {len(timings['reset'])} tests")
    terminalreporter.write_line("8here-emulator: " + "; ".join(parts))
