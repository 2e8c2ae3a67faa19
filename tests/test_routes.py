"""The sandbox links endpoints over HTTP: list, detail and create, errors, headers and CORS."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import (
    FROZEN_NOW,
    LINKS_PATH,
    STAMP_PATTERN,
    TOKEN_PATH,
    assert_error,
    auth_headers,
    emulator_client,
    register_fast_app,
    set_clock,
)
from starlette.testclient import TestClient

LINK_KEYS = {
    "id",
    "title",
    "slug",
    "destination",
    "shortUrl",
    "qrCodeBase64",
    "clicks",
    "hasVisits",
    "createdAt",
    "updatedAt",
}
ANALYTICS_KEYS = {
    "totalClicks",
    "uniqueVisitors",
    "lastVisitedAt",
    "clicksByDay",
    "topCountries",
    "topReferrers",
    "devices",
}
SEED_QUERY = {"q": "launch", "hasVisits": "true", "sortBy": "updatedAt", "sortOrder": "desc"}
SEED_CREATE = {
    "title": "Launch page",
    "destination": "https://8here.in/launch",
    "slug": "launch-page",
}
ORIGIN = "http://localhost:3000"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[TestClient, dict[str, str]]]:
    """One emulator and a high-limit sandbox app for the read-only tests of this module."""
    with emulator_client() as client:
        yield client, register_fast_app(client, "routes_module_app")


@pytest.fixture(scope="module")
def everything(api: tuple[TestClient, dict[str, str]]) -> list[dict[str, Any]]:
    """Every sample link, in the default order (createdAt desc)."""
    client, headers = api
    links: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = client.get(LINKS_PATH, params={"limit": 100, "offset": offset}, headers=headers)
        assert page.status_code == 200, page.text
        body = page.json()
        links += body["data"]
        if not body["pagination"]["hasMore"]:
            return links
        offset += 100


def _list(api: tuple[TestClient, dict[str, str]], **params: str | int) -> dict[str, Any]:
    client, headers = api
    response = client.get(LINKS_PATH, params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _matches(link: dict[str, Any], q: str) -> bool:
    needle = q.casefold()
    return any(needle in link[key].casefold() for key in ("title", "slug", "destination"))


def _sort_value(link: dict[str, Any], sort_by: str) -> Any:
    return link[sort_by].casefold() if sort_by == "title" else link[sort_by]


# --- list ----------------------------------------------------------------------------------------


def test_default_list_shape(api: tuple[TestClient, dict[str, str]]) -> None:
    body = _list(api)
    assert set(body) == {"data", "pagination"}
    assert set(body["pagination"]) == {"total", "limit", "offset", "hasMore"}
    assert body["pagination"]["limit"] == 25 and body["pagination"]["offset"] == 0
    assert body["pagination"]["total"] >= 200 and body["pagination"]["hasMore"] is True
    assert len(body["data"]) == 25
    created = [link["createdAt"] for link in body["data"]]
    assert created == sorted(created, reverse=True)


def test_list_items_carry_every_field_but_analytics(everything: list[dict[str, Any]]) -> None:
    assert len(everything) >= 200
    assert len({link["id"] for link in everything}) == len(everything)
    for link in everything:
        assert set(link) == LINK_KEYS, link
        assert link["shortUrl"] == f"https://8here.in/{link['slug']}"
        assert link["hasVisits"] is (link["clicks"] > 0)
        assert isinstance(link["clicks"], int) and link["clicks"] >= 0
        assert re.fullmatch(STAMP_PATTERN, link["createdAt"])
        assert re.fullmatch(STAMP_PATTERN, link["updatedAt"])
        assert link["createdAt"] <= link["updatedAt"]
        assert not link["qrCodeBase64"].startswith("data:")
        assert base64.b64decode(link["qrCodeBase64"], validate=True).startswith(PNG_SIGNATURE)


def test_total_and_paging_agree_with_the_full_list(
    api: tuple[TestClient, dict[str, str]], everything: list[dict[str, Any]]
) -> None:
    total = len(everything)
    for limit, offset in [(1, 0), (7, 3), (100, 0), (100, 200), (25, total - 5), (10, total - 10)]:
        body = _list(api, limit=limit, offset=offset)
        assert [link["id"] for link in body["data"]] == [
            link["id"] for link in everything[offset : offset + limit]
        ]
        assert body["pagination"] == {
            "total": total,
            "limit": limit,
            "offset": offset,
            "hasMore": offset + limit < total,
        }


@pytest.mark.parametrize("offset", ["240", "241", "1000", "999999999"])
def test_offset_past_the_end_is_an_empty_page(
    api: tuple[TestClient, dict[str, str]], everything: list[dict[str, Any]], offset: str
) -> None:
    if int(offset) < len(everything):
        pytest.skip("the sample set grew past this offset")
    body = _list(api, offset=offset)
    assert body["data"] == []
    assert body["pagination"]["total"] == len(everything)
    assert body["pagination"]["hasMore"] is False
    assert body["pagination"]["offset"] == int(offset)


@pytest.mark.parametrize("sort_by", ["createdAt", "updatedAt", "title", "clicks"])
@pytest.mark.parametrize("sort_order", ["asc", "desc"])
def test_every_sort_orders_the_whole_set(
    api: tuple[TestClient, dict[str, str]],
    everything: list[dict[str, Any]],
    sort_by: str,
    sort_order: str,
) -> None:
    walked: list[dict[str, Any]] = []
    for offset in range(0, len(everything), 100):
        body = _list(api, sortBy=sort_by, sortOrder=sort_order, limit=100, offset=offset)
        walked += body["data"]
    assert sorted(link["id"] for link in walked) == sorted(link["id"] for link in everything)
    keys = [(_sort_value(link, sort_by), link["id"]) for link in walked]
    assert keys == sorted(keys, reverse=sort_order == "desc")
    # The sample set has ties on every key, so the tie-break is exercised.
    values = [key for key, _ in keys]
    assert len(set(values)) < len(values)


def test_sort_order_defaults_to_desc(api: tuple[TestClient, dict[str, str]]) -> None:
    assert _list(api, sortBy="title", limit=50) == _list(
        api, sortBy="title", sortOrder="desc", limit=50
    )
    assert _list(api, sortOrder="asc", limit=50) == _list(
        api, sortBy="createdAt", sortOrder="asc", limit=50
    )


@pytest.mark.parametrize("has_visits", ["true", "false"])
def test_has_visits_filter(
    api: tuple[TestClient, dict[str, str]], everything: list[dict[str, Any]], has_visits: str
) -> None:
    wanted = has_visits == "true"
    body = _list(api, hasVisits=has_visits, limit=100)
    expected = [link for link in everything if link["hasVisits"] is wanted]
    assert body["pagination"]["total"] == len(expected) > 0
    assert [link["id"] for link in body["data"]] == [link["id"] for link in expected[:100]]


@pytest.mark.parametrize(
    "q", ["launch", "LAUNCH", "Launch", "8here", "https://", "é", "zz-nothing"]
)
def test_q_filter_is_a_casefold_substring_of_title_slug_or_destination(
    api: tuple[TestClient, dict[str, str]], everything: list[dict[str, Any]], q: str
) -> None:
    body = _list(api, q=q, limit=100)
    expected = [link for link in everything if _matches(link, q)]
    assert body["pagination"]["total"] == len(expected)
    assert [link["id"] for link in body["data"]] == [link["id"] for link in expected[:100]]


def test_q_matches_each_field(
    api: tuple[TestClient, dict[str, str]], everything: list[dict[str, Any]]
) -> None:
    sample = everything[17]
    host = sample["destination"].split("/")[2]
    for q in (sample["slug"], sample["title"], host, sample["slug"].upper()):
        ids = [link["id"] for link in _list(api, q=q, limit=100)["data"]]
        assert sample["id"] in ids, q


def test_q_of_200_characters_is_allowed(api: tuple[TestClient, dict[str, str]]) -> None:
    body = _list(api, q="x" * 200)
    assert body["data"] == [] and body["pagination"]["total"] == 0


def test_empty_q_is_no_filter(
    api: tuple[TestClient, dict[str, str]], everything: list[dict[str, Any]]
) -> None:
    assert _list(api, q="")["pagination"]["total"] == len(everything)


def test_filters_combine(
    api: tuple[TestClient, dict[str, str]], everything: list[dict[str, Any]]
) -> None:
    body = _list(api, q="a", hasVisits="false", sortBy="clicks", sortOrder="asc", limit=100)
    expected = [link for link in everything if _matches(link, "a") and not link["hasVisits"]]
    assert body["pagination"]["total"] == len(expected)
    assert {link["id"] for link in body["data"]} <= {link["id"] for link in expected}


def test_seed_example_query_returns_several_visited_launch_links(
    api: tuple[TestClient, dict[str, str]],
) -> None:
    body = _list(api, **SEED_QUERY, limit=25)
    links = body["data"]
    assert len(links) >= 3, body
    assert all(link["hasVisits"] and link["clicks"] > 0 for link in links)
    assert all(_matches(link, "launch") for link in links)
    updated = [link["updatedAt"] for link in links]
    assert updated == sorted(updated, reverse=True)
    assert body["pagination"]["limit"] == 25


def test_unknown_parameters_are_ignored(api: tuple[TestClient, dict[str, str]]) -> None:
    plain = _list(api, limit=5)
    assert _list(api, limit=5, foo="bar", page="9", LIMIT="0", sortby="bogus") == plain


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("limit", "0"),
        ("limit", "101"),
        ("limit", "abc"),
        ("limit", "1.5"),
        ("limit", "-1"),
        ("limit", ""),
        ("limit", " 5"),
        ("limit", "1e2"),
        ("limit", "٣"),
        ("limit", "99999999999999999999999"),
        ("offset", "-1"),
        ("offset", "x"),
        ("offset", "1.0"),
        ("offset", ""),
        ("sortBy", "bogus"),
        ("sortBy", "created_at"),
        ("sortBy", "TITLE"),
        ("sortBy", ""),
        ("sortOrder", "bogus"),
        ("sortOrder", "ASC"),
        ("sortOrder", ""),
        ("hasVisits", "yes"),
        ("hasVisits", "1"),
        ("hasVisits", "TRUE"),
        ("hasVisits", "True"),
        ("hasVisits", ""),
        ("q", "x" * 201),
        ("q", "é" * 201),
    ],
)
def test_invalid_parameter_values_are_400_naming_the_parameter(
    api: tuple[TestClient, dict[str, str]], name: str, value: str
) -> None:
    client, headers = api
    response = client.get(LINKS_PATH, params={name: value}, headers=headers)
    assert_error(response, 400, "invalid_parameter", name)
    assert response.headers["X-RateLimit-Limit"]


# --- detail --------------------------------------------------------------------------------------


def _check_analytics(link: dict[str, Any]) -> None:
    analytics = link["analytics"]
    assert set(analytics) == ANALYTICS_KEYS
    total = analytics["totalClicks"]
    assert total == link["clicks"] == sum(day["clicks"] for day in analytics["clicksByDay"])
    assert 0 <= analytics["uniqueVisitors"] <= total
    assert (analytics["lastVisitedAt"] is None) is (total == 0)
    assert set(analytics["devices"]) == {"desktop", "mobile", "tablet"}
    assert sum(analytics["devices"].values()) == total
    for rows, label in (
        (analytics["topCountries"], "country"),
        (analytics["topReferrers"], "referrer"),
    ):
        clicks = [row["clicks"] for row in rows]
        assert clicks == sorted(clicks, reverse=True)
        assert sum(clicks) <= total
        assert all(set(row) == {label, "clicks"} for row in rows)


def test_detail_has_every_field_and_consistent_analytics(
    api: tuple[TestClient, dict[str, str]], everything: list[dict[str, Any]]
) -> None:
    client, headers = api
    visited = [link for link in everything if link["hasVisits"]][:5]
    unvisited = [link for link in everything if not link["hasVisits"]][:5]
    assert visited and unvisited
    for summary in visited + unvisited:
        response = client.get(f"{LINKS_PATH}/{summary['id']}", headers=headers)
        assert response.status_code == 200, response.text
        detail = response.json()
        assert set(detail) == LINK_KEYS | {"analytics"}
        assert {k: v for k, v in detail.items() if k != "analytics"} == summary
        _check_analytics(detail)


def test_detail_of_every_sample_link_is_consistent(
    api: tuple[TestClient, dict[str, str]], everything: list[dict[str, Any]]
) -> None:
    invariants = pytest.importorskip("invariants")
    client, headers = api
    for summary in everything:
        detail = client.get(f"{LINKS_PATH}/{summary['id']}", headers=headers).json()
        _check_analytics(detail)
        if hasattr(invariants, "assert_wire_link_consistent"):
            invariants.assert_wire_link_consistent(detail)


@pytest.mark.parametrize(
    "link_id", ["lnk_0000000000000000", "nope", "LNK_X", "1", "lnk_%C3%A9", "a" * 300]
)
def test_unknown_id_is_link_not_found(api: tuple[TestClient, dict[str, str]], link_id: str) -> None:
    client, headers = api
    response = client.get(f"{LINKS_PATH}/{link_id}", headers=headers)
    assert_error(response, 404, "link_not_found")
    assert response.headers["X-RateLimit-Limit"]


# --- create --------------------------------------------------------------------------------------


def test_sandbox_create_is_201_not_persisted(
    client: TestClient, fast_headers: dict[str, str]
) -> None:
    set_clock(client, FROZEN_NOW)
    body = {"title": "My link ✓", "destination": "https://example.com/a?b=c#d"}
    response = client.post(LINKS_PATH, json=body, headers=fast_headers)
    assert response.status_code == 201, response.text
    link = response.json()
    assert link["persisted"] is False
    assert set(link) == LINK_KEYS | {"analytics", "persisted"}
    assert link["title"] == body["title"] and link["destination"] == body["destination"]
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{1,62}[a-z0-9]", link["slug"])
    assert link["shortUrl"] == f"https://8here.in/{link['slug']}"
    assert link["clicks"] == 0 and link["hasVisits"] is False
    assert link["createdAt"] == link["updatedAt"] == FROZEN_NOW
    assert link["analytics"]["totalClicks"] == 0 and link["analytics"]["lastVisitedAt"] is None
    _check_analytics(link)
    assert base64.b64decode(link["qrCodeBase64"]).startswith(PNG_SIGNATURE)
    # Nothing was stored: the id is unknown, the list unchanged.
    detail = client.get(f"{LINKS_PATH}/{link['id']}", headers=fast_headers)
    assert_error(detail, 404, "link_not_found")
    listed = client.get(LINKS_PATH, params={"q": link["slug"]}, headers=fast_headers).json()
    assert link["id"] not in [item["id"] for item in listed["data"]]


def test_sandbox_create_keeps_a_given_slug(
    client: TestClient, fast_headers: dict[str, str]
) -> None:
    body = {"title": "t", "destination": "http://example.com", "slug": "my-own-slug-42"}
    response = client.post(LINKS_PATH, json=body, headers=fast_headers)
    assert response.status_code == 201, response.text
    assert response.json()["slug"] == "my-own-slug-42"
    assert response.json()["shortUrl"] == "https://8here.in/my-own-slug-42"
    # Not stored, so the same slug is free again.
    assert client.post(LINKS_PATH, json=body, headers=fast_headers).status_code == 201


def test_seed_create_body_is_201(client: TestClient, fast_headers: dict[str, str]) -> None:
    response = client.post(LINKS_PATH, json=SEED_CREATE, headers=fast_headers)
    assert response.status_code == 201, response.text
    link = response.json()
    assert link["slug"] == "launch-page"
    assert link["shortUrl"] == "https://8here.in/launch-page"
    assert link["persisted"] is False


def test_slug_of_a_sample_link_is_slug_taken(
    api: tuple[TestClient, dict[str, str]], everything: list[dict[str, Any]]
) -> None:
    client, headers = api
    for sample in (everything[0], everything[-1]):
        body = {"title": "t", "destination": "https://example.com", "slug": sample["slug"]}
        response = client.post(LINKS_PATH, json=body, headers=headers)
        assert_error(response, 409, "slug_taken")
        assert response.headers["X-RateLimit-Limit"]


VALID = {"title": "Title", "destination": "https://example.com/x"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"destination": "https://example.com"}, "title"),
        ({"title": "t"}, "destination"),
        ({}, "title"),
        ({"title": None, "destination": "https://example.com"}, "title"),
        ({**VALID, "title": ""}, "title"),
        ({**VALID, "title": "x" * 201}, "title"),
        ({**VALID, "destination": "ftp://example.com/file"}, "destination"),
        ({**VALID, "destination": "/relative/path"}, "destination"),
        ({**VALID, "destination": "example.com"}, "destination"),
        ({**VALID, "destination": "https://"}, "destination"),
        ({**VALID, "destination": "https://exa mple.com"}, "destination"),
        ({**VALID, "destination": "javascript:alert(1)"}, "destination"),
        ({**VALID, "destination": ""}, "destination"),
        ({**VALID, "destination": "https://example.com/" + "a" * 2029}, "destination"),
        ({**VALID, "slug": "-ab"}, "slug"),
        ({**VALID, "slug": "ab-"}, "slug"),
        ({**VALID, "slug": "ab"}, "slug"),
        ({**VALID, "slug": "UPPER"}, "slug"),
        ({**VALID, "slug": "a_b"}, "slug"),
        ({**VALID, "slug": "a b c"}, "slug"),
        ({**VALID, "slug": "é-slug"}, "slug"),
        ({**VALID, "slug": "a" * 65}, "slug"),
        ({**VALID, "slug": ""}, "slug"),
    ],
)
def test_create_validation_is_422_naming_the_field(
    api: tuple[TestClient, dict[str, str]], body: dict[str, object], field: str
) -> None:
    client, headers = api
    assert_error(
        client.post(LINKS_PATH, json=body, headers=headers), 422, "validation_failed", field
    )


@pytest.mark.parametrize(
    "body",
    [
        {**VALID, "title": "x" * 200},
        {**VALID, "title": "é"},
        {**VALID, "destination": "https://example.com/" + "a" * 2028},
        {**VALID, "slug": "abc"},
        {**VALID, "slug": "a" * 64},
        {**VALID, "slug": None},
        {**VALID, "extra": "ignored"},
    ],
)
def test_create_boundaries_are_accepted(
    api: tuple[TestClient, dict[str, str]], body: dict[str, object]
) -> None:
    client, headers = api
    response = client.post(LINKS_PATH, json=body, headers=headers)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "destination",
    [
        "https://exa\x00mple.com",
        "https://example.com/a\x01b",
        "https://example.com/\x7f",
        "https://\ufeffexample.com",
        "https://example.com/\x9f",
    ],
    ids=repr,
)
def test_create_destination_with_control_characters_is_422(
    api: tuple[TestClient, dict[str, str]], destination: str
) -> None:
    """The contract's Destination pattern excludes C0/C1 controls, DEL and BOM anywhere."""
    client, headers = api
    response = client.post(LINKS_PATH, json={**VALID, "destination": destination}, headers=headers)
    assert_error(response, 422, "validation_failed", "destination")


def test_create_with_a_lone_surrogate_is_4xx(api: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = api
    raw = b'{"title": "a\\ud800", "destination": "https://example.com"}'
    response = client.post(
        LINKS_PATH, content=raw, headers={**headers, "Content-Type": "application/json"}
    )
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["field"] == "title"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": 5, "destination": "https://example.com"}, "title"),
        ({"title": ["t"], "destination": "https://example.com"}, "title"),
        ({"title": "t", "destination": 1.5}, "destination"),
        ({"title": "t", "destination": {"url": "https://example.com"}}, "destination"),
        ({"title": "t", "destination": "https://example.com", "slug": 123}, "slug"),
        ({"title": "t", "destination": "https://example.com", "slug": False}, "slug"),
        ({"title": True, "destination": "https://example.com"}, "title"),
    ],
)
def test_create_wrong_json_types_are_400(
    api: tuple[TestClient, dict[str, str]], body: dict[str, object], field: str
) -> None:
    client, headers = api
    response = client.post(LINKS_PATH, json=body, headers=headers)
    assert_error(response, 400, "invalid_request", field)


@pytest.mark.parametrize("raw", [b"[]", b'"x"', b"1", b"null", b"{", b"", b"\x00\x01"], ids=repr)
def test_create_non_object_body_is_400(api: tuple[TestClient, dict[str, str]], raw: bytes) -> None:
    client, headers = api
    response = client.post(
        LINKS_PATH, content=raw, headers={**headers, "Content-Type": "application/json"}
    )
    assert_error(response, 400, "invalid_request")


def test_create_with_form_content_type_is_415(api: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = api
    response = client.post(LINKS_PATH, data={"title": "t"}, headers=headers)
    assert_error(response, 415, "unsupported_media_type")


def test_create_over_64_kib_is_413(api: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = api
    raw = b'{"title": "t", "destination": "https://example.com"' + b" " * 65536 + b"}"
    response = client.post(
        LINKS_PATH, content=raw, headers={**headers, "Content-Type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")


# --- determinism ---------------------------------------------------------------------------------


def _comparable_headers(response: Any) -> list[tuple[str, str]]:
    return sorted((k, v) for k, v in response.headers.items() if k.lower() != "x-request-id")


def _session(path_for_detail: str | None = None) -> list[Any]:
    """The same requests against a fresh emulator on a frozen clock."""
    with emulator_client() as client:
        set_clock(client, FROZEN_NOW)
        headers = register_fast_app(client, "determinism_app")
        responses = [
            client.get(LINKS_PATH, params={**SEED_QUERY, "limit": 25}, headers=headers),
            client.get(LINKS_PATH, params={"sortBy": "title", "limit": 100}, headers=headers),
        ]
        first_id = responses[1].json()["data"][0]["id"]
        responses += [
            client.get(f"{LINKS_PATH}/{first_id}", headers=headers),
            client.post(
                LINKS_PATH, json={"title": "t", "destination": "https://a.b"}, headers=headers
            ),
            client.post(LINKS_PATH, json=SEED_CREATE, headers=headers),
            client.get(LINKS_PATH, params={"limit": "abc"}, headers=headers),
            client.get(f"{LINKS_PATH}/nope", headers=headers),
        ]
        return responses


def test_same_requests_give_identical_bytes_across_runs() -> None:
    first, second = _session(), _session()
    for a, b in zip(first, second, strict=True):
        assert a.status_code == b.status_code
        assert a.content == b.content
        assert _comparable_headers(a) == _comparable_headers(b)
        assert a.headers["X-Request-Id"] != b.headers["X-Request-Id"]


def test_same_request_twice_gives_identical_bodies(frozen_client: TestClient) -> None:
    headers = register_fast_app(frozen_client)
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", LINKS_PATH, {"params": {"limit": 50, "sortBy": "clicks"}}),
        ("POST", LINKS_PATH, {"json": {"title": "same", "destination": "https://s.example"}}),
        ("POST", LINKS_PATH, {"json": {"title": 5}}),
    ]
    for method, path, kwargs in calls:
        a = frozen_client.request(method, path, headers=headers, **kwargs)
        b = frozen_client.request(method, path, headers=headers, **kwargs)
        assert a.status_code == b.status_code
        assert a.content == b.content


# --- headers, routing, CORS ----------------------------------------------------------------------


def test_x_request_id_on_every_response(client: TestClient) -> None:
    set_clock(client, FROZEN_NOW)
    headers = auth_headers(client)
    responses = [
        client.get(LINKS_PATH, headers=headers),
        client.get(f"{LINKS_PATH}/nope", headers=headers),
        client.get("/no/such/route"),
        client.delete(LINKS_PATH),
        client.get(LINKS_PATH),
        client.get(LINKS_PATH, headers={"Authorization": "Bearer forged"}),
        client.post(TOKEN_PATH, content=b"x", headers={"Content-Type": "text/plain"}),
        client.post(TOKEN_PATH, json={"clientId": "a", "clientSecret": "b"}),
        client.get("/_emulator/health"),
        client.get("/openapi.json"),
        client.options(
            LINKS_PATH,
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        ),
    ]
    for _ in range(15):
        client.get(LINKS_PATH, params={"limit": 1}, headers=headers)
    limited = client.get(LINKS_PATH, headers=headers)
    assert limited.status_code == 429
    responses.append(limited)
    ids = [response.headers.get("X-Request-Id") for response in responses]
    assert all(ids), list(zip([r.status_code for r in responses], ids, strict=True))
    assert len(set(ids)) == len(ids)


def test_a_well_formed_client_request_id_is_echoed(client: TestClient) -> None:
    response = client.get("/_emulator/health", headers={"X-Request-Id": "trace-123.abc"})
    assert response.headers["X-Request-Id"] == "trace-123.abc"
    odd = client.get("/_emulator/health", headers={"X-Request-Id": "bad id\twith spaces"})
    assert odd.headers["X-Request-Id"] and odd.headers["X-Request-Id"] != "bad id\twith spaces"


@pytest.mark.parametrize(
    "path", ["/no/such/route", "/api/api-applications", "/api/x/y/z", "/%00/x"]
)
def test_unknown_route_is_404_envelope(client: TestClient, path: str) -> None:
    assert_error(client.get(path), 404, "not_found")


def test_unknown_single_segment_path_is_404_envelope(client: TestClient) -> None:
    response = client.get("/definitely-not-a-route")
    assert response.status_code == 404
    assert response.json()["error"]["code"] in ("not_found", "link_not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", LINKS_PATH, {"GET", "POST"}),
        ("PUT", LINKS_PATH, {"GET", "POST"}),
        ("PATCH", LINKS_PATH, {"GET", "POST"}),
        ("GET", TOKEN_PATH, {"POST"}),
        ("PUT", TOKEN_PATH, {"POST"}),
        ("POST", f"{LINKS_PATH}/lnk_x", {"GET"}),
        ("DELETE", f"{LINKS_PATH}/lnk_x", {"GET"}),
    ],
)
def test_wrong_method_is_405_with_allow(
    client: TestClient, method: str, path: str, allowed: set[str]
) -> None:
    response = client.request(method, path)
    assert_error(response, 405, "method_not_allowed")
    listed = {m.strip().upper() for m in response.headers["Allow"].split(",")}
    assert allowed <= listed, response.headers["Allow"]
    assert listed <= allowed | {"HEAD", "OPTIONS"}, response.headers["Allow"]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_cors_preflight_allows_authorization_by_name(client: TestClient, method: str) -> None:
    response = client.options(
        LINKS_PATH,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code in (200, 204), response.text
    assert response.headers["Access-Control-Allow-Origin"] in ("*", ORIGIN)
    allowed = [
        h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")
    ]
    assert "authorization" in allowed
    assert "content-type" in allowed
    methods = response.headers["Access-Control-Allow-Methods"].upper()
    assert method in methods
    assert response.headers.get("X-Request-Id")


def test_cors_preflight_for_the_token_endpoint(client: TestClient) -> None:
    response = client.options(
        TOKEN_PATH,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code in (200, 204), response.text
    assert response.headers["Access-Control-Allow-Origin"] in ("*", ORIGIN)


def test_cors_simple_get_and_errors_carry_allow_origin(client: TestClient) -> None:
    headers = {**auth_headers(client), "Origin": ORIGIN}
    ok = client.get(LINKS_PATH, params={"limit": 1}, headers=headers)
    assert ok.status_code == 200
    assert ok.headers["Access-Control-Allow-Origin"] in ("*", ORIGIN)
    exposed = {h.strip().lower() for h in ok.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"x-request-id", "x-ratelimit-remaining", "retry-after"} <= exposed
    for response in (
        client.get(LINKS_PATH, headers={"Origin": ORIGIN}),
        client.get(f"{LINKS_PATH}/nope", headers=headers),
        client.get(LINKS_PATH, params={"limit": 0}, headers=headers),
    ):
        assert 400 <= response.status_code < 500
        assert response.headers["Access-Control-Allow-Origin"] in ("*", ORIGIN)


def test_token_exchange_from_a_browser_origin(client: TestClient) -> None:
    response = client.post(
        TOKEN_PATH,
        json={"clientId": "sb_demo_client", "clientSecret": "sbs_demo_secret"},
        headers={"Origin": ORIGIN},
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] in ("*", ORIGIN)
    assert response.headers.get("Cache-Control") == "no-store"


def test_openapi_contract_is_served(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert "/api/api-applications/public/links" in response.json()["paths"]
    assert client.get("/openapi.yaml").status_code == 200
