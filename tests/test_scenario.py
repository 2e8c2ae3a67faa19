"""Scenarios as a client meets them: each shipped scenario loaded at start, over HTTP and
through the handle, and what a client then observes; reset, export, includes and the reader."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import (
    CONTROL,
    JSON,
    LINKS_PATH,
    TOKEN_PATH,
    assert_error,
    bearer,
    client_settings,
    register_fast_app,
    reset,
    token_for,
)
from starlette.testclient import TestClient
from test_scenario_roundtrip import state_of

from emulator.app import create_app
from emulator.handle import Emulator, InvalidScenario
from emulator.live_store import LiveStore
from emulator.models import NewLink, Workspace
from emulator.scenario_source import (
    dump_yaml,
    parse_text,
    shipped_descriptions,
    shipped_names,
    shipped_text,
)
from emulator.settings import Settings
from emulator.state import load_sandbox

SCENARIO = f"{CONTROL}/scenario"
YAML = {"Content-Type": "application/yaml"}
PERSONAL = ("lv_demo_personal", "lvs_demo_personal_secret")
COMPANY_A = ("lv_demo_company_a", "lvs_demo_company_a_secret")
COMPANY_B = ("lv_demo_company_b", "lvs_demo_company_b_secret")
OTHER = ("lv_demo_other", "lvs_demo_other_secret")
SANDBOX = ("sb_demo_client", "sbs_demo_secret")
MODES = ("start", "http", "handle")
SHIPPED = (
    "quota-nearly-full",
    "api-access-disabled",
    "rate-limited",
    "busy-link",
    "slow-network",
    "flaky",
)
_SAMPLE = load_sandbox(Settings())


def app_for(settings: Settings | None = None) -> Any:
    return create_app(client_settings(settings), sandbox=_SAMPLE)


def handle_of(client: TestClient) -> Emulator:
    return Emulator(client.app, "http://testserver")  # type: ignore[arg-type]


def load(client: TestClient, name: str, mode: str) -> None:
    """Load the shipped scenario `name` over HTTP (its file as a YAML body) or with the handle
    (mode "start": the app was started with it)."""
    if mode == "http":
        response = client.post(SCENARIO, content=shipped_text(name).encode(), headers=YAML)
        assert response.status_code == 200, response.text
        assert response.json()["name"] == name
    elif mode == "handle":
        handle_of(client).load_scenario(name)


@contextmanager
def loaded(name: str, mode: str, settings: Settings | None = None) -> Iterator[TestClient]:
    settings = settings or Settings()
    if mode == "start":
        settings = dataclasses.replace(settings, scenarios=(name,))
    with TestClient(app_for(settings)) as client:
        load(client, name, mode)
        assert client.get(f"{CONTROL}/scenarios").json()["loaded"] == name
        yield client


def again(client: TestClient, name: str, mode: str) -> None:
    """Back to the scenario's start: a reset for a start scenario, a new load for the others."""
    if mode == "start":
        assert reset(client).status_code == 200
    else:
        load(client, name, mode)


def create(client: TestClient, token: str, title: str) -> Any:
    body = {"title": title, "destination": "https://shop.example/" + title.replace(" ", "-")}
    return client.post(LINKS_PATH, json=body, headers=bearer(token))


def test_the_shipped_scenarios_are_listed_with_a_description() -> None:
    assert set(SHIPPED) <= set(shipped_names())
    for name, description in shipped_descriptions().items():
        assert description and "\n" not in description, name


# -- each shipped scenario, as a client sees it ---------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_quota_nearly_full_takes_one_more_link_then_refuses(mode: str) -> None:
    with loaded("quota-nearly-full", mode) as client:
        token = token_for(client, *PERSONAL)
        listed = client.get(LINKS_PATH, headers=bearer(token)).json()
        assert listed["pagination"]["total"] == 9

        assert create(client, token, "Last slot").status_code == 201
        assert_error(create(client, token, "One too many"), 403, "link_quota_exceeded")

        workspaces = client.get(f"{CONTROL}/applications").json()["workspaces"]
        personal = next(ws for ws in workspaces if ws["id"] == "ws_personal_demo")
        assert (personal["linksUsed"], personal["linkQuota"]) == (10, 10)


@pytest.mark.parametrize("mode", MODES)
def test_api_access_disabled_refuses_the_token_exchange(mode: str) -> None:
    with loaded("api-access-disabled", mode) as client:
        for client_id, secret in (PERSONAL, COMPANY_A):
            response = client.post(TOKEN_PATH, json={"clientId": client_id, "clientSecret": secret})
            assert_error(response, 403, "api_access_disabled")
        assert token_for(client, *OTHER)  # a workspace the scenario leaves alone


@pytest.mark.parametrize("mode", MODES)
def test_rate_limited_answers_429_at_once_with_the_right_retry_after(mode: str) -> None:
    with loaded("rate-limited", mode) as client:
        tokens = {who[0]: token_for(client, *who) for who in (SANDBOX, PERSONAL, COMPANY_B)}
        for client_id, token in tokens.items():
            response = client.get(LINKS_PATH, headers=bearer(token))
            assert_error(response, 429, "rate_limited")
            assert response.headers["Retry-After"] == "40", client_id
            assert response.headers["X-RateLimit-Remaining"] == "0"

        client.post(f"{CONTROL}/clock", json={"advanceSeconds": 40})
        for token in tokens.values():
            assert client.get(LINKS_PATH, headers=bearer(token)).status_code == 200


def _busy_visits() -> list[dict[str, Any]]:
    document = yaml.safe_load(shipped_text("busy-link"))
    (link,) = document["links"]
    visits: list[dict[str, Any]] = link["visits"]
    return visits


@pytest.mark.parametrize("mode", MODES)
def test_busy_link_has_a_year_of_traffic_in_its_analytics(mode: str) -> None:
    visits = _busy_visits()
    by_day: Counter[str] = Counter()
    countries: Counter[str] = Counter()
    referrers: Counter[str] = Counter()
    devices: Counter[str] = Counter()
    for visit in visits:
        by_day[visit["at"][:10]] += visit["count"]
        countries[visit["country"]] += visit["count"]
        referrers[visit["referrer"]] += visit["count"]
        devices[visit["device"]] += visit["count"]
    total = sum(by_day.values())

    with loaded("busy-link", mode) as client:
        token = token_for(client, *PERSONAL)
        response = client.get(f"{LINKS_PATH}/lnk_busy_spring", headers=bearer(token))
        assert response.status_code == 200, response.text
        link = response.json()

    analytics = link["analytics"]
    assert link["clicks"] == analytics["totalClicks"] == total
    assert analytics["uniqueVisitors"] == total  # each visit of the file a visitor of its own
    assert analytics["lastVisitedAt"] == max(visit["at"] for visit in visits)
    assert len(analytics["clicksByDay"]) == 365
    assert {day["date"]: day["clicks"] for day in analytics["clicksByDay"]} == by_day
    assert {c["country"]: c["clicks"] for c in analytics["topCountries"]} == countries
    assert {r["referrer"]: r["clicks"] for r in analytics["topReferrers"]} == referrers
    assert analytics["devices"] == {name: devices[name] for name in ("desktop", "mobile", "tablet")}
    assert [c["clicks"] for c in analytics["topCountries"]] == sorted(countries.values())[::-1]


@pytest.mark.parametrize("mode", MODES)
def test_slow_network_delays_every_api_call_and_journals_it(mode: str) -> None:
    # A hundredth of the shipped delays: a few ms a call, drawn as the profile says.
    with loaded("slow-network", mode, Settings(latency_scale=0.01)) as client:
        token = token_for(client, *SANDBOX)
        client.get(LINKS_PATH, headers=bearer(token))
        create(client, token, "Slow create")
        journal = client.get(f"{CONTROL}/requests").json()["requests"]

    assert [entry["path"] for entry in journal] == [TOKEN_PATH, LINKS_PATH, LINKS_PATH]
    assert 3 <= journal[0]["latencyMs"] <= 9  # uniform 300-900 ms, times 0.01
    for entry in journal:
        assert 0 < entry["latencyMs"] <= entry["durationMs"]
        assert entry["latencyMs"] <= 80  # every profile's max, times 0.01


@pytest.mark.parametrize("mode", MODES)
def test_flaky_fails_some_links_calls_with_503_the_same_ones_each_time(mode: str) -> None:
    with loaded("flaky", mode) as client:
        runs = []
        for _ in range(2):
            headers = register_fast_app(client)  # token exchanges never fail
            runs.append([client.get(LINKS_PATH, headers=headers).status_code for _ in range(40)])
            again(client, "flaky", mode)

    first, second = runs
    assert set(first) == {200, 503}
    assert 4 <= first.count(503) <= 20  # about 3 in 10
    assert first == second  # drawn from the same seed after each load


# -- loading, resetting, exporting ----------------------------------------------------------------


def test_reset_returns_to_the_start_scenario_and_not_to_a_loaded_one() -> None:
    with TestClient(app_for(Settings(scenarios=("quota-nearly-full",)))) as client:
        names = lambda: client.get(f"{CONTROL}/scenarios").json()["loaded"]  # noqa: E731
        token = token_for(client, *PERSONAL)
        assert create(client, token, "Tenth").status_code == 201

        reset(client)
        token = token_for(client, *PERSONAL)
        assert client.get(LINKS_PATH, headers=bearer(token)).json()["pagination"]["total"] == 9
        assert names() == "quota-nearly-full"

        load(client, "api-access-disabled", "http")
        assert names() == "api-access-disabled"
        reset(client)
        assert names() == "quota-nearly-full"
        assert token_for(client, *PERSONAL)


def test_a_loaded_scenario_replaces_the_state_of_the_one_before() -> None:
    with TestClient(app_for()) as client:
        load(client, "quota-nearly-full", "http")
        load(client, "busy-link", "handle")
        token = token_for(client, *PERSONAL)
        listed = client.get(LINKS_PATH, headers=bearer(token)).json()
        assert [link["id"] for link in listed["data"]] == ["lnk_busy_spring"]
        reset(client)
        assert client.get(f"{CONTROL}/scenarios").json()["loaded"] is None
        token = token_for(client, *PERSONAL)
        assert client.get(LINKS_PATH, headers=bearer(token)).json()["pagination"]["total"] == 0


def test_several_start_scenarios_merge_in_order() -> None:
    settings = Settings(scenarios=("quota-nearly-full", "api-access-disabled"))
    with TestClient(app_for(settings)) as client:
        assert client.get(f"{CONTROL}/scenarios").json()["loaded"] == (
            "quota-nearly-full + api-access-disabled"
        )
        workspaces = client.get(f"{CONTROL}/applications").json()["workspaces"]
        personal = next(ws for ws in workspaces if ws["id"] == "ws_personal_demo")
        # The workspace entries of both apply, the later's on top of the earlier's.
        assert (personal["linkQuota"], personal["apiAccess"], personal["linksUsed"]) == (
            10,
            False,
            9,
        )


def test_a_start_scenario_leaves_the_db_file_untouched(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    store = LiveStore.open(str(db), seed=1)
    workspace = Workspace("ws_personal_demo", "personal")
    store.create(workspace, NewLink("Kept", "https://kept.example"), datetime.now(UTC))
    store.close()

    settings = Settings(db_path=str(db), scenarios=("quota-nearly-full",))
    with TestClient(app_for(settings)) as client:
        token = token_for(client, *PERSONAL)
        listed = client.get(LINKS_PATH, headers=bearer(token)).json()
        assert listed["pagination"]["total"] == 9
        reset(client)

    store = LiveStore.open(str(db))
    try:
        assert store.total() == 1
    finally:
        store.close()


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_scenario_exports_as_yaml_that_loads_back_into_an_equal_state(
    name: str,
) -> None:
    with TestClient(app_for(Settings(scenarios=(name,)))) as first:
        exported = first.get(SCENARIO)
        assert exported.headers["content-type"].startswith("application/yaml")
        before = state_of(first)
    with TestClient(app_for()) as second:
        response = second.post(SCENARIO, content=exported.content, headers=YAML)
        assert response.status_code == 200, response.text
        after = state_of(second)
        again = parse_text(second.get(SCENARIO).text, "again").value
    clock_before, clock_after = before.pop("clock"), after.pop("clock")
    assert after == before
    assert clock_after["frozen"] is clock_before["frozen"]
    if clock_before["frozen"]:
        assert clock_after == clock_before
    else:
        # a running clock is exported in whole seconds and read again a moment later, on either
        # side of a second's boundary
        assert abs(clock_after["epoch"] - clock_before["epoch"]) <= 5
    first_document = parse_text(exported.text, "export").value
    assert again.pop("clock")["frozen"] is first_document.pop("clock")["frozen"]
    assert again == first_document


def test_the_export_is_json_on_request_and_the_same_document() -> None:
    with TestClient(app_for(Settings(scenarios=("busy-link", "flaky")))) as client:
        as_json = client.get(SCENARIO, params={"format": "json"})
        as_yaml = client.get(SCENARIO)
        assert_error(client.get(SCENARIO, params={"format": "xml"}), 400, "invalid_parameter")
    assert as_json.headers["content-type"].startswith("application/json")
    document = as_json.json()
    from_yaml = parse_text(as_yaml.text, "export").value
    assert from_yaml.pop("clock")["frozen"] is document.pop("clock")["frozen"] is False
    assert from_yaml == document
    assert document["version"] == 1
    assert document["faults"] == [
        {
            "path": "/api/api-applications/public/links*",
            "status": 503,
            "times": 1_000_000,
            "probability": 0.3,
            "seed": 7,
        }
    ]


def test_the_handle_loads_a_file_a_dict_and_exports(tmp_path: Path) -> None:
    shop = tmp_path / "shop.yaml"
    shop.write_text(
        "version: 1\n"
        "clock: {now: '2026-03-14T09:00:00Z'}\n"
        "applications:\n"
        "  - {clientId: lv_shop, clientSecret: lvs_shop_secret, environment: live,\n"
        "     workspaceId: ws_shop, workspaceKind: company, linkQuota: 10}\n"
        "links:\n"
        "  - {workspace: ws_shop, title: Spring sale, destination: 'https://shop.example/s',\n"
        "     slug: spring-sale, createdAt: '2026-02-01T10:00:00Z',\n"
        "     visits: [{at: '2026-03-01T12:00:00Z', count: 250, country: DE,\n"
        "               referrer: instagram.com, device: mobile}]}\n"
    )
    with TestClient(app_for()) as client:
        handle = handle_of(client)
        handle.load_scenario(shop)
        assert handle.scenario_name == "shop"
        token = handle.token("lv_shop")
        listed = client.get(LINKS_PATH, headers=bearer(token)).json()
        assert [(link["slug"], link["clicks"]) for link in listed["data"]] == [("spring-sale", 250)]

        exported = handle.export_scenario()
        handle.load_scenario(exported)
        assert handle.export_scenario() == exported
        assert handle.scenario_name is None

        with pytest.raises(InvalidScenario) as refused:
            handle.load_scenario({"version": 1, "links": [{"workspace": "nowhere"}]})
        assert refused.value.code == "invalid_scenario"
        assert refused.value.path == "links[0].title"
        assert handle.export_scenario() == exported  # nothing changed


def test_includes_add_up_the_lists_and_the_later_wins_for_other_keys(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(
        "version: 1\n"
        "name: base\n"
        "clock: {now: '2026-01-01T00:00:00Z'}\n"
        "workspaces: [{id: ws_personal_demo, linkQuota: 3}]\n"
        "latency: {default: {fixed: 5}}\n"
    )
    (tmp_path / "top.yaml").write_text(
        "version: 1\n"
        "include: [base.yaml, flaky]\n"
        "clock: {now: '2026-02-02T00:00:00Z'}\n"
        "workspaces: [{id: ws_personal_demo, apiAccess: false}]\n"
    )
    with TestClient(app_for()) as client:
        handle = handle_of(client)
        handle.load_scenario(tmp_path / "top.yaml")
        exported = handle.export_scenario()
    assert handle.scenario_name == "top"
    assert exported["clock"] == {"now": "2026-02-02T00:00:00Z", "frozen": True}
    (personal,) = exported["workspaces"]
    assert (personal["linkQuota"], personal["apiAccess"]) == (3, False)
    assert exported["latency"]["default"] == {"fixed": 5}
    assert len(exported["faults"]) == 1  # flaky's


def test_a_body_may_include_shipped_scenarios_but_no_file() -> None:
    with TestClient(app_for()) as client:
        response = client.post(SCENARIO, json={"version": 1, "include": ["busy-link"]})
        assert response.status_code == 200
        assert response.json()["name"] == "busy-link"
        refused = client.post(SCENARIO, json={"version": 1, "include": ["/etc/passwd"]})
        error = assert_error(refused, 422, "invalid_scenario", "include[0]")
        assert "request body:1: include[0]:" in error["message"]
        assert "passwd" not in error["message"].split("include[0]:", 1)[1].split("'")[0]


# -- the control API's rules for the scenario endpoints ------------------------------------------


@pytest.mark.parametrize("media_type", ["application/yaml", "application/x-yaml", "text/yaml"])
def test_yaml_media_types_are_accepted(media_type: str) -> None:
    with TestClient(app_for()) as client:
        body = b"version: 1\nclock: {now: '2026-01-01T00:00:00Z'}\n"
        response = client.post(SCENARIO, content=body, headers={"Content-Type": media_type})
        assert response.status_code == 200, response.text
        assert client.get(f"{CONTROL}/clock").json()["now"] == "2026-01-01T00:00:00Z"


def test_other_media_types_preflights_and_other_origins_are_refused() -> None:
    body = b"version: 1\nworkspaces: [{id: ws_personal_demo, apiAccess: false}]\n"
    with TestClient(app_for()) as client:
        for content_type in ("text/plain", "application/x-www-form-urlencoded", ""):
            response = client.post(SCENARIO, content=body, headers={"Content-Type": content_type})
            assert_error(response, 415, "unsupported_media_type")
        preflight = client.options(
            SCENARIO,
            headers={
                "Origin": "http://evil.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert_error(preflight, 403, "cross_origin_refused")
        elsewhere = client.post(
            SCENARIO, content=body, headers={**YAML, "Origin": "http://evil.example"}
        )
        assert_error(elsewhere, 403, "cross_origin_refused")
        assert token_for(client, *PERSONAL)  # nothing was loaded


def test_a_scenario_body_has_a_bound() -> None:
    with TestClient(app_for()) as client:
        huge = b"version: 1\n" + b"#" * (8 * 1024 * 1024)
        assert_error(client.post(SCENARIO, content=huge, headers=YAML), 413, "payload_too_large")


def test_the_schema_is_served_and_is_the_one_the_files_are_checked_against() -> None:
    from jsonschema import Draft202012Validator

    with TestClient(app_for()) as client:
        response = client.get(f"{CONTROL}/scenario.schema.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/schema+json")
    schema = response.json()
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    for name in shipped_names():
        assert not list(validator.iter_errors(yaml.safe_load(shipped_text(name)))), name


def test_the_control_token_guards_the_scenario_endpoints() -> None:
    with TestClient(app_for(Settings(control_token="s3cret"))) as client:
        for method, path in (
            ("GET", SCENARIO),
            ("POST", SCENARIO),
            ("GET", f"{CONTROL}/scenarios"),
            ("GET", f"{CONTROL}/scenario.schema.json"),
        ):
            response = client.request(method, path, headers=JSON, content=b"{}")
            assert_error(response, 401, "control_unauthorized")


# -- the reader ----------------------------------------------------------------------------------


def test_plain_scalars_read_as_json_reads_them() -> None:
    document = parse_text(
        "a: NO\nb: yes\nc: 1e3\nd: 2026-03-14T09:00:00Z\ne: 0x10\nf: 012\ng: true\nh: ~\n", "t"
    )
    assert document.value == {
        "a": "NO",
        "b": "yes",
        "c": 1000.0,
        "d": "2026-03-14T09:00:00Z",
        "e": "0x10",
        "f": 12,
        "g": True,
        "h": None,
    }
    assert document.line_of(("d",)) == 4


@pytest.mark.parametrize(
    "text", ["NO", "true", "1e3", "012", "null", "", "~", "- x", "a: b", "🎉 ünïcödé", "x\ny"]
)
def test_the_export_writes_strings_that_read_back_as_the_same_strings(text: str) -> None:
    assert parse_text(dump_yaml({"title": text}), "t").value == {"title": text}


def test_aliases_cannot_make_a_small_file_huge() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for before, name in zip("abcdefg", "bcdefgh", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{before}"] * 10) + "]")  # 10**8 at h
    with TestClient(app_for()) as client:
        response = client.post(SCENARIO, content="\n".join(lines).encode(), headers=YAML)
        error = assert_error(response, 422, "invalid_scenario")
        assert "more than 1000000 values" in error["message"]


def test_json_bodies_are_read_with_their_lines() -> None:
    body = json.dumps({"version": 1, "faults": [{"status": 503}]}, indent=2).encode()
    with TestClient(app_for()) as client:
        response = client.post(SCENARIO, content=body, headers=JSON)
        error = assert_error(response, 422, "invalid_scenario", "faults[0].times")
        assert error["message"].startswith("request body:4: faults[0].times: times is required")


def test_the_readmes_format_example_loads() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### The format", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    # Everything but the include of a base file the README does not show.
    text = "\n".join(line for line in block.splitlines() if not line.startswith("include:"))
    with TestClient(app_for()) as client:
        response = client.post(SCENARIO, content=text.encode(), headers=YAML)
        assert response.status_code == 200, response.text
        assert response.json() | {"status": "loaded"} == {
            "status": "loaded",
            "name": "shop",
            "workspaces": 1,
            "applications": 1,
            "links": 1,
            "visits": 250,
            "faults": 1,
            "latency": True,
        }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: " + "[" * 40 + "]" * 40, "a[0][0]"),  # the place where it is too deep
        ("version: 1\na: &a [*a]\n", "more than 1000000 values"),
        ("version: 1\n<<: {clock: {frozen: true}}\n", "merge keys (<<) are not supported"),
        ("version: 1\n? [a]\n: 1\n", "keys must be strings"),
        ("version: 1\nclock: !!python/object:os.system {}\n", "is not supported"),
    ],
)
def test_what_the_reader_refuses(text: str, problem: str) -> None:
    with TestClient(app_for()) as client:
        response = client.post(SCENARIO, content=text.encode(), headers=YAML)
        assert problem in assert_error(response, 422, "invalid_scenario")["message"]
