"""The README's wire facts are generated from the contract, and the contract's facts hold for the
code: the constants it names, and the rules it states, probed on a running emulator."""

from __future__ import annotations

import re
from typing import Any

import wire_facts
from conftest import (
    CONTROL,
    FROZEN_NOW,
    LINKS_PATH,
    TOKEN_PATH,
    auth_headers,
    set_clock,
)
from starlette.testclient import TestClient

from emulator import assertions, ratelimit
from emulator.models import SANDBOX_RATE_LIMIT
from emulator.settings import Settings
from emulator.store import LinkQuery


def _parameters() -> dict[str, dict[str, Any]]:
    contract = wire_facts.Contract(wire_facts.load())
    return {
        parameter["name"]: parameter["schema"]
        for _method, _path, operation in contract.operations()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query"
    }


def test_the_readme_section_is_generated_from_the_contract() -> None:
    readme = wire_facts.README.read_text(encoding="utf-8")

    assert wire_facts.section(readme) == wire_facts.generate(wire_facts.load()), (
        "README.md's wire facts are stale: run `python tests/wire_facts.py`"
    )


def test_the_section_names_every_error_code_and_field() -> None:
    document = wire_facts.load()
    text = wire_facts.generate(document)
    codes = re.findall(r"`(\w+)`", document["info"]["description"].split("Codes:")[1])
    for code in codes:
        assert f"| `{code}`" in text or f", `{code}`" in text, code
    for name in ("Token", "LinkSummary", "Analytics", "Pagination", "NewLink", "Devices"):
        for field in document["components"]["schemas"][name]["properties"]:
            assert f"| `{field}` |" in text, (name, field)


def test_the_list_defaults_are_the_codes() -> None:
    parameters = _parameters()
    query = LinkQuery()

    assert parameters["limit"]["default"] == query.limit
    assert parameters["offset"]["default"] == query.offset
    assert parameters["sortBy"]["default"] == query.sort_by
    assert parameters["sortOrder"]["default"] == query.sort_order


def test_the_journal_types_parameters_as_the_contract_does() -> None:
    kinds = {"integer": int, "boolean": bool}
    typed = {
        name: kinds[schema["type"]]
        for name, schema in _parameters().items()
        if schema["type"] != "string"
    }

    assert typed == assertions.PARAMETER_TYPES


def test_the_numbers_the_contract_states_are_the_codes() -> None:
    document = wire_facts.load()
    token = document["components"]["schemas"]["Token"]["properties"]["expiresIn"]
    window = document["components"]["headers"]["X-RateLimit-Limit"]["description"]

    assert token["description"] == f"Seconds the token lives ({Settings().token_ttl_seconds})."
    assert f"capped at {SANDBOX_RATE_LIMIT} requests a minute" in document["info"]["description"]
    assert f"sliding {ratelimit.WINDOW_SECONDS}-second window" in window


# -- the rules, on a running emulator


def test_an_unparameterized_list_is_the_newest_25(client: TestClient) -> None:
    page = client.get(LINKS_PATH, headers=auth_headers(client)).json()

    assert page["pagination"] == {"total": 240, "limit": 25, "offset": 0, "hasMore": True}
    keys = [(link["createdAt"], link["id"]) for link in page["data"]]
    assert keys == sorted(keys, reverse=True)


def test_token_exchanges_401s_and_429s_do_not_count(client: TestClient) -> None:
    set_clock(client, FROZEN_NOW)
    for _ in range(20):
        headers = auth_headers(client)
    client.get(LINKS_PATH, headers={"Authorization": "Bearer forged"})
    assert client.get(LINKS_PATH, headers=headers).headers["X-RateLimit-Remaining"] == "14"
    for _ in range(14):
        client.get(LINKS_PATH, params={"limit": 1}, headers=headers)
    assert client.get(LINKS_PATH, headers=headers).status_code == 429
    client.post(f"{CONTROL}/clock", json={"advanceSeconds": 60})

    assert client.get(LINKS_PATH, headers=headers).headers["X-RateLimit-Remaining"] == "14"


def test_search_and_title_order_fold_case_in_code_point_order(client: TestClient) -> None:
    body = {"clientId": "lv_fold", "clientSecret": "s", "environment": "live"}
    client.post(f"{CONTROL}/applications", json={**body, "workspaceId": "ws_fold"})
    headers = auth_headers(client, "lv_fold", "s")
    for title in ("b", "Straße", "A", "ä", "Z"):
        created = client.post(
            LINKS_PATH, json={"title": title, "destination": "https://e.com"}, headers=headers
        )
        assert created.status_code == 201, created.text

    found = client.get(LINKS_PATH, params={"q": "STRASSE"}, headers=headers).json()["data"]
    ordered = client.get(
        LINKS_PATH, params={"sortBy": "title", "sortOrder": "asc"}, headers=headers
    ).json()["data"]

    assert [link["title"] for link in found] == ["Straße"]
    assert [link["title"] for link in ordered] == ["A", "b", "Straße", "Z", "ä"]
    assert client.post(TOKEN_PATH, json={}).status_code == 422
