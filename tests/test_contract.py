"""The contract is valid OpenAPI 3.1, describes exactly what the app serves, and agrees with the
code's rules, error codes and sample data."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import jsonschema
import pytest
import referencing
import referencing.jsonschema
import yaml
from conftest import client_settings
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from starlette.routing import Route
from starlette.testclient import TestClient

from emulator import errors, models, parsing, store
from emulator.app import create_app
from emulator.settings import Settings, contract_path

OPERATION_IDS = {"createToken", "listLinks", "createLink", "getLink"}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
LINKS_PREFIX = "/api/api-applications/public/links"
# Codes the emulator answers outside the real API's operations: unknown routes, wrong methods,
# the control API and injected faults.
EMULATOR_ONLY_CODES = {
    "not_found",
    "method_not_allowed",
    "control_unauthorized",
    "injected_fault",
    "invalid_header",  # a bad X-Emulator-Fault: the emulator's own header
    # the control API's same-origin guard
    "host_refused",
    "cross_origin_refused",
    # refusals of the server itself, before any operation: the real API's front answers these
    # its own way
    "preflight_refused",
    "headers_too_large",
    "uri_too_long",
    # the proxy's own answers when its target does not answer
    "upstream_unreachable",
    "upstream_timeout",
    "request_timeout",
    "malformed_request",
    "emulator_reset",
    "application_exists",
    "workspace_conflict",
    "invalid_scenario",  # POST /_emulator/scenario
}
CONTRACT_URI = "urn:8here:contract"


@cache
def contract() -> dict[str, Any]:
    with contract_path().open(encoding="utf-8") as file:
        document: dict[str, Any] = yaml.safe_load(file)
    return document


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in contract()["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def responses() -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(operationId, path, status, response) with response `$ref`s resolved."""
    for path, _method, operation in operations():
        for status, response in operation["responses"].items():
            yield operation["operationId"], path, status, resolve(response)


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    target: Any = contract()
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return resolve(target)


def response_codes(response: dict[str, Any]) -> set[str]:
    """The error codes a response's schema enumerates (`error.code` enum beside the `$ref`)."""
    schema = response["content"]["application/json"]["schema"]
    return set(
        schema.get("properties", {})
        .get("error", {})
        .get("properties", {})
        .get("code", {})
        .get("enum", [])
    )


def schema_validator(name: str) -> jsonschema.protocols.Validator:
    resource = referencing.Resource.from_contents(
        contract(), default_specification=referencing.jsonschema.DRAFT202012
    )
    registry: referencing.Registry[Any] = referencing.Registry().with_resource(
        CONTRACT_URI, resource
    )
    return jsonschema.Draft202012Validator(
        {"$ref": f"{CONTRACT_URI}#/components/schemas/{name}"},
        registry=registry,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def wire_error_codes() -> dict[str, int]:
    """Every code that `emulator.errors` can put on the wire, with its status."""
    dummies = {"str": "x", "int": 1, "float": 1.0, "float | None": 1.0}
    codes = {}
    for name, function in inspect.getmembers(errors, inspect.isfunction):
        if function.__module__ != errors.__name__ or name.startswith("_"):
            continue
        parameters = inspect.signature(function).parameters.values()
        arguments = [dummies.get(str(p.annotation), {}) for p in parameters]
        error = function(*arguments)
        assert isinstance(error, errors.ApiError), name
        codes[error.code] = error.status
    return codes


@pytest.fixture(scope="module")
def api() -> TestClient:
    # No `with`: nothing here needs the lifespan, which would close the live store on exit.
    return TestClient(create_app(client_settings()))


def test_contract_is_valid_openapi_3_1() -> None:
    assert contract()["openapi"].startswith("3.1.")
    validate(contract(), cls=OpenAPIV31SpecValidator)


def test_operation_ids_are_the_four_real_operations() -> None:
    ids = [operation["operationId"] for _path, _method, operation in operations()]
    assert sorted(ids) == sorted(OPERATION_IDS)


def test_no_emulator_paths() -> None:
    assert not [path for path in contract()["paths"] if path.startswith("/_emulator")]
    assert "_emulator" not in contract_path().read_text(encoding="utf-8")


def test_app_serves_exactly_the_contract_operations(api: TestClient) -> None:
    served = {
        (re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path), method.lower())  # drop convertors
        for route in api.app.routes  # type: ignore[attr-defined]
        if isinstance(route, Route) and route.path.startswith("/api/")
        for method in route.methods or ()
        if method != "HEAD"
    }
    described = {(path, method) for path, method, _operation in operations()}
    assert served == described


def test_app_serves_the_contract_file(api: TestClient) -> None:
    text = contract_path().read_text(encoding="utf-8")
    as_yaml = api.get("/openapi.yaml")
    assert as_yaml.status_code == 200
    assert as_yaml.text == text
    as_json = api.get("/openapi.json")
    assert as_json.status_code == 200
    assert as_json.headers["content-type"].startswith("application/json")
    assert as_json.json() == yaml.safe_load(text)


def test_every_wire_error_code_is_documented_with_its_status() -> None:
    documented: dict[str, set[str]] = {}
    for operation_id, _path, status, response in responses():
        for code in response_codes(response):
            documented.setdefault(code, set()).add(status)
            assert f"`{code}`" in response["description"], (operation_id, status, code)
    api_codes = {
        code: status
        for code, status in wire_error_codes().items()
        if code not in EMULATOR_ONLY_CODES
    }
    assert set(documented) == set(api_codes)
    for code, status in api_codes.items():
        assert str(status) in documented[code], code
    overview = contract()["info"]["description"]
    assert not [code for code in api_codes if f"`{code}`" not in overview]


def test_every_error_response_documents_its_codes() -> None:
    for operation_id, _path, status, response in responses():
        if not status.startswith("2"):
            assert response_codes(response), (operation_id, status)


def test_headers_on_every_response() -> None:
    for operation_id, path, status, response in responses():
        headers = response.get("headers", {})
        assert "X-Request-Id" in headers, (operation_id, status)
        if path.startswith(LINKS_PREFIX) and status != "401":
            for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
                assert resolve(headers[name]).get("required") is True, (operation_id, status, name)
        if status == "401" and path.startswith(LINKS_PREFIX):
            assert "WWW-Authenticate" in headers, operation_id
        assert ("Retry-After" in headers) == (status == "429"), (operation_id, status)


def test_security() -> None:
    schemes = contract()["components"]["securitySchemes"]
    assert list(schemes) == ["bearerAuth"]
    assert (schemes["bearerAuth"]["type"], schemes["bearerAuth"]["scheme"]) == ("http", "bearer")
    for _path, _method, operation in operations():
        expected = [] if operation["operationId"] == "createToken" else None
        assert operation.get("security") == expected, operation["operationId"]
    assert contract()["security"] == [{"bearerAuth": []}]


def test_links_lead_to_the_detail() -> None:
    by_id = {operation["operationId"]: operation for _path, _method, operation in operations()}
    created = by_id["createLink"]["responses"]["201"]["links"]
    assert {"operationId": "getLink", "parameters": {"linkId": "$response.body#/id"}}.items() <= {
        **created["GetCreatedLink"]
    }.items()
    listed = by_id["listLinks"]["responses"]["200"]["links"]["GetFirstListedLink"]
    assert listed["parameters"] == {"linkId": "$response.body#/data/0/id"}
    assert "404" in by_id["getLink"]["responses"]


def test_rules_match_the_code() -> None:
    schemas = contract()["components"]["schemas"]
    assert schemas["Slug"]["pattern"] == models.SLUG_PATTERN
    assert schemas["Destination"]["pattern"] == models.DESTINATION_PATTERN
    assert schemas["Destination"]["maxLength"] == models.DESTINATION_MAX
    assert (schemas["Title"]["minLength"], schemas["Title"]["maxLength"]) == (1, models.TITLE_MAX)
    parameters = {
        parameter["name"]: parameter["schema"]
        for _path, _method, operation in operations()
        for parameter in operation.get("parameters", [])
    }
    assert parameters["q"]["maxLength"] == parsing.Q_MAX
    assert parameters["limit"]["maximum"] == parsing.LIMIT_MAX
    assert parameters["sortBy"]["enum"] == list(store.SORT_KEYS)
    assert parameters["sortOrder"]["enum"] == list(store.SORT_ORDERS)
    assert Settings().max_body_bytes == 64 * 1024
    assert "64 KiB" in contract()["components"]["responses"]["PayloadTooLarge"]["description"]


@pytest.mark.parametrize("name", ["Slug", "Destination", "Timestamp"])
def test_patterns_read_the_same_in_python_and_json_schema(name: str) -> None:
    """The server matches with Python's `re`; validators and schemathesis read the contract's
    patterns as ECMA 262 (`\\s`, `\\d` and `$` differ): they must agree on every character."""
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    pattern = contract()["components"]["schemas"][name]["pattern"]
    python = re.compile(pattern)
    ecma = jsonschema_rs.validator_for({"type": "string", "pattern": pattern})
    valid = {
        "Slug": "ab-c",
        "Destination": "https://8here.in/a?b#c",
        "Timestamp": "2024-05-01T12:00:00Z",
    }[name]
    assert python.fullmatch(valid) and ecma.is_valid(valid)
    characters = [
        chr(c) for c in [*range(0x3100), 0xFEFF, 0xFFFD, 0x1F600] if not 0xD800 <= c < 0xE000
    ]
    for character in characters:
        for text in (valid[:3] + character + valid[3:], valid + character):
            assert bool(python.fullmatch(text)) == ecma.is_valid(text), (name, text)


def test_the_sample_set_conforms(api: TestClient) -> None:
    """Every sample link, listed and in detail, matches the contract's schemas."""
    token = api.post(
        "/api/api-applications/token",
        json={"clientId": "contract_sweep", "clientSecret": "contract_sweep_secret"},
    )
    if token.status_code == 401:
        registered = api.post(
            "/_emulator/applications",
            json={
                "clientId": "contract_sweep",
                "clientSecret": "contract_sweep_secret",
                "environment": "sandbox",
                "workspaceId": "sandbox",
                "rateLimitPerMinute": 1_000_000,
            },
        )
        assert registered.status_code == 201, registered.text
        token = api.post(
            "/api/api-applications/token",
            json={"clientId": "contract_sweep", "clientSecret": "contract_sweep_secret"},
        )
    assert token.status_code == 200, token.text
    schema_validator("Token").validate(token.json())
    headers = {"Authorization": f"Bearer {token.json()['accessToken']}"}

    page_validator = schema_validator("LinkPage")
    ids: list[str] = []
    offset = 0
    while True:
        page = api.get(LINKS_PREFIX, params={"limit": 100, "offset": offset}, headers=headers)
        assert page.status_code == 200, page.text
        page_validator.validate(page.json())
        ids += [link["id"] for link in page.json()["data"]]
        if not page.json()["pagination"]["hasMore"]:
            break
        offset += 100
    assert len(ids) == len(set(ids)) >= 200

    link_validator = schema_validator("Link")
    for link_id in ids:
        detail = api.get(f"{LINKS_PREFIX}/{link_id}", headers=headers)
        assert detail.status_code == 200, detail.text
        link_validator.validate(detail.json())

    created = api.post(
        LINKS_PREFIX,
        content=json.dumps({"title": "Contract", "destination": "https://8here.in/c"}),
        headers={**headers, "Content-Type": "application/json"},
    )
    assert created.status_code == 201, created.text
    schema_validator("CreatedLink").validate(created.json())
