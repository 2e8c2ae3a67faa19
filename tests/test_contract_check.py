"""What the contract says of one request and one answer (emulator/drift/contract_check.py), named
at the places the comparison names: the proxy folds the two into one list of differences."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from conftest import LINKS_PATH, TOKEN_PATH
from starlette.testclient import TestClient

from emulator.drift.contract import Contract
from emulator.drift.contract_check import ContractCheck, Violation, find_operation
from emulator.settings import contract_path

RATE = {"x-ratelimit-limit": "15", "x-ratelimit-remaining": "14", "x-ratelimit-reset": "1"}
JSON = {"content-type": "application/json", "x-request-id": "req_1"}


@pytest.fixture(scope="module")
def check() -> ContractCheck:
    return ContractCheck(Contract.load(contract_path()))


@pytest.fixture
def page(client: TestClient, fast_headers: dict[str, str]) -> dict[str, Any]:
    response = client.get(f"{LINKS_PATH}?limit=3", headers=fast_headers)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _places(found: list[Violation]) -> set[tuple[str, str]]:
    return {(v.kind, v.location) for v in found}


def test_the_emulators_page_conforms(check: ContractCheck, page: dict[str, Any]) -> None:
    assert check.response("listLinks", 200, {**JSON, **RATE}, page, True) == []


def test_a_renamed_field_is_missing_where_it_was_and_undocumented_where_it_went(
    check: ContractCheck, page: dict[str, Any]
) -> None:
    for item in page["data"]:
        item["visited"] = item.pop("hasVisits")
    found = check.response("listLinks", 200, {**JSON, **RATE}, page, True)
    assert _places(found) == {
        ("missing-field", "body $.data[*].hasVisits"),
        ("undocumented-field", "body $.data[*].visited"),
    }


def test_types_nulls_and_rules_are_named_once_for_every_item(
    check: ContractCheck, page: dict[str, Any]
) -> None:
    for item in page["data"]:
        item["clicks"] = str(item["clicks"])
        item["title"] = None
        item["slug"] = "Not A Slug"
    page["pagination"]["limit"] = 0
    found = check.response("listLinks", 200, {**JSON, **RATE}, page, True)
    assert _places(found) == {
        ("type", "body $.data[*].clicks"),
        ("nullability", "body $.data[*].title"),
        ("value", "body $.data[*].slug"),
        ("value", "body $.pagination.limit"),
    }
    assert all("Not A Slug" not in v.message for v in found)  # no value the target sent


def test_a_created_links_null_slug_is_one_of_its_alternatives(
    client: TestClient, fast_headers: dict[str, str], check: ContractCheck
) -> None:
    created = client.post(
        LINKS_PATH,
        json={"title": "T", "destination": "https://example.com/t"},
        headers=fast_headers,
    )
    body = created.json()
    headers = {**JSON, **{k.lower(): v for k, v in created.headers.items()}}
    assert check.response("createLink", 201, headers, body, True) == []
    sent = {"title": "T", "destination": "https://example.com/t", "slug": None}
    request_headers = {"authorization": fast_headers["Authorization"], **JSON}
    assert check.request("POST", LINKS_PATH, [], request_headers, json.dumps(sent).encode()) == []


def test_statuses_headers_and_media_types(check: ContractCheck, page: dict[str, Any]) -> None:
    assert _places(check.response("listLinks", 422, JSON, {}, True)) == {("status", "status")}
    found = check.response(
        "listLinks",
        200,
        {"content-type": "text/html", "x-ratelimit-limit": "many", "x-ratelimit-reset": "1"},
        page,
        True,
    )
    assert _places(found) == {
        ("header-presence", "header X-Request-Id"),
        ("header-presence", "header X-RateLimit-Remaining"),
        ("header-value", "header X-RateLimit-Limit"),
        ("header-value", "header Content-Type"),
    }
    assert _places(check.response("listLinks", 200, {**JSON, **RATE}, None, False)) == {
        ("body", "body")
    }
    assert check.response("notAnOperation", 500, {}, None, False) == []


def test_undocumented_fields_are_named_even_where_extra_ones_are_allowed() -> None:
    document = copy.deepcopy(Contract.load(contract_path()).document)
    schemas = document["components"]["schemas"]
    schemas["Pagination"]["additionalProperties"] = True
    open_check = ContractCheck(Contract(document))
    page = {"data": [], "pagination": {"total": 0, "limit": 1, "offset": 0, "hasMore": False}}
    page["pagination"]["cursor"] = "next"
    (found,) = open_check.response("listLinks", 200, {**JSON, **RATE}, page, True)
    assert (found.kind, found.location) == ("undocumented-field", "body $.pagination.cursor")
    assert "extra fields allowed" in found.message


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "body", "expected"),
    [
        (
            "GET",
            LINKS_PATH,
            [("limit", "0")],
            {"authorization": "Bearer t"},
            b"",
            {("parameter", "query limit")},
        ),
        (
            "GET",
            LINKS_PATH,
            [("hasVisits", "yes")],
            {"authorization": "Bearer t"},
            b"",
            {("parameter", "query hasVisits")},
        ),
        (
            "GET",
            LINKS_PATH,
            [("sortBy", "size"), ("x", "1")],
            {},
            b"",
            {
                ("parameter", "query sortBy"),
                ("auth", "header Authorization"),
            },
        ),
        ("GET", f"{LINKS_PATH}/lnk_1", [], {"authorization": "Bearer t"}, b"", set()),
        ("DELETE", f"{LINKS_PATH}/lnk_1", [], {}, b"", {("operation", "path")}),
        ("POST", TOKEN_PATH, [], {"content-type": "application/json"}, b"{", {("body", "body")}),
        (
            "POST",
            TOKEN_PATH,
            [],
            {"content-type": "text/plain"},
            b"{}",
            {("content-type", "header Content-Type")},
        ),
        (
            "POST",
            TOKEN_PATH,
            [],
            {"content-type": "application/json"},
            b'{"clientId": 1}',
            {
                ("type", "body $.clientId"),
                ("missing-field", "body $.clientSecret"),
            },
        ),
        ("POST", TOKEN_PATH, [], {"content-type": "application/json"}, b"", {("body", "body")}),
    ],
)
def test_requests_against_the_contract(
    check: ContractCheck,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
    expected: set[tuple[str, str]],
) -> None:
    assert _places(check.request(method, path, query, headers, body)) == expected


def test_a_path_is_matched_to_its_operation_fixed_paths_first() -> None:
    contract = Contract.load(contract_path())
    listing = find_operation(contract, "GET", LINKS_PATH)
    assert listing is not None and listing.operation.operation_id == "listLinks"
    detail = find_operation(contract, "get", f"{LINKS_PATH}/lnk_x")
    assert detail is not None and detail.path_params == {"linkId": "lnk_x"}
    assert find_operation(contract, "GET", f"{LINKS_PATH}/a/b") is None
