"""Error fuzzing: whatever a client sends, the emulator answers without a 5xx, and every 4xx is
the JSON error envelope `{"error": {"code", "message"}}` with an X-Request-Id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from conftest import LINKS_PATH, TOKEN_PATH, assert_envelope, emulator_client, register_fast_app
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

Api = tuple[TestClient, dict[str, str]]
FUZZ = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ENDPOINTS = [
    ("POST", TOKEN_PATH),
    ("GET", LINKS_PATH),
    ("POST", LINKS_PATH),
    ("GET", LINKS_PATH + "/lnk_0000000000000000"),
]
PARAMETERS = ["q", "hasVisits", "limit", "offset", "sortBy", "sortOrder"]


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    with emulator_client() as client:
        yield client, register_fast_app(client, "fuzz_module_app")


def _check(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    assert response.headers.get("X-Request-Id"), response.headers
    if response.status_code >= 400:
        assert_envelope(response)
    elif response.status_code in (200, 201):
        assert isinstance(response.json(), dict)


# --- strategies ----------------------------------------------------------------------------------

TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
HUGE_NUMBERS = st.sampled_from(
    [str(10**30), "-" + str(10**30), "1e309", "NaN", "inf", "0x7fffffff", "9" * 400, "00000001"]
)
PARAM_VALUES = st.one_of(TEXT, HUGE_NUMBERS, st.integers().map(str), st.just(""))
PARAM_KEYS = st.one_of(st.sampled_from(PARAMETERS), TEXT)
QUERY_PAIRS = st.lists(st.tuples(PARAM_KEYS, PARAM_VALUES), max_size=8)
RAW_QUERY = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters="#"), max_size=60
)

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)
CREDENTIAL_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "clientId": JSON_VALUES,
        "clientSecret": JSON_VALUES,
        "title": JSON_VALUES,
        "destination": JSON_VALUES,
        "slug": JSON_VALUES,
    },
)


def _deep(depth: int, opener: bytes, closer: bytes) -> bytes:
    return opener * depth + closer * depth


BODIES = st.one_of(
    st.binary(max_size=200),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    CREDENTIAL_LIKE.map(lambda v: json.dumps(v).encode()),
    CREDENTIAL_LIKE.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8")),
    st.sampled_from(
        [
            _deep(10_000, b"[", b"]"),
            b'{"a":' * 10_000 + b"0" + b"}" * 10_000,
            _deep(30_000, b"[", b""),
            b'{"title": "\\ud800", "destination": "https://a.b", "clientId": "\\udfff"}',
            b'{"clientId": "sb_demo_client", "clientSecret": "\\u0000"}',
            b'{"title": 1e999, "destination": "https://a.b"}',
            b'{"title": -0.0, "destination": NaN}',
            b'{"title": "t", "destination": "https://a.b", "slug": "' + b"a" * 60_000 + b'"}',
            b"\xef\xbb\xbf{}",
            '{"title": "t"}'.encode("utf-16"),
            b"",
            b"null",
        ]
    ),
)
CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            None,
            "application/json",
            "application/json; charset=utf-8",
            "application/json; charset=latin-1",
            "application/merge-patch+json",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=zzz",
            "",
            ";;;",
            "application/json;;",
            "*/*",
        ]
    ),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30),
)
AUTHORIZATION = st.one_of(
    st.none(),
    st.just("valid"),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=80),
    st.builds(
        lambda t: f"Bearer eh_{t}",
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60),
    ),
)


def _headers(api: Api, authorization: str | None, content_type: str | None) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if authorization == "valid":
        headers.update(api[1])
    elif authorization is not None:
        headers["Authorization"] = authorization.encode("latin-1")
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers


# --- properties ----------------------------------------------------------------------------------


@FUZZ
@given(endpoint=st.sampled_from(ENDPOINTS), pairs=QUERY_PAIRS, authorization=AUTHORIZATION)
def test_any_query_string(
    api: Api, endpoint: tuple[str, str], pairs: list[tuple[str, str]], authorization: str | None
) -> None:
    method, path = endpoint
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
    headers = _headers(api, authorization or "valid", "application/json")
    response = api[0].request(method, f"{path}?{query}", headers=headers, content=b"{}")
    _check(response)


@FUZZ
@given(raw=RAW_QUERY)
def test_any_raw_query_string(api: Api, raw: str) -> None:
    _check(api[0].get(f"{LINKS_PATH}?{raw}", headers=api[1]))


@FUZZ
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    body=BODIES,
    content_type=CONTENT_TYPES,
    authorization=AUTHORIZATION,
)
def test_any_body_and_content_type(
    api: Api,
    endpoint: tuple[str, str],
    body: bytes,
    content_type: str | None,
    authorization: str | None,
) -> None:
    method, path = endpoint
    headers = _headers(api, authorization, content_type)
    _check(api[0].request(method, path, content=body, headers=headers))


ODD_IDS = st.one_of(
    TEXT.filter(bool).map(lambda t: quote(t, safe="")),
    st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters="#?"),
        min_size=1,
        max_size=40,
    ),
    st.sampled_from(
        [
            "..",
            "%2e%2e",
            "..%2f..%2f_emulator%2freset",
            "%00",
            "%ff%fe",
            "%",
            "%zz",
            "lnk_%2F..",
            "a" * 10_000,
            "%E2%80%AE",
            "日本語",
            "lnk_0000000000000000%00",
            "lnk_0000000000000000/",
            " ",
            "%20",
        ]
    ),
)


@FUZZ
@given(link_id=ODD_IDS, method=st.sampled_from(["GET", "POST", "DELETE", "PUT"]))
def test_odd_path_ids(api: Api, link_id: str, method: str) -> None:
    client, headers = api
    _check(client.request(method, f"{LINKS_PATH}/{link_id}", headers=headers))


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"]),
    path=st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters="#?"),
        max_size=60,
    ),
)
def test_any_method_and_path(api: Api, method: str, path: str) -> None:
    response = api[0].request(method, "/" + path.lstrip("/"), headers=api[1])
    assert response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers.get("X-Request-Id")
    if response.status_code >= 400 and method not in ("HEAD", "OPTIONS"):
        assert_envelope(response)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("offset", str(10**30)),
        ("offset", "9" * 5000),
        ("limit", str(10**30)),
        ("limit", "9" * 5000),
        ("q", "x" * 30_000),
        ("q", "\x00"),
        ("q", "%"),
        ("hasVisits", "\u200b"),
        ("sortBy", "title\x00"),
    ],
)
def test_extreme_parameter_values(api: Api, name: str, value: str) -> None:
    client, headers = api
    response = client.get(LINKS_PATH, params={name: value}, headers=headers)
    _check(response)


def test_huge_offset_is_an_empty_page(api: Api) -> None:
    response = api[0].get(LINKS_PATH, params={"offset": str(10**30)}, headers=api[1])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"] == [] and body["pagination"]["hasMore"] is False


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_deeply_nested_bodies(api: Api, method: str) -> None:
    client, headers = api
    for raw in (_deep(10_000, b"[", b"]"), _deep(10_000, b'{"a":', b"}")):
        response = client.request(
            method, LINKS_PATH, content=raw, headers={**headers, "Content-Type": "application/json"}
        )
        _check(response)
        token = client.post(TOKEN_PATH, content=raw, headers={"Content-Type": "application/json"})
        _check(token)
        assert token.status_code == 400
