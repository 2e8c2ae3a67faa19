"""The pytest plugin as a user meets it: test files in a fresh directory run by pytest in a
subprocess (pytester), plus the handle the `emulator` fixture gives a test."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import urllib.request
from dataclasses import fields
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from emulator.sample_set import render_sample_set
from emulator.settings import Settings, default_fixtures_dir

pytest_plugins = ["pytester"]

EXAMPLE = Path(__file__).parent / "examples" / "test_client_example.py"
SYNC_EXAMPLE = Path(__file__).parent / "examples" / "test_sync_client_example.py"
HEAVY_MODULES = ("uvicorn", "starlette", "segno", "faker", "httpx")
# A user's project: strict, and without the dev environment's unrelated plugins, which a user's
# virtual environment lacks and which cost seconds per pytest start.
STRICT_INI = """[pytest]
filterwarnings = error
addopts = --strict-markers -p no:cacheprovider -p no:schemathesis -p no:hypothesispytest -p no:faker
"""
LINKS = "/api/api-applications/public/links"


@pytest.fixture
def user(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A fresh project directory with strict pytest settings and no conftest."""
    for name in list(os.environ):
        if name.startswith(("EMULATOR_TEST_", "PYTEST_XDIST_")):
            monkeypatch.delenv(name)
    pytester.makeini(STRICT_INI)
    return pytester


def _run(user: pytest.Pytester, *args: str) -> pytest.RunResult:
    return user.runpytest_subprocess(*args, timeout=120)


# -- registration and import weight


def test_the_plugin_is_registered_through_the_pytest11_entry_point():
    plugins = importlib.metadata.entry_points(group="pytest11")

    assert [p.value for p in plugins if p.name == "8here_emulator"] == ["emulator.pytest_plugin"]


def test_importing_the_plugin_imports_nothing_heavy():
    probe = (
        "import sys, emulator.pytest_plugin; "
        f"print([m for m in {HEAVY_MODULES!r} if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )

    assert result.stdout.strip() == "[]"


def test_a_pytest_run_that_uses_no_fixture_loads_nothing_heavy(user):
    user.makepyfile(
        test_light=f"""
        import sys

        def test_light(pytestconfig):
            assert pytestconfig.pluginmanager.has_plugin("8here_emulator")
            assert [m for m in {HEAVY_MODULES!r} if m in sys.modules] == []
        """
    )

    _run(user).assert_outcomes(passed=1)


def test_the_fixtures_are_listed_with_their_docs(user):
    result = _run(user, "--fixtures")

    # Each fixture with its doc; pytest lists them in the order of their "file:line" text, which
    # moves whenever the plugin's lines do, so each is looked for on its own.
    for lines in (
        ["*fixtures defined from emulator.pytest_plugin*"],
        ["emulator -- *pytest_plugin.py*", "*The session's emulator, reset for this test*"],
        ["emulator_app -- *pytest_plugin.py*", "*An in-process emulator with no socket at all*"],
        [
            "emulator_settings [[]session scope[]] -- *pytest_plugin.py*",
            "*The emulator's Settings for the session, from --emulator-db*",
            "*conftest.py*",
        ],
        [
            "emulator_server [[]session scope[]] -- *pytest_plugin.py*",
            "*uvicorn in a background thread on a free port*",
        ],
    ):
        result.stdout.fnmatch_lines(lines)
    assert "_emulator_asgi" not in result.stdout.str()


def test_the_options_are_in_the_help(user):
    result = _run(user, "--help")

    result.stdout.fnmatch_lines(
        [
            "8here-emulator fixtures:",
            "*--emulator-db=PATH*",
            "*--emulator-sandbox-size=N*",
            "*--emulator-short-base=URL*",
            "*--emulator-rate-limit=N*",
            "*--emulator-fixtures=DIR*",
            "*--emulator-scenario=NAMES*",
            "*--emulator-latency-scale=X*",
        ]
    )


# -- as a user runs it


USER_TESTS = """
import json
import urllib.request

LINKS = "/api/api-applications/public/links"


def get(emulator, path, token):
    request = urllib.request.Request(
        emulator.url + path, headers={"Authorization": "Bearer " + token}
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_serves_the_sample_set(emulator):
    status, body = get(emulator, LINKS + "?limit=2", emulator.token())
    assert status == 200
    assert body["pagination"]["total"] == 240
    assert [(r.method, r.path, r.status) for r in emulator.journal] == [("GET", LINKS, 200)]


def test_starts_clean(emulator):
    assert emulator.journal == []


def test_tokens_expire_on_the_clock(emulator):
    token = emulator.token()
    emulator.clock.advance(3600)
    status, body = get(emulator, LINKS, token)
    assert (status, body["error"]["code"]) == (401, "token_expired")


def test_faults(emulator):
    emulator.fault(status=503, path=LINKS)
    assert get(emulator, LINKS, emulator.token())[0] == 503
    assert get(emulator, LINKS, emulator.token())[0] == 200


def test_live_apps_visits(emulator):
    app = emulator.register_application(environment="live", link_quota=1)
    token = emulator.token(app)
    request = urllib.request.Request(
        emulator.url + LINKS,
        data=json.dumps({"title": "T", "destination": "https://e.com", "slug": "s-1"}).encode(),
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        link = json.load(response)
    assert emulator.visit("s-1", count=2) == 2
    status, detail = get(emulator, LINKS + "/" + link["id"], token)
    assert detail["clicks"] == 2
"""


def test_a_users_test_file_passes(user):
    user.makepyfile(test_user=USER_TESTS)

    result = _run(user)

    result.assert_outcomes(passed=5)
    result.stdout.re_match_lines(
        [
            r"8here-emulator: session server ready in \d+\.\d{3} s \(fixture call to first 200\);"
            r" QR codes of 240 sample links rendered in \d+\.\d{3} s before the first test;"
            r" per-test reset median \d+\.\d{3} ms over 5 tests"
        ]
    )


ISOLATION_TESTS = """
import json
import os
import urllib.request

import pytest

LINKS = "/api/api-applications/public/links"


def call(emulator, token):
    request = urllib.request.Request(
        emulator.url + LINKS + "?limit=1", headers={"Authorization": "Bearer " + token}
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.parametrize("n", range(12))
def test_each_test_sees_only_its_own(emulator, n):
    with open(os.path.join(os.environ["REPORT_DIR"], f"{n}.json"), "w") as report:
        json.dump({"url": emulator.url, "worker": os.environ.get("PYTEST_XDIST_WORKER")}, report)
    app = emulator.register_application(rate_limit_per_minute=2)
    live = emulator.register_application(environment="live", link_quota=1)
    assert app.client_id == "sb_test_1" and live.workspace_id == "ws_lv_test_2"
    token = emulator.token(app)
    # The same client id in every test, yet each has a whole window of its own.
    assert [call(emulator, token) for _ in range(3)] == [200, 200, 429]
    # The sandbox demo app's window is untouched by the other tests.
    assert call(emulator, emulator.token()) == 200
    assert [r.client_id for r in emulator.journal] == ["sb_test_1"] * 3 + ["sb_demo_client"]
    assert emulator.state.live.count(live.workspace_id) == 0
"""


def test_tests_are_isolated_without_restarts(user, tmp_path, monkeypatch):
    monkeypatch.setenv("REPORT_DIR", str(tmp_path))
    user.makepyfile(test_isolation=ISOLATION_TESTS)

    result = _run(user)

    result.assert_outcomes(passed=12)
    assert len({json.loads(p.read_text())["url"] for p in tmp_path.glob("*.json")}) == 1


def test_under_xdist_each_worker_has_its_own_server_and_database(user, tmp_path, monkeypatch):
    monkeypatch.setenv("REPORT_DIR", str(tmp_path))
    user.makepyfile(test_isolation=ISOLATION_TESTS)
    db = tmp_path / "live.db"

    result = _run(user, "-p", "xdist", "-n", "2", f"--emulator-db={db}")

    result.assert_outcomes(passed=12)
    reports = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    urls = {report["worker"]: report["url"] for report in reports}
    assert len(urls) == 2 and len(set(urls.values())) == 2
    # Reset empties the live store, so workers sharing one file would empty each other's.
    assert sorted(p.name for p in tmp_path.glob("live.*.db")) == ["live.gw0.db", "live.gw1.db"]
    assert not db.exists()
    result.stdout.re_match_lines(
        [
            r"8here-emulator: session server ready in \d+\.\d{3} s \(gw\d\), \d+\.\d{3} s \(gw\d\)"
            r" \(fixture call to first 200\); QR codes of 240 sample links rendered in"
            r" \d+\.\d{3} s \(gw\d\), \d+\.\d{3} s \(gw\d\) before the first test;"
            r" per-test reset median \d+\.\d{3} ms over 12 tests"
        ]
    )


# -- a test's requests stay in that test

LEAKING_TESTS = """
import time

import httpx
import pytest

LINKS = "/api/api-applications/public/links"
DELAY_SECONDS = 0.3


def get(emulator, timeout):
    headers = {"Authorization": "Bearer " + emulator.token()}
    return httpx.get(emulator.url + LINKS, params={"limit": 1}, headers=headers, timeout=timeout)


@pytest.mark.parametrize("n", range(5))
def test_a_delayed_request_outlives_its_test(emulator, n):
    # What the previous test left in flight has finished by now, one way or another.
    time.sleep(DELAY_SECONDS + 0.2)
    emulator.clock.freeze()

    assert get(emulator, timeout=5).headers["X-RateLimit-Remaining"] == "14"
    assert [(r.path, r.status) for r in emulator.journal] == [(LINKS, 200)]
    assert emulator.state.live.count("ws_personal_demo") == 0

    # Leave a request in flight for the next test: the client gives up before the delay ends.
    emulator.fault(delay_ms=int(DELAY_SECONDS * 1000), path=LINKS)
    with pytest.raises(httpx.ReadTimeout):
        get(emulator, timeout=0.05)
    deadline = time.monotonic() + 10
    while emulator.pending_faults:  # until the server has started it (on a busy machine, later)
        assert time.monotonic() < deadline
        time.sleep(0.005)
"""


@pytest.mark.parametrize("workers", [[], ["-p", "xdist", "-n", "2"]], ids=["serial", "xdist"])
def test_a_delayed_request_that_outlives_its_test_never_reaches_the_next(user, workers):
    """Finding 1 of issue 11: the delayed request used to be journaled in the next test."""
    user.makepyfile(test_leak=LEAKING_TESTS)

    _run(user, *workers).assert_outcomes(passed=5)


# -- settings


SETTINGS_PROBE = """
import json
import os

def test_probe(emulator, emulator_settings):
    with open(os.environ["REPORT"], "w") as report:
        json.dump({
            "db": emulator.state.settings.db_path,
            "size": len(emulator.state.sandbox),
            "short_base": emulator_settings.short_base,
        }, report)
"""


def _probe(user: pytest.Pytester, tmp_path: Path, *args: str) -> dict:
    user.makepyfile(test_probe=SETTINGS_PROBE)
    report = tmp_path / "report.json"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REPORT", str(report))
        _run(user, *args).assert_outcomes(passed=1)
    return json.loads(report.read_text())


def test_settings_come_from_the_command_line(user, tmp_path):
    db = tmp_path / "live.db"

    seen = _probe(
        user,
        tmp_path,
        f"--emulator-db={db}",
        "--emulator-sandbox-size=30",
        "--emulator-short-base=http://sho.rt",
    )

    assert seen == {"db": str(db), "size": 30, "short_base": "http://sho.rt"}
    assert db.exists()


def test_settings_come_from_the_environment(user, tmp_path, monkeypatch):
    monkeypatch.setenv("EMULATOR_TEST_SANDBOX_SIZE", "12")
    monkeypatch.setenv("EMULATOR_TEST_SHORT_BASE", "http://env.example")

    seen = _probe(user, tmp_path, "--emulator-short-base=http://flag.wins")

    assert seen == {"db": None, "size": 12, "short_base": "http://flag.wins"}


def test_the_fixtures_option_serves_a_fixture_folder(user, tmp_path, monkeypatch):
    folder = tmp_path / "snapshot"
    folder.mkdir()
    shipped = default_fixtures_dir()
    records = json.loads((shipped / "sandbox_links.json").read_text("utf-8"))["links"][:7]
    (folder / "sandbox_links.json").write_bytes(render_sample_set(records))
    (folder / "applications.json").write_bytes((shipped / "applications.json").read_bytes())

    assert _probe(user, tmp_path, f"--emulator-fixtures={folder}")["size"] == 7
    monkeypatch.setenv("EMULATOR_TEST_FIXTURES", str(folder))
    assert _probe(user, tmp_path)["size"] == 7


def test_a_conftest_overrides_the_settings(user, tmp_path):
    user.makeconftest(
        """
        import dataclasses
        import pytest

        @pytest.fixture(scope="session")
        def emulator_settings(emulator_settings):
            return dataclasses.replace(emulator_settings, short_base="http://from.conftest")
        """
    )

    seen = _probe(user, tmp_path, "--emulator-sandbox-size=5")

    assert seen == {"db": None, "size": 5, "short_base": "http://from.conftest"}


@pytest.mark.skipif(
    "rate_limit_per_minute" not in {f.name for f in fields(Settings)},
    reason="needs Settings.rate_limit_per_minute",
)
def test_the_rate_limit_option_caps_every_application(user, tmp_path):
    user.makepyfile(
        test_rate="""
        import urllib.request, urllib.error

        def test_rate(emulator):
            request = urllib.request.Request(
                emulator.url + "/api/api-applications/public/links?limit=1",
                headers={"Authorization": "Bearer " + emulator.token()},
            )
            statuses = []
            for _ in range(3):
                try:
                    with urllib.request.urlopen(request) as response:
                        statuses.append(response.status)
                except urllib.error.HTTPError as error:
                    statuses.append(error.code)
            assert statuses == [200, 200, 429]
        """
    )

    _run(user, "--emulator-rate-limit=2").assert_outcomes(passed=1)


# -- in-process


def test_emulator_app_serves_without_any_socket(user):
    user.makepyfile(
        test_asgi="""
        import asyncio
        import socket

        import httpx


        def test_no_socket(emulator_app, monkeypatch):
            def refuse(*args, **kwargs):
                raise AssertionError("emulator_app opened a socket")

            monkeypatch.setattr(socket.socket, "bind", refuse)
            monkeypatch.setattr(socket.socket, "connect", refuse)

            async def exchange():
                transport = httpx.ASGITransport(app=emulator_app)
                async with httpx.AsyncClient(
                    transport=transport, base_url=emulator_app.url
                ) as http:
                    body = {"clientId": "sb_demo_client", "clientSecret": "sbs_demo_secret"}
                    return await http.post("/api/api-applications/token", json=body)

            assert asyncio.run(exchange()).status_code == 200
            assert [r.status for r in emulator_app.journal] == [200]


        def test_and_resets(emulator_app):
            assert emulator_app.journal == []
        """
    )

    _run(user).assert_outcomes(passed=2)


# -- faults that never fired

UNFIRED_TESTS = """
import httpx

LINKS = "/api/api-applications/public/links"


def test_fires_one_of_two(emulator):
    emulator.fault(503, path=LINKS)
    emulator.fault(500, method="POST", path=LINKS, times=2)
    headers = {"Authorization": "Bearer " + emulator.token()}
    assert httpx.get(emulator.url + LINKS, headers=headers).status_code == 503


def test_meant_not_to_fire(emulator_app):
    emulator_app.fault(503, path=LINKS)
    emulator_app.clear_faults()


def test_fails_anyway(emulator):
    emulator.fault(503, path=LINKS)
    assert False, "a failing test is not judged again"
"""


def test_a_passing_test_with_faults_that_never_fired_gets_a_warning(user):
    user.makepyfile(test_unfired=UNFIRED_TESTS)
    user.makeini(STRICT_INI.replace("filterwarnings = error\n", ""))

    result = _run(user, "-rA")

    result.assert_outcomes(passed=2, failed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*test_unfired.py::test_fires_one_of_two*",
            "*UnfiredFaultWarning: 1 fault injected by this test never fired*",
            "*status 500 on POST /api/api-applications/public/links: fired 0 of 2",
            "*emulator.clear_faults()*",
        ]
    )
    assert "status 503 on any method" not in result.stdout.str()


@pytest.mark.parametrize(
    ("args", "ini", "env"),
    [
        (["--emulator-unfired-faults=fail"], "emulator_unfired_faults = ignore\n", "ignore"),
        ([], "emulator_unfired_faults = fail\n", None),
    ],
    ids=["option", "ini"],
)
def test_faults_that_never_fired_can_fail_the_test(user, monkeypatch, args, ini, env):
    if env is not None:
        monkeypatch.setenv("EMULATOR_TEST_UNFIRED_FAULTS", env)
    user.makepyfile(test_unfired=UNFIRED_TESTS)
    user.makeini(STRICT_INI + ini)

    result = _run(user, *args)

    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_fires_one_of_two _*",
            "*1 fault injected by this test never fired*",
            "*status 500 on POST /api/api-applications/public/links: fired 0 of 2",
        ]
    )


def test_faults_that_never_fired_can_be_ignored(user, monkeypatch):
    monkeypatch.setenv("EMULATOR_TEST_UNFIRED_FAULTS", "ignore")  # over the ini's choice
    user.makepyfile(test_unfired=UNFIRED_TESTS)
    user.makeini(STRICT_INI + "emulator_unfired_faults = fail\n")

    _run(user).assert_outcomes(passed=2, failed=1)


# -- the shipped examples


def test_the_shipped_example_runs_on_its_own(user):
    user.makepyfile(test_client_example=EXAMPLE.read_text(encoding="utf-8"))

    result = _run(user)

    result.assert_outcomes(passed=9)


def test_the_shipped_sync_example_runs_on_its_own(user):
    user.makepyfile(test_sync_client_example=SYNC_EXAMPLE.read_text(encoding="utf-8"))

    result = _run(user)

    result.assert_outcomes(passed=7)


@pytest.mark.parametrize("example", [EXAMPLE, SYNC_EXAMPLE], ids=lambda path: path.name)
def test_the_readme_shows_the_shipped_examples_verbatim(example):
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")

    assert f"```python\n{example.read_text(encoding='utf-8')}```" in readme


# -- the handle, in this process


def test_the_handle_reaches_the_running_server(emulator):
    with urllib.request.urlopen(emulator.url + "/_emulator/health") as response:
        assert json.load(response) == {"status": "ok"}
    assert emulator.credentials.client_id == "sb_demo_client"
    assert "sbs_demo_secret" not in repr(emulator.credentials)


def test_the_clock_sets_freezes_and_moves(emulator):
    emulator.clock.set("2030-05-01T12:00:00Z")
    emulator.clock.advance(90)

    assert emulator.clock.frozen
    assert emulator.clock.now().isoformat() == "2030-05-01T12:01:30+00:00"
    emulator.clock.resume()
    assert not emulator.clock.frozen
    before = emulator.clock.now()
    emulator.clock.freeze()
    frozen_at = emulator.clock.now()
    assert emulator.clock.frozen and frozen_at.microsecond == 0
    assert timedelta(0) <= frozen_at - before <= timedelta(seconds=1)


def test_a_token_for_a_client_id_or_credentials(emulator):
    live = emulator.register_application(environment="live", workspace_id="ws_company_demo")

    for app in (None, "lv_demo_personal", live):
        token = emulator.token(app)
        response = httpx.get(
            emulator.url + LINKS, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert response.status_code == 200
    with pytest.raises(LookupError):
        emulator.token("nobody")
    assert [r.path for r in emulator.journal] == [LINKS] * 3  # tokens issued off the record


def test_register_application_checks_its_arguments(emulator):
    with pytest.raises(ValueError, match="environment"):
        emulator.register_application(environment="production")  # type: ignore[arg-type]


def test_visits_need_a_live_link(emulator):
    with pytest.raises(LookupError, match="no live link"):
        emulator.visit("no-such-slug")


def test_reset_puts_everything_back(emulator):
    emulator.clock.set("2030-01-01T00:00:00Z")
    emulator.fault(status=500, times=5)
    app = emulator.register_application()
    emulator.token(app)

    emulator.reset()

    assert not emulator.clock.frozen
    assert emulator.state.faults.pending() == []
    assert emulator.state.registry.application(app.client_id) is None
    assert emulator.register_application().client_id == app.client_id  # numbering restarts


# -- scenarios ------------------------------------------------------------------------------------

SCENARIO_TESTS = """
import urllib.error
import urllib.request

import pytest

from emulator.handle import InvalidArgument

LINKS = "/api/api-applications/public/links"


def status_of(emulator, token):
    request = urllib.request.Request(
        emulator.url + LINKS, headers={"Authorization": "Bearer " + token}
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.headers


@pytest.mark.emulator_scenario("rate-limited")
def test_a_shipped_scenario(emulator):
    assert emulator.scenario_name == "rate-limited"
    status, headers = status_of(emulator, emulator.token("lv_demo_personal"))
    assert (status, headers["Retry-After"]) == (429, "40")


@pytest.mark.emulator_scenario("scenarios/shop.yaml")
def test_a_file_beside_the_test(emulator_app):
    assert emulator_app.scenario_name == "shop"
    assert emulator_app.state.live.count("ws_shop") == 1


@pytest.mark.emulator_scenario({"version": 1, "clock": {"now": "2030-01-01T00:00:00Z"}})
def test_a_dict(emulator):
    assert emulator.clock.now().year == 2030


@pytest.mark.emulator_scenario("flaky")
def test_a_scenarios_faults_are_not_a_tests_unfired_faults(emulator):
    assert len(emulator.pending_faults) == 1


def test_the_next_test_starts_from_the_start(emulator):
    assert emulator.scenario_name is None
    assert emulator.pending_faults == []
    assert status_of(emulator, emulator.token("lv_demo_personal"))[0] == 200
"""
SHOP = """\
version: 1
applications:
  - {clientId: lv_shop, clientSecret: lvs_shop, environment: live, workspaceId: ws_shop}
links:
  - {workspace: ws_shop, title: Spring, destination: "https://shop.example/spring"}
"""


def test_the_marker_loads_a_scenario_before_the_test(user):
    user.makepyfile(test_scenarios=SCENARIO_TESTS)
    (user.path / "scenarios").mkdir()
    (user.path / "scenarios" / "shop.yaml").write_text(SHOP)

    _run(user).assert_outcomes(passed=5)


def test_a_bad_marked_scenario_errors_the_test_with_its_line(user):
    user.makepyfile(
        test_bad="""
import pytest

@pytest.mark.emulator_scenario({"version": 1, "links": [{"workspace": "nowhere"}]})
def test_never_runs(emulator):
    pass
"""
    )
    result = _run(user)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*InvalidScenario: <dict>: links[[]0[]].title: title is required*"]
    )


def test_the_session_can_start_from_a_scenario(user, monkeypatch):
    monkeypatch.setenv("EMULATOR_TEST_LATENCY_SCALE", "0")
    user.makepyfile(
        test_start="""
import pytest

from emulator.handle import InvalidArgument


@pytest.mark.parametrize("n", range(2))
def test_each_starts_from_it(emulator, n):
    assert emulator.scenario_name == "api-access-disabled + slow-network"
    assert emulator.state.latency.scale == 0
    with pytest.raises(InvalidArgument) as refused:
        emulator.token("lv_demo_personal")
    assert refused.value.code == "api_access_disabled"
"""
    )
    _run(user, "--emulator-scenario=api-access-disabled,slow-network").assert_outcomes(passed=2)
