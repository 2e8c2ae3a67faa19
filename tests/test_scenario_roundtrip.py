"""Random valid scenarios: load one, export it, load the export into a fresh emulator, and find an
equal state: the same list pages and details in every workspace, the same applications,
workspaces, rate windows, faults and clock, and the same export again.

`SCENARIO_ROUNDTRIP_EXAMPLES` raises the example count for a deeper local run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import CONTROL, LINKS_PATH, TOKEN_PATH, client_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from emulator.app import create_app
from emulator.scenario_source import parse_text
from emulator.settings import Settings
from emulator.state import load_sandbox

EXAMPLES = int(os.environ.get("SCENARIO_ROUNDTRIP_EXAMPLES", "30"))
SCENARIO = f"{CONTROL}/scenario"
YAML = {"Content-Type": "application/yaml"}
_SAMPLE = load_sandbox(Settings())
START = datetime(2020, 1, 1, tzinfo=UTC)
FIXTURE_LIVE = ["ws_personal_demo", "ws_company_demo", "ws_other_demo"]
# Values that YAML might read as something else than the strings they are.
COUNTRIES = ["US", "DE", "NO", "ON"]
REFERRERS = ["direct", "instagram.com", "1e3", "null", "true", "~"]
VISITORS = ["alice", "bob", "visitor-1", "repeat-1"]
ORDERS = [
    {"sortBy": "createdAt", "sortOrder": "desc"},
    {"sortBy": "title", "sortOrder": "asc"},
    {"sortBy": "clicks", "sortOrder": "desc"},
    {"sortBy": "updatedAt", "sortOrder": "asc", "limit": 2, "offset": 1},
    {"hasVisits": "true", "q": "a"},
]


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


texts = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=24)
printable = texts.filter(lambda text: text.isprintable())  # an application's name
names = st.from_regex(r"[a-z0-9_]{1,8}", fullmatch=True)
slugs = st.from_regex(r"[a-z0-9][a-z0-9-]{1,10}[a-z0-9]", fullmatch=True).filter(
    lambda slug: not _SAMPLE.has_slug(slug)
)
link_ids = st.from_regex(r"lnk_[A-Za-z0-9_.~-]{1,12}", fullmatch=True)


def _distribution(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["fixed", "uniform", "lognormal"]))
    low = draw(st.integers(0, 50))
    if kind == "fixed":
        body: dict[str, Any] = {"fixed": low}
    elif kind == "uniform":
        body = {"uniform": {"min": low, "max": low + draw(st.integers(0, 50))}}
    else:
        body = {"lognormal": {"median": low + 1, "p99": low + 1 + draw(st.integers(0, 99))}}
    if draw(st.booleans()):
        body["max"] = 100 + draw(st.integers(0, 100))
    return body


@st.composite
def scenarios(draw: Any) -> dict[str, Any]:
    now = START + timedelta(seconds=draw(st.integers(10**8, 2 * 10**8)))
    scenario: dict[str, Any] = {"version": 1, "clock": {"now": iso(now), "frozen": True}}

    workspaces = []
    for name in draw(st.lists(names, max_size=3, unique=True)):
        workspace: dict[str, Any] = {"id": f"ws_{name}"}
        for key, values in (
            ("kind", st.sampled_from(["personal", "company"])),
            ("apiAccess", st.booleans()),
            ("rateLimitPerMinute", st.integers(1, 500)),
            ("linkQuota", st.integers(0, 50)),
        ):
            if draw(st.booleans()):
                workspace[key] = draw(values)
        workspaces.append(workspace)
    if draw(st.booleans()):
        workspaces.append({"id": "ws_personal_demo", "linkQuota": draw(st.integers(0, 5))})
    live = [ws["id"] for ws in workspaces] + FIXTURE_LIVE

    applications = []
    for name in draw(st.lists(names, max_size=3, unique=True)):
        app: dict[str, Any] = {"clientId": f"app_{name}", "clientSecret": draw(names) + "_s"}
        if draw(st.booleans()):
            app |= {"environment": "live", "workspaceId": draw(st.sampled_from([*live, "ws_new"]))}
        if draw(st.booleans()):
            app["rateLimitPerMinute"] = draw(st.integers(1, 1000))
        if draw(st.booleans()):
            app["name"] = draw(printable)
        applications.append(app)
    if draw(st.booleans()):  # a shipped application, replaced
        applications.append(
            {
                "clientId": "lv_demo_other",
                "clientSecret": "replaced_secret",
                "environment": "live",
                "workspaceId": draw(st.sampled_from(live)),
                "replace": True,
            }
        )
    live += [app["workspaceId"] for app in applications if app.get("environment") == "live"]

    links = []
    given_slugs = draw(st.lists(slugs, max_size=6, unique=True))
    given_ids = draw(st.lists(link_ids, max_size=6, unique=True))
    for index in range(draw(st.integers(0, 6))):
        created = START + timedelta(seconds=draw(st.integers(0, 2 * 10**8)))
        link: dict[str, Any] = {
            "workspace": draw(st.sampled_from(live)),
            "title": draw(texts),
            "destination": "https://" + draw(names) + ".example/" + draw(names),
            "createdAt": iso(created),
        }
        if index < len(given_slugs) and draw(st.booleans()):
            link["slug"] = given_slugs[index]
        if index < len(given_ids) and draw(st.booleans()):
            link["id"] = given_ids[index]
        visits = []
        for _ in range(draw(st.integers(0, 4))):
            visit: dict[str, Any] = {
                "at": iso(created + timedelta(seconds=draw(st.integers(0, 10**7)))),
                "count": draw(st.integers(1, 4)),
                "country": draw(st.sampled_from(COUNTRIES)),
                "referrer": draw(st.sampled_from(REFERRERS)),
                "device": draw(st.sampled_from(["desktop", "mobile", "tablet"])),
            }
            if draw(st.booleans()):
                visit["visitor"] = draw(st.sampled_from(VISITORS))
            visits.append(visit)
        if visits:
            link["visits"] = visits
        links.append(link)

    faults = []
    for _ in range(draw(st.integers(0, 2))):
        fault: dict[str, Any] = {
            "path": draw(st.sampled_from([LINKS_PATH + "*", TOKEN_PATH])),
            "status": draw(st.sampled_from([429, 500, 503])),
            "times": draw(st.integers(1, 5)),
        }
        extra = draw(st.sampled_from(["none", "every", "probability", "delay"]))
        if extra == "every":
            fault["every"] = draw(st.integers(1, 4))
        elif extra == "probability":
            fault |= {"probability": 0.5, "seed": draw(st.integers(0, 9))}
        elif extra == "delay":
            fault["delayMs"] = draw(st.integers(1, 30))
        if fault["status"] == 503 and draw(st.booleans()):
            fault["retryAfter"] = draw(st.integers(1, 60))
        faults.append(fault)

    clients = ["sb_demo_client", "lv_demo_personal"] + [app["clientId"] for app in applications]
    usage = [
        {
            "clientId": draw(st.sampled_from(clients)),
            "at": iso(now - timedelta(seconds=draw(st.integers(0, 59)))),
            "requests": draw(st.integers(1, 5)),
        }
        for _ in range(draw(st.integers(0, 2)))
    ]

    for key, items in (
        ("workspaces", workspaces),
        ("applications", applications),
        ("links", links),
        ("faults", faults),
        ("usage", usage),
    ):
        if items:
            scenario[key] = items
    if draw(st.booleans()):
        latency: dict[str, Any] = {"seed": draw(st.integers(0, 100))}
        if draw(st.booleans()):
            latency["default"] = _distribution(draw)
        operations = draw(
            st.lists(st.sampled_from(["createToken", "listLinks", "getLink"]), unique=True)
        )
        if operations:
            latency["operations"] = {name: _distribution(draw) for name in operations}
        scenario["latency"] = latency
    return scenario


def _app(seed: int) -> Any:
    # Latency off: the profile round-trips as data, and the examples need not wait.
    return create_app(client_settings(Settings(seed=seed, latency_scale=0)), sandbox=_SAMPLE)


def state_of(client: TestClient) -> dict[str, Any]:
    registry = client.get(f"{CONTROL}/applications").json()
    workspaces = {}
    for workspace in registry["workspaces"]:
        if workspace["kind"] == "sandbox":
            continue
        pages = []
        for order in ORDERS:
            params = {"workspace": workspace["id"], "limit": 100, **order}
            pages.append(client.get(f"{CONTROL}/links", params=params).json())
        details = [
            client.get(
                f"{CONTROL}/links/{link['id']}", params={"workspace": workspace["id"]}
            ).json()
            for link in pages[0]["data"]
        ]
        workspaces[workspace["id"]] = {"pages": pages, "details": details}
    return {
        "registry": registry,
        "workspaces": workspaces,
        "faults": client.get(f"{CONTROL}/faults").json(),
        "clock": client.get(f"{CONTROL}/clock").json(),
    }


@pytest.fixture(scope="module")
def first() -> Iterator[TestClient]:
    with TestClient(_app(seed=1)) as client:
        yield client


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(scenario=scenarios())
def test_an_exported_scenario_loads_into_an_equal_state(
    first: TestClient, scenario: dict[str, Any]
) -> None:
    loaded = first.post(SCENARIO, json=scenario)
    assert loaded.status_code == 200, (loaded.text, scenario)
    exported = first.get(SCENARIO).text
    expected = state_of(first)

    with TestClient(_app(seed=2)) as second:
        again = second.post(SCENARIO, content=exported.encode(), headers=YAML)
        assert again.status_code == 200, (again.text, exported)
        assert state_of(second) == expected
        assert (
            parse_text(second.get(SCENARIO).text, "again").value
            == parse_text(exported, "export").value
        )
