"""Query strings and request bodies → domain values or precise 4xx errors.

The pure parsers (`parse_link_query`, `parse_new_link`) are checked against independent oracles
written from the spec; the body reader (`read_json_body`) over HTTP.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import LINKS_PATH, assert_error, emulator_client, register_fast_app
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import QueryParams
from starlette.testclient import TestClient

from emulator.errors import ApiError
from emulator.models import NewLink, parse_new_link
from emulator.parsing import parse_link_query
from emulator.store import LinkQuery

SORT_KEYS = ("createdAt", "updatedAt", "title", "clicks")
SORT_ORDERS = ("asc", "desc")
FAST = settings(max_examples=150, deadline=None)


def _parse(**params: str) -> LinkQuery:
    return parse_link_query(QueryParams(params))


def _error(**params: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        _parse(**params)
    return caught.value


# --- the list query ------------------------------------------------------------------------------


def test_defaults() -> None:
    query = _parse()
    assert query == LinkQuery(
        q=None, has_visits=None, limit=25, offset=0, sort_by="createdAt", sort_order="desc"
    )


def test_every_valid_value() -> None:
    query = _parse(
        q="Launch", hasVisits="false", limit="100", offset="7", sortBy="title", sortOrder="asc"
    )
    assert query == LinkQuery(
        q="Launch", has_visits=False, limit=100, offset=7, sort_by="title", sort_order="asc"
    )
    assert _parse(hasVisits="true").has_visits is True
    assert _parse(limit="1").limit == 1
    assert _parse(limit="007").limit == 7
    assert _parse(offset="0").offset == 0


def test_unknown_parameters_are_ignored() -> None:
    assert parse_link_query(QueryParams("foo=bar&LIMIT=0&sortby=x")) == _parse()


def _oracle(name: str, value: str) -> object:
    """What the spec says `name=value` means, or ApiError if it is invalid."""
    digits = value.isascii() and value.isdigit()
    if name == "limit":
        return int(value) if digits and 1 <= int(value) <= 100 else ApiError
    if name == "offset":
        return int(value) if digits else ApiError
    if name == "sortBy":
        return value if value in SORT_KEYS else ApiError
    if name == "sortOrder":
        return value if value in SORT_ORDERS else ApiError
    if name == "hasVisits":
        return {"true": True, "false": False}.get(value, ApiError)
    assert name == "q"
    return (value or None) if len(value) <= 200 else ApiError


ATTRIBUTE = {
    "limit": "limit",
    "offset": "offset",
    "sortBy": "sort_by",
    "sortOrder": "sort_order",
    "hasVisits": "has_visits",
    "q": "q",
}
NEAR_VALID = st.sampled_from(
    [
        *SORT_KEYS,
        *SORT_ORDERS,
        "true",
        "false",
        "True",
        "FALSE",
        "0",
        "1",
        "25",
        "100",
        "101",
        "-1",
        "+5",
        " 5",
        "5 ",
        "1.0",
        "1e3",
        "0x10",
        "١٢",  # Arabic-Indic digits: isdigit() but not ASCII
        "²",
        "",
        "9" * 13,
        "9" * 40,
        "x" * 200,
        "x" * 201,
    ]
)
VALUES = st.one_of(
    NEAR_VALID, st.text(max_size=30), st.text(string.digits, min_size=1, max_size=25)
)


@FAST
@given(name=st.sampled_from(sorted(ATTRIBUTE)), value=VALUES)
def test_each_parameter_matches_the_spec(name: str, value: str) -> None:
    expected = _oracle(name, value)
    if expected is ApiError:
        error = _error(**{name: value})
        assert (error.status, error.code, error.field) == (400, "invalid_parameter", name)
        assert error.message
        return
    query = _parse(**{name: value})
    got = getattr(query, ATTRIBUTE[name])
    if name == "offset" and len(value) > 12:
        assert isinstance(got, int) and got >= 10**12  # any such offset is past the end
    else:
        assert got == expected


@pytest.mark.parametrize("name", ["limit", "offset"])
@pytest.mark.parametrize("value", ["abc", "1.5", "-1", "", " ", "1_000"])
def test_integers_are_plain_ascii_digits(name: str, value: str) -> None:
    error = _error(**{name: value})
    assert error.field == name and error.status == 400


def test_q_length_counts_characters_not_bytes() -> None:
    assert _parse(q="日" * 200).q == "日" * 200
    assert _error(q="日" * 201).field == "q"


# --- the create body -----------------------------------------------------------------------------

JSON_NON_STRINGS = st.one_of(
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
HOSTS = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z]{2,6}){0,2}", fullmatch=True)
PATHS = st.from_regex(
    r"(/[A-Za-z0-9._~%!$&'()*+,;=:@-]{0,20}){0,3}(\?[a-z=&0-9]{0,10})?", fullmatch=True
)
GOOD_DESTINATIONS = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
    st.sampled_from(["http", "https"]),
    HOSTS,
    st.sampled_from(["", ":8080", ":1"]),
    PATHS,
)
GOOD_SLUGS = st.from_regex(r"[a-z0-9][a-z0-9-]{1,62}[a-z0-9]", fullmatch=True)
GOOD_TITLES = st.text(st.characters(codec="utf-8"), min_size=1, max_size=200)


@FAST
@given(title=GOOD_TITLES, destination=GOOD_DESTINATIONS, slug=st.none() | GOOD_SLUGS)
def test_valid_bodies_parse(title: str, destination: str, slug: str | None) -> None:
    body: dict[str, Any] = {"title": title, "destination": destination}
    if slug is not None or title.startswith("a"):
        body["slug"] = slug
    assert parse_new_link(body) == NewLink(title=title, destination=destination, slug=slug)


@FAST
@given(
    field=st.sampled_from(["title", "destination", "slug"]),
    value=JSON_NON_STRINGS,
)
def test_wrong_types_are_400_naming_the_field(field: str, value: object) -> None:
    body: dict[str, object] = {"title": "t", "destination": "https://example.com", field: value}
    with pytest.raises(ApiError) as caught:
        parse_new_link(body)
    assert (caught.value.status, caught.value.code, caught.value.field) == (
        400,
        "invalid_request",
        field,
    )


@FAST
@given(body=st.one_of(st.lists(st.integers()), st.text(), st.integers(), st.none(), st.booleans()))
def test_non_objects_are_400(body: object) -> None:
    with pytest.raises(ApiError) as caught:
        parse_new_link(body)
    assert (caught.value.status, caught.value.code) == (400, "invalid_request")


BAD_SLUGS = st.one_of(
    st.from_regex(r"-[a-z0-9-]{2,10}", fullmatch=True),
    st.from_regex(r"[a-z0-9-]{2,10}-", fullmatch=True),
    st.from_regex(r"[a-z0-9]{0,2}", fullmatch=True),
    st.from_regex(r"[a-z0-9]{65,80}", fullmatch=True),
    st.from_regex(r"[a-z0-9]{1,5}[A-Z_ .é/][a-z0-9]{1,5}", fullmatch=True),
)
BAD_DESTINATIONS = st.one_of(
    st.builds(
        lambda s, h: f"{s}://{h}", st.sampled_from(["ftp", "file", "ws", "mailto", "h"]), HOSTS
    ),
    st.builds(lambda h: f"//{h}", HOSTS),
    st.builds(lambda h: f"/{h}", HOSTS),
    HOSTS,
    st.builds(lambda h: f"https://{h} x", HOSTS),
    st.builds(lambda h: f"https:/{h}", HOSTS),
    st.builds(lambda h: "https://" + h + "/" + "a" * (2048 - len(h) - 8), HOSTS),
)


@FAST
@given(field=st.sampled_from(["title", "destination", "slug"]), data=st.data())
def test_broken_rules_are_422_naming_the_field(field: str, data: st.DataObject) -> None:
    body: dict[str, object] = {"title": "t", "destination": "https://example.com"}
    if field == "title":
        body["title"] = data.draw(st.sampled_from(["", "x" * 201, "é" * 250]))
    elif field == "destination":
        body["destination"] = data.draw(BAD_DESTINATIONS)
    else:
        body["slug"] = data.draw(BAD_SLUGS)
    with pytest.raises(ApiError) as caught:
        parse_new_link(body)
    assert (caught.value.status, caught.value.code, caught.value.field) == (
        422,
        "validation_failed",
        field,
    )


@pytest.mark.parametrize("missing", ["title", "destination"])
def test_missing_required_fields_are_422(missing: str) -> None:
    body = {"title": "t", "destination": "https://example.com"}
    del body[missing]
    with pytest.raises(ApiError) as caught:
        parse_new_link(body)
    assert (caught.value.status, caught.value.field) == (422, missing)


# --- the body reader, over HTTP ------------------------------------------------------------------


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[TestClient, dict[str, str]]]:
    with emulator_client() as client:
        yield client, register_fast_app(client, "parsing_module_app")


def _post(api: tuple[TestClient, dict[str, str]], raw: bytes, content_type: str | None) -> Any:
    client, headers = api
    sent = dict(headers)
    if content_type is not None:
        sent["Content-Type"] = content_type
    return client.post(LINKS_PATH, content=raw, headers=sent)


GOOD = json.dumps({"title": "t", "destination": "https://example.com"}).encode()


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.api+json",
        "application/problem+json",
        "application/json ; charset=UTF-8",
    ],
)
def test_json_media_types_are_read(
    api: tuple[TestClient, dict[str, str]], content_type: str
) -> None:
    assert _post(api, GOOD, content_type).status_code == 201


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/plain",
        "text/json",
        "application/jsonx",
        "application/x-json-ish",
        "json",
        "application/",
        "multipart/form-data; boundary=x",
        "application/octet-stream",
    ],
)
def test_other_media_types_are_415(
    api: tuple[TestClient, dict[str, str]], content_type: str | None
) -> None:
    assert_error(_post(api, GOOD, content_type), 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"{'title': 't'}",
        b'{"title": "t",}',
        b"\xff\xfe\xfa",
        b'{"title": "\xff"}',
        b"[" * 100_00 + b"]" * 100_00,
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        b'{"title": ' + b"9" * 5000 + b', "destination": "https://a.b"}',
    ],
    ids=lambda raw: repr(raw[:20]),
)
def test_unreadable_json_is_400(api: tuple[TestClient, dict[str, str]], raw: bytes) -> None:
    assert_error(_post(api, raw, "application/json"), 400, "invalid_request")


@pytest.mark.parametrize(
    "raw",
    [
        b'{"title": NaN, "destination": "https://a.b"}',
        b'{"title": Infinity, "destination": "https://a.b"}',
        b'{"title": 1e400, "destination": "https://a.b"}',
    ],
    ids=repr,
)
def test_non_finite_numbers_are_400(api: tuple[TestClient, dict[str, str]], raw: bytes) -> None:
    assert _post(api, raw, "application/json").status_code == 400


def test_utf8_bom_body_is_read_or_rejected_cleanly(api: tuple[TestClient, dict[str, str]]) -> None:
    response = _post(api, b"\xef\xbb\xbf" + GOOD, "application/json")
    assert response.status_code in (201, 400), response.text


def test_whitespace_around_json_is_fine(api: tuple[TestClient, dict[str, str]]) -> None:
    assert _post(api, b" \n\t" + GOOD + b"\r\n ", "application/json").status_code == 201


def test_body_limit_counts_bytes(api: tuple[TestClient, dict[str, str]]) -> None:
    title = "é" * 100  # 200 bytes, 100 characters
    raw = json.dumps({"title": title, "destination": "https://a.b"}, ensure_ascii=False).encode()
    padded = raw[:-1] + b" " * (64 * 1024 - len(raw) + 1) + b"}"
    assert len(padded) == 64 * 1024 + 1
    assert_error(_post(api, padded, "application/json"), 413, "payload_too_large")
    assert _post(api, padded[:-2] + b"}", "application/json").status_code == 201
