"""Live applications over HTTP (in-process): workspaces from fixtures and from the control API,
persisted creates, exact quotas and slugs, workspace scoping, shared rate windows, live lists.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import (
    CONTROL,
    FROZEN_NOW,
    HIGH_LIMIT,
    LINKS_PATH,
    TOKEN_PATH,
    advance_clock,
    assert_error,
    auth_headers,
    bearer,
    register_fast_app,
)
from invariants import assert_wire_link_consistent
from starlette.testclient import TestClient

from emulator.settings import Settings, default_fixtures_dir
from emulator.testing import EmulatorServer

PERSONAL = ("lv_demo_personal", "lvs_demo_personal_secret")
COMPANY_A = ("lv_demo_company_a", "lvs_demo_company_a_secret")
COMPANY_B = ("lv_demo_company_b", "lvs_demo_company_b_secret")
OTHER = ("lv_demo_other", "lvs_demo_other_secret")
DISABLED = ("lv_demo_disabled", "lvs_demo_disabled_secret")
SORT_KEYS = ("createdAt", "updatedAt", "title", "clicks")
TIMEOUT = httpx.Timeout(20.0)
_numbers = itertools.count(1)


def register_live(
    client: TestClient,
    client_id: str,
    workspace_id: str,
    *,
    kind: str | None = None,
    quota: int | None = None,
    workspace_rate: int | None = None,
    app_rate: int | None = HIGH_LIMIT,
    api_access: bool | None = None,
) -> dict[str, Any]:
    """Register a live app (and, for a new workspace id, its workspace); returns the 201 JSON."""
    body: dict[str, Any] = {
        "clientId": client_id,
        "clientSecret": f"{client_id}_secret",
        "environment": "live",
        "workspaceId": workspace_id,
    }
    for name, value in (
        ("workspaceKind", kind),
        ("linkQuota", quota),
        ("workspaceRateLimitPerMinute", workspace_rate),
        ("rateLimitPerMinute", app_rate),
        ("apiAccess", api_access),
    ):
        if value is not None:
            body[name] = value
    response = client.post(f"{CONTROL}/applications", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def live_headers(client: TestClient, client_id: str) -> dict[str, str]:
    return auth_headers(client, client_id, f"{client_id}_secret")


def create(
    client: TestClient, headers: dict[str, str], slug: str | None = None, **fields: Any
) -> Any:
    n = next(_numbers)
    body: dict[str, Any] = {
        "title": fields.pop("title", f"Live link {n}"),
        "destination": fields.pop("destination", f"https://example.com/live/{n}"),
    }
    if slug is not None:
        body["slug"] = slug
    return client.post(LINKS_PATH, json={**body, **fields}, headers=headers)


def created(client: TestClient, headers: dict[str, str], slug: str | None = None, **f: Any) -> Any:
    response = create(client, headers, slug, **f)
    assert response.status_code == 201, response.text
    return response.json()


def workspace_json(client: TestClient, workspace_id: str) -> dict[str, Any]:
    listed = client.get(f"{CONTROL}/applications").json()
    (found,) = [ws for ws in listed["workspaces"] if ws["id"] == workspace_id]
    result: dict[str, Any] = found
    return result


# --- workspaces and applications -------------------------------------------------------------


def test_shipped_workspaces_are_served_as_in_the_fixtures(client: TestClient) -> None:
    shipped = json.loads((default_fixtures_dir() / "applications.json").read_text("utf-8"))
    listed = client.get(f"{CONTROL}/applications").json()
    served = {ws["id"]: ws for ws in listed["workspaces"]}
    for ws in shipped["workspaces"]:
        got = served[ws["id"]]
        for field in ("kind", "apiAccess", "rateLimitPerMinute", "linkQuota"):
            assert got[field] == ws[field], (ws["id"], field)
        if ws["kind"] != "sandbox":
            assert got["linksUsed"] == 0
    kinds = {ws["id"]: ws["kind"] for ws in shipped["workspaces"]}
    assert kinds["ws_company_demo"] == "company" and kinds["ws_personal_demo"] == "personal"
    apps = {app["clientId"]: app["workspaceId"] for app in listed["applications"]}
    assert apps["lv_demo_company_a"] == apps["lv_demo_company_b"] == "ws_company_demo"


@pytest.mark.parametrize("credentials", [PERSONAL, COMPANY_A, COMPANY_B, OTHER])
def test_shipped_live_apps_get_live_tokens(client: TestClient, credentials: Any) -> None:
    response = client.post(
        TOKEN_PATH, json={"clientId": credentials[0], "clientSecret": credentials[1]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["environment"] == "live"


def test_shipped_app_without_api_access_is_403(client: TestClient) -> None:
    response = client.post(TOKEN_PATH, json={"clientId": DISABLED[0], "clientSecret": DISABLED[1]})
    assert_error(response, 403, "api_access_disabled")


def test_shipped_thresholds_are_the_rate_limit_headers(client: TestClient) -> None:
    for credentials, limit in ((PERSONAL, "60"), (COMPANY_A, "120"), (COMPANY_B, "120")):
        response = client.get(LINKS_PATH, headers=auth_headers(client, *credentials))
        assert response.status_code == 200 and response.headers["X-RateLimit-Limit"] == limit


def test_registration_accepts_every_workspace_field(client: TestClient) -> None:
    body = register_live(
        client, "reg_co", "ws_reg_co", kind="company", quota=2, workspace_rate=7, app_rate=None
    )
    expected = {
        "id": "ws_reg_co",
        "kind": "company",
        "apiAccess": True,
        "rateLimitPerMinute": 7,
        "linkQuota": 2,
    }
    assert body["workspace"] == expected
    assert body["rateLimitPerMinute"] is None
    assert workspace_json(client, "ws_reg_co") == {**expected, "linksUsed": 0}
    headers = live_headers(client, "reg_co")
    first = create(client, headers)
    assert first.status_code == 201 and first.headers["X-RateLimit-Limit"] == "7"
    assert workspace_json(client, "ws_reg_co")["linksUsed"] == 1


def test_registration_defaults_come_from_the_fixtures(client: TestClient) -> None:
    shipped = json.loads((default_fixtures_dir() / "applications.json").read_text("utf-8"))
    body = register_live(client, "reg_default", "ws_reg_default", app_rate=None)
    assert body["workspace"] == {
        "id": "ws_reg_default",
        "kind": "personal",
        "apiAccess": True,
        "rateLimitPerMinute": shipped["defaults"]["rateLimitPerMinute"],
        "linkQuota": shipped["defaults"]["linkQuota"],
    }


def test_registration_with_api_access_off_gives_403_tokens(client: TestClient) -> None:
    register_live(client, "reg_off", "ws_reg_off", api_access=False)
    response = client.post(
        TOKEN_PATH, json={"clientId": "reg_off", "clientSecret": "reg_off_secret"}
    )
    assert_error(response, 403, "api_access_disabled")


def test_a_second_app_joins_an_existing_workspace_as_it_is(client: TestClient) -> None:
    register_live(client, "join_a", "ws_join", kind="company", quota=5, workspace_rate=9)
    body = register_live(client, "join_b", "ws_join")
    again = register_live(client, "join_c", "ws_join", kind="company", quota=5)
    served = workspace_json(client, "ws_join")
    served.pop("linksUsed")
    assert body["workspace"] == again["workspace"] == served
    assert body["workspace"]["kind"] == "company" and body["workspace"]["linkQuota"] == 5


def test_joining_a_workspace_with_other_settings_is_a_conflict(client: TestClient) -> None:
    register_live(client, "join_a", "ws_join", kind="company", quota=5)
    body = {
        "clientId": "join_b",
        "clientSecret": "join_b_secret",
        "environment": "live",
        "workspaceId": "ws_join",
        "workspaceKind": "company",
        "linkQuota": 50,
    }

    refused = client.post(f"{CONTROL}/applications", json=body)

    error = assert_error(refused, 409, "workspace_conflict", "linkQuota")
    assert error["message"] == (
        "The workspace 'ws_join' already exists with linkQuota 5, not 50; set replace to change it."
    )
    assert_error(
        client.post(TOKEN_PATH, json={"clientId": "join_b", "clientSecret": "join_b_secret"}),
        401,
        "invalid_client",
    )
    replaced = client.post(f"{CONTROL}/applications", json={**body, "replace": True})
    assert replaced.status_code == 201, replaced.text
    assert replaced.json()["workspace"]["linkQuota"] == 50
    assert workspace_json(client, "ws_join")["linkQuota"] == 50
    assert workspace_json(client, "ws_join")["kind"] == "company"


@pytest.mark.parametrize(
    ("field", "value", "status"),
    [
        ("linkQuota", -1, 422),
        ("linkQuota", "5", 400),
        ("linkQuota", 2.5, 400),
        ("workspaceRateLimitPerMinute", 0, 422),
        ("workspaceRateLimitPerMinute", True, 400),
        ("workspaceKind", "sandbox", 422),
        ("workspaceKind", 3, 400),
        ("apiAccess", "yes", 400),
        ("apiAccess", 1, 400),
    ],
)
def test_bad_workspace_fields_are_refused(
    client: TestClient, field: str, value: Any, status: int
) -> None:
    body = {
        "clientId": "bad_ws",
        "clientSecret": "bad_ws_secret",
        "environment": "live",
        "workspaceId": "ws_bad",
        field: value,
    }
    error = assert_error(
        client.post(f"{CONTROL}/applications", json=body),
        status,
        "validation_failed" if status == 422 else "invalid_request",
    )
    assert error.get("field") == field
    assert "ws_bad" not in [
        ws["id"] for ws in client.get(f"{CONTROL}/applications").json()["workspaces"]
    ]


# --- create ----------------------------------------------------------------------------------


def test_live_create_is_persisted_with_a_location(frozen_client: TestClient) -> None:
    client = frozen_client
    headers = auth_headers(client, *PERSONAL)
    response = create(client, headers, "persisted-one", title="Persisted ✓")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["persisted"] is True
    assert response.headers["Location"] == f"{LINKS_PATH}/{body['id']}"
    assert body["createdAt"] == body["updatedAt"] == FROZEN_NOW
    assert body["shortUrl"] == "https://8here.in/persisted-one" and body["qrCodeBase64"]
    assert body["clicks"] == 0 and body["hasVisits"] is False
    for header in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        assert header in response.headers
    detail = client.get(response.headers["Location"], headers=headers)
    assert detail.status_code == 200
    assert detail.json() == {k: v for k, v in body.items() if k != "persisted"}
    assert_wire_link_consistent(detail.json())


def test_generated_slugs_are_unique_across_workspaces(client: TestClient) -> None:
    apps = [auth_headers(client, *c) for c in (PERSONAL, COMPANY_A, COMPANY_B, OTHER)]
    slugs = [created(client, apps[n % 4])["slug"] for n in range(40)]
    assert len(set(slugs)) == 40


BAD_BODIES: list[Any] = [
    {},
    {"title": "t"},
    {"destination": "https://e.com"},
    {"title": "", "destination": "https://e.com"},
    {"title": "x" * 201, "destination": "https://e.com"},
    {"title": "t", "destination": "ftp://e.com"},
    {"title": "t", "destination": "/relative"},
    {"title": "t", "destination": "https://e.com/" + "a" * 2048},
    {"title": "t", "destination": "https://e.com", "slug": "ab"},
    {"title": "t", "destination": "https://e.com", "slug": "-abc"},
    {"title": "t", "destination": "https://e.com", "slug": "Upper"},
    {"title": "t", "destination": "https://e.com", "slug": "x" * 65},
    {"title": 5, "destination": "https://e.com"},
    {"title": "t", "destination": "https://e.com", "slug": 7},
    [],
    "just a string",
]


def test_live_validation_matches_the_sandbox(client: TestClient) -> None:
    sandbox = register_fast_app(client)
    live = auth_headers(client, *PERSONAL)
    for body in BAD_BODIES:
        answers = []
        for headers in (sandbox, live):
            response = client.post(LINKS_PATH, json=body, headers=headers)
            assert response.status_code in (400, 422), (body, response.text)
            answers.append((response.status_code, response.json()))
        assert answers[0] == answers[1], body
    raw = client.post(
        LINKS_PATH, content=b"{not json", headers={**live, "Content-Type": "application/json"}
    )
    assert_error(raw, 400, "invalid_request")
    wrong_type = client.post(
        LINKS_PATH, content=b"{}", headers={**live, "Content-Type": "text/plain"}
    )
    assert_error(wrong_type, 415, "unsupported_media_type")
    assert workspace_json(client, "ws_personal_demo")["linksUsed"] == 0


def test_slug_taken_anywhere_is_409_without_a_hint_of_the_owner(client: TestClient) -> None:
    owner = auth_headers(client, *PERSONAL)
    mine = created(client, owner, "contested-slug")
    conflicts = [
        create(client, auth_headers(client, *credentials), "contested-slug")
        for credentials in (PERSONAL, COMPANY_A, OTHER)
    ]
    errors = [assert_error(response, 409, "slug_taken", "slug") for response in conflicts]
    assert errors[0] == errors[1] == errors[2], "the same answer whoever holds the slug"
    text = json.dumps(errors[1])
    for secret in ("ws_personal_demo", "lv_demo_personal", mine["id"], "personal"):
        assert secret not in text
    for ws in ("ws_company_demo", "ws_other_demo"):
        assert workspace_json(client, ws)["linksUsed"] == 0


def test_quota_is_exact_and_shared_by_company_apps(client: TestClient) -> None:
    register_live(client, "quota_a", "ws_quota", kind="company", quota=3)
    register_live(client, "quota_b", "ws_quota")
    a, b = live_headers(client, "quota_a"), live_headers(client, "quota_b")
    created(client, a)
    created(client, b)
    created(client, a)
    for headers in (a, b):
        refused = create(client, headers)
        assert_error(refused, 403, "link_quota_exceeded")
        assert "X-RateLimit-Remaining" in refused.headers
    assert workspace_json(client, "ws_quota")["linksUsed"] == 3
    assert client.get(LINKS_PATH, headers=b).json()["pagination"]["total"] == 3
    created(client, auth_headers(client, *PERSONAL))  # another workspace's quota is its own


def test_a_refused_create_leaves_the_slug_free(client: TestClient) -> None:
    register_live(client, "full_app", "ws_full", quota=0)
    assert_error(create(client, live_headers(client, "full_app"), "free-slug"), 403,
                 "link_quota_exceeded")  # fmt: skip
    assert created(client, auth_headers(client, *PERSONAL), "free-slug")["slug"] == "free-slug"


# --- scoping ---------------------------------------------------------------------------------


def test_another_workspaces_link_is_404_like_an_unknown_id(client: TestClient) -> None:
    owner = auth_headers(client, *PERSONAL)
    link = created(client, owner, "private-link", title="Private plans")
    stranger = auth_headers(client, *OTHER)
    theirs = client.get(f"{LINKS_PATH}/{link['id']}", headers=stranger)
    unknown = client.get(f"{LINKS_PATH}/lnk_0000000000000000", headers=stranger)
    assert_error(theirs, 404, "link_not_found")
    assert theirs.json() == unknown.json(), "no existence leak"
    for params in ({}, {"q": "private"}, {"q": "private-link"}, {"hasVisits": "false"}):
        listed = client.get(LINKS_PATH, params=params, headers=stranger).json()
        assert listed["data"] == [] and listed["pagination"]["total"] == 0, params
    company = auth_headers(client, *COMPANY_A)
    assert_error(client.get(f"{LINKS_PATH}/{link['id']}", headers=company), 404, "link_not_found")
    sandbox = register_fast_app(client)
    assert_error(client.get(f"{LINKS_PATH}/{link['id']}", headers=sandbox), 404, "link_not_found")
    assert link["id"] not in client.get(LINKS_PATH, params={"limit": 100}, headers=sandbox).text
    assert client.get(f"{LINKS_PATH}/{link['id']}", headers=owner).status_code == 200


def test_live_apps_never_see_sample_links(client: TestClient) -> None:
    sandbox = register_fast_app(client)
    sample = client.get(LINKS_PATH, params={"limit": 1}, headers=sandbox).json()["data"][0]
    live = auth_headers(client, *PERSONAL)
    assert client.get(LINKS_PATH, headers=live).json()["pagination"]["total"] == 0
    assert_error(client.get(f"{LINKS_PATH}/{sample['id']}", headers=live), 404, "link_not_found")


def test_company_apps_share_their_companys_links(frozen_client: TestClient) -> None:
    client = frozen_client
    a = auth_headers(client, *COMPANY_A)
    b = auth_headers(client, *COMPANY_B)
    from_a = created(client, a, "from-app-a")
    from_b = created(client, b, "from-app-b")
    params = {"sortBy": "title", "sortOrder": "asc"}
    list_a = client.get(LINKS_PATH, params=params, headers=a).json()
    list_b = client.get(LINKS_PATH, params=params, headers=b).json()
    assert list_a == list_b and list_a["pagination"]["total"] == 2
    for link in (from_a, from_b):
        details = [client.get(f"{LINKS_PATH}/{link['id']}", headers=h).json() for h in (a, b)]
        assert details[0] == details[1]
    assert client.get(LINKS_PATH, headers=auth_headers(client, *PERSONAL)).json()["data"] == []


# --- rate threshold --------------------------------------------------------------------------


def test_company_apps_share_one_window_with_the_sandbox_headers(frozen_client: TestClient) -> None:
    client = frozen_client
    register_live(client, "rate_a", "ws_rate", kind="company", workspace_rate=5, app_rate=None)
    register_live(client, "rate_b", "ws_rate", app_rate=None)
    register_live(client, "rate_solo", "ws_rate_solo", workspace_rate=5, app_rate=None)
    a, b = live_headers(client, "rate_a"), live_headers(client, "rate_b")
    link = created(client, a)
    calls = [
        lambda: client.get(LINKS_PATH, headers=b),
        lambda: client.get(f"{LINKS_PATH}/{link['id']}", headers=a),
        lambda: create(client, b),
        lambda: client.get(f"{LINKS_PATH}/{link['id']}", headers=b),
    ]
    remaining = []
    for call in calls:
        response = call()
        assert response.status_code in (200, 201), response.text
        assert response.headers["X-RateLimit-Limit"] == "5"
        remaining.append(response.headers["X-RateLimit-Remaining"])
    assert remaining == ["3", "2", "1", "0"]
    for headers in (a, b):
        limited = client.get(LINKS_PATH, headers=headers)
        assert_error(limited, 429, "rate_limited")
        assert limited.headers["Retry-After"] == "60"
        assert limited.headers["X-RateLimit-Remaining"] == "0"
        assert limited.headers["X-RateLimit-Limit"] == "5"
        assert (
            int(limited.headers["X-RateLimit-Reset"])
            == int(client.get(f"{CONTROL}/clock").json()["epoch"]) + 60
        )
    # Token exchange is not counted; another workspace has its own window.
    assert live_headers(client, "rate_a")
    solo = client.get(LINKS_PATH, headers=live_headers(client, "rate_solo"))
    assert solo.status_code == 200 and solo.headers["X-RateLimit-Remaining"] == "4"
    advance_clock(client, 59)
    assert client.get(LINKS_PATH, headers=b).status_code == 429
    advance_clock(client, 1)
    freed = client.get(LINKS_PATH, headers=b)
    assert freed.status_code == 200 and freed.headers["X-RateLimit-Remaining"] == "4"


def test_429s_and_401s_are_not_counted_in_the_shared_window(frozen_client: TestClient) -> None:
    client = frozen_client
    register_live(client, "count_a", "ws_count", kind="company", workspace_rate=2, app_rate=None)
    register_live(client, "count_b", "ws_count", app_rate=None)
    a, b = live_headers(client, "count_a"), live_headers(client, "count_b")
    assert client.get(LINKS_PATH, headers=a).status_code == 200
    assert client.get(LINKS_PATH, headers=bearer("eh_forged.token")).status_code == 401
    assert client.get(LINKS_PATH, headers=b).headers["X-RateLimit-Remaining"] == "0"
    for _ in range(5):
        assert client.get(LINKS_PATH, headers=a).status_code == 429
    advance_clock(client, 60)
    assert client.get(LINKS_PATH, headers=b).headers["X-RateLimit-Remaining"] == "1"


# --- lists on live data ----------------------------------------------------------------------


def _sort_key(link: dict[str, Any], sort_by: str) -> tuple[Any, str]:
    value = link[sort_by]
    return (value.casefold() if sort_by == "title" else value, link["id"])


def _walk(client: TestClient, headers: dict[str, str], params: dict[str, str]) -> list[Any]:
    items: list[Any] = []
    for offset in range(0, 200, 7):
        body = client.get(
            LINKS_PATH, params={**params, "limit": "7", "offset": str(offset)}, headers=headers
        ).json()
        items += body["data"]
        assert body["pagination"]["hasMore"] is (offset + 7 < body["pagination"]["total"])
        if not body["pagination"]["hasMore"]:
            return items
    raise AssertionError("more pages than links")


def test_every_filter_sort_and_page_on_live_data(frozen_client: TestClient) -> None:
    client = frozen_client
    register_live(client, "lister_a", "ws_lister", kind="company", quota=100)
    register_live(client, "lister_b", "ws_lister")
    register_live(client, "lister_other", "ws_lister_other")
    a, b = live_headers(client, "lister_a"), live_headers(client, "lister_b")
    titles = ["Launch page", "launch PAGE", "Straße sale", "STRASSE", "Été", "été", "Zed", "ä"]
    for n in range(26):
        headers = a if n % 2 else b
        link = created(
            client,
            headers,
            title=titles[n % len(titles)],
            destination=f"https://{['a', 'b', 'c'][n % 3]}.example/p{n % 4}",
        )
        if n % 3:
            visits = {"slug": link["slug"], "count": n % 4 + 1}
            assert client.post(f"{CONTROL}/visits", json=visits).status_code == 201
        if n % 5 == 0:
            advance_clock(client, 300)
    created(client, live_headers(client, "lister_other"), title="Launch page elsewhere")
    everything = _walk(client, a, {})
    assert len(everything) == 26 and len({link["id"] for link in everything}) == 26
    for q in (None, "launch", "STRASSE", "ß", "été", "b.example", "P1", "zzz"):
        for has_visits in (None, "true", "false"):
            for sort_by in SORT_KEYS:
                for order in ("asc", "desc"):
                    params = {"sortBy": sort_by, "sortOrder": order}
                    if q is not None:
                        params["q"] = q
                    if has_visits is not None:
                        params["hasVisits"] = has_visits
                    expected = [
                        link
                        for link in everything
                        if (has_visits is None or link["hasVisits"] is (has_visits == "true"))
                        and (
                            q is None
                            or any(
                                q.casefold() in link[f].casefold()
                                for f in ("title", "slug", "destination")
                            )
                        )
                    ]
                    expected.sort(
                        key=lambda link: _sort_key(link, sort_by), reverse=order == "desc"
                    )
                    walked = _walk(client, a if sort_by == "title" else b, params)
                    assert [x["id"] for x in walked] == [x["id"] for x in expected], params
    first = client.get(LINKS_PATH, headers=a).json()
    assert first["pagination"] == {"total": 26, "limit": 25, "offset": 0, "hasMore": True}
    assert [x["id"] for x in first["data"]] == [
        x["id"] for x in sorted(everything, key=lambda x: _sort_key(x, "createdAt"), reverse=True)
    ][:25]
    past = client.get(LINKS_PATH, params={"offset": "1000"}, headers=a).json()
    assert past["data"] == [] and past["pagination"]["hasMore"] is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("limit", "0"),
        ("limit", "101"),
        ("limit", "x"),
        ("offset", "-1"),
        ("sortBy", "clickz"),
        ("sortOrder", "up"),
        ("hasVisits", "True"),
        ("q", "x" * 201),
    ],
)
def test_bad_list_parameters_on_live_match_the_sandbox(
    frozen_client: TestClient, name: str, value: str
) -> None:
    client = frozen_client
    sandbox = register_fast_app(client)
    live = auth_headers(client, *PERSONAL)
    answers = [
        client.get(LINKS_PATH, params={name: value}, headers=headers) for headers in (sandbox, live)
    ]
    error = assert_error(answers[1], 400, "invalid_parameter", name)
    assert answers[0].json()["error"] == error


# --- concurrency over a real socket ----------------------------------------------------------


@pytest.fixture(params=["memory", "file"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EmulatorServer]:
    db = str(tmp_path / "race.db") if request.param == "file" else None
    emulator = EmulatorServer(Settings(db_path=db)).start()
    try:
        yield emulator
    finally:
        emulator.stop()


def _setup_racers(url: str, quota: int, apps: int) -> list[dict[str, str]]:
    """A company workspace with `apps` live apps, the quota given and no rate limit in reach."""
    headers = []
    with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        for n in range(apps):
            body = {
                "clientId": f"racer_{n}",
                "clientSecret": f"racer_{n}_secret",
                "environment": "live",
                "workspaceId": "ws_race",
                "workspaceKind": "company",
                "linkQuota": quota,
                "rateLimitPerMinute": HIGH_LIMIT,
            }
            assert client.post(f"{CONTROL}/applications", json=body).status_code == 201
            token = client.post(
                TOKEN_PATH, json={"clientId": f"racer_{n}", "clientSecret": f"racer_{n}_secret"}
            )
            headers.append({"Authorization": f"Bearer {token.json()['accessToken']}"})
    return headers


async def _simultaneous(
    url: str, calls: list[tuple[dict[str, str], dict[str, Any]]]
) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(calls), max_keepalive_connections=len(calls))
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT, limits=limits) as client:
        pending = [client.post(LINKS_PATH, json=body, headers=h) for h, body in calls]
        return await asyncio.wait_for(asyncio.gather(*pending), timeout=60)


def test_two_simultaneous_creates_of_one_slug_give_one_201_and_one_409(
    server: EmulatorServer,
) -> None:
    headers = _setup_racers(server.url, quota=100, apps=2)
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        other = client.post(TOKEN_PATH, json={"clientId": OTHER[0], "clientSecret": OTHER[1]})
        stranger = {"Authorization": f"Bearer {other.json()['accessToken']}"}
    for round_number in range(5):
        slug = f"race-slug-{round_number}"
        body = {"title": "Race", "destination": "https://example.com/race", "slug": slug}
        # Two apps of one workspace, or one app against another workspace's app.
        racers = headers if round_number % 2 else [headers[0], stranger]
        responses = asyncio.run(_simultaneous(server.url, [(h, body) for h in racers]))
        assert sorted(r.status_code for r in responses) == [201, 409], [r.text for r in responses]
        loser = next(r for r in responses if r.status_code == 409)
        assert loser.json()["error"]["code"] == "slug_taken"
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        used = {
            ws["id"]: ws.get("linksUsed")
            for ws in client.get(f"{CONTROL}/applications").json()["workspaces"]
        }
    assert used["ws_race"] + used["ws_other_demo"] == 5


def test_twenty_simultaneous_creates_against_a_quota_of_seven(server: EmulatorServer) -> None:
    headers = _setup_racers(server.url, quota=7, apps=4)
    calls = [
        (headers[n % 4], {"title": f"Q{n}", "destination": f"https://e.com/{n}"}) for n in range(20)
    ]
    responses = asyncio.run(_simultaneous(server.url, calls))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 7, 403: 13}, statuses
    for response in responses:
        if response.status_code == 403:
            assert response.json()["error"]["code"] == "link_quota_exceeded"
    created_ids = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(created_ids) == 7
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        listed = client.get(LINKS_PATH, params={"limit": 100}, headers=headers[3]).json()
    assert {x["id"] for x in listed["data"]} == created_ids
    assert listed["pagination"]["total"] == 7


def test_threads_creating_with_generated_slugs_never_collide(server: EmulatorServer) -> None:
    headers = _setup_racers(server.url, quota=1000, apps=3)

    def call(n: int) -> httpx.Response:
        with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
            body = {"title": f"G{n}", "destination": f"https://e.com/{n}"}
            return client.post(LINKS_PATH, json=body, headers=headers[n % 3])

    with ThreadPoolExecutor(max_workers=12) as pool:
        responses = list(pool.map(call, range(36), timeout=60))
    assert all(r.status_code == 201 for r in responses)
    assert (
        len({r.json()["slug"] for r in responses}) == len({r.json()["id"] for r in responses}) == 36
    )
