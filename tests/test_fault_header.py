"""The X-Emulator-Fault request header: its grammar, the fault it gives that one request, its
refusals, CORS, and the settings that turn it off. In process (the network kinds on a socket are
in test_network_faults.py)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from conftest import (
    CONTROL,
    FROZEN_EPOCH,
    LINKS_PATH,
    TOKEN_PATH,
    assert_error,
    auth_headers,
    emulator_client,
    register_app,
    set_clock,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from emulator.errors import ApiError
from emulator.faults import parse_fault_header
from emulator.settings import Settings

HEADER = "X-Emulator-Fault"
ELSEWHERE = "http://frontend.example"


def _faulted(client: TestClient, value: str, headers: dict[str, str] | None = None) -> Any:
    return client.get(LINKS_PATH, params={"limit": 1}, headers={**(headers or {}), HEADER: value})


def _journal(client: TestClient) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = client.get(f"{CONTROL}/requests").json()["requests"]
    return entries


@pytest.mark.parametrize(
    ("value", "status", "retry_after"),
    [
        ("503", 503, None),
        ("status=502", 502, None),
        ("429", 429, "1"),
        ("429; retry-after=20", 429, "20"),
        (" 429 ;\tRetry-After = 20 ", 429, "20"),
        ("retryAfter=5; 500", 500, "5"),
        ("STATUS=404; RETRY-AFTER=3", 404, "3"),
        ("503; delay-ms=30", 503, None),
    ],
)
def test_a_status_for_this_request_alone(
    client: TestClient, value: str, status: int, retry_after: str | None
) -> None:
    headers = auth_headers(client)
    refused = _faulted(client, value, headers)

    assert_error(refused, status, "injected_fault")
    assert refused.headers.get("Retry-After") == retry_after
    assert client.get(LINKS_PATH, params={"limit": 1}, headers=headers).status_code == 200
    entry = _journal(client)[-2]
    assert entry["fault"]["source"] == "header" and entry["fault"]["status"] == status


@pytest.mark.parametrize("value", ["", "  ", "\t"])
def test_an_empty_value_asks_for_no_fault(client: TestClient, value: str) -> None:
    answered = _faulted(client, value, auth_headers(client))
    assert answered.status_code == 200
    assert _journal(client)[-1]["fault"] is None


def test_a_delay_or_a_dribble_still_answers(client: TestClient) -> None:
    headers = auth_headers(client)
    started = time.monotonic()
    assert _faulted(client, "delay-ms=100", headers).status_code == 200
    assert _faulted(client, "network=dribble; dribble-ms=100", headers).status_code == 200
    assert time.monotonic() - started >= 0.2
    faults = [entry["fault"] for entry in _journal(client)[-2:]]
    assert [(f["delayMs"], f["network"], f["dribbleMs"]) for f in faults] == [
        (100, None, None),
        (0, "dribble", 100),
    ]


def test_the_header_leaves_the_planned_faults_alone(client: TestClient) -> None:
    headers = auth_headers(client)
    planned = client.post(f"{CONTROL}/faults", json={"status": 500, "times": 1, "path": LINKS_PATH})
    assert planned.status_code == 201

    assert_error(_faulted(client, "503", headers), 503, "injected_fault")
    assert len(client.get(f"{CONTROL}/faults").json()["faults"]) == 1
    assert_error(client.get(LINKS_PATH, headers=headers), 500, "injected_fault")


def test_an_injected_429_is_the_same_by_header_as_by_the_control_api(client: TestClient) -> None:
    set_clock(client)
    register_app(client, "sb_seven", "sb_seven_secret", rate_limit=7)
    headers = auth_headers(client, "sb_seven", "sb_seven_secret")
    fault = {"status": 429, "retryAfter": 20, "times": 1, "path": LINKS_PATH}
    assert client.post(f"{CONTROL}/faults", json=fault).status_code == 201
    by_control = client.get(LINKS_PATH, params={"limit": 1}, headers=headers)
    by_header = _faulted(client, "429; retry-after=20", headers)

    def shown(response: Any) -> tuple[int, dict[str, str], bytes]:
        kept = {k: v for k, v in response.headers.items() if k not in ("x-request-id", "date")}
        return response.status_code, kept, response.content

    assert shown(by_header) == shown(by_control)
    assert by_header.headers["Retry-After"] == "20"
    assert by_header.headers["X-RateLimit-Limit"] == "7"
    assert by_header.headers["X-RateLimit-Remaining"] == "0"
    assert by_header.headers["X-RateLimit-Reset"] == str(FROZEN_EPOCH + 20)
    assert _journal(client)[-1]["retryAfter"] == 20


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("abc", "neither a status"),
        ("503, 502", "neither a status"),
        ("200", "status must be from 400 to 599"),
        ("600", "status must be from 400 to 599"),
        ("5" * 40, "status must be from 400 to 599"),
        ("503;", "empty item"),
        (";503", "empty item"),
        ("503;;retry-after=1", "empty item"),
        ("503; 502", "status is given more than once"),
        ("503; status=502", "status is given more than once"),
        ("429; retry-after=1; Retry-After=2", "retryAfter is given more than once"),
        ("retry-after=20", "retryAfter needs a status"),
        ("503; retry-after=x", "retryAfter must be a whole number"),
        ("503; retry-after=-1", "retryAfter must be a whole number"),
        ("503; retry-after=1.5", "retryAfter must be a whole number"),
        ("503; retry-after=0", "retryAfter must be from 1"),
        ("503; retry-after=", "retryAfter must be a whole number"),
        ("delay-ms=60001", "delayMs must be from 0 to 60000"),
        ("times=2", "unknown name 'times'"),
        ("path=/x; 503", "unknown name 'path'"),
        ("=503", "unknown name ''"),
        ("network=explode", "network must be one of"),
        ("network=", "network must be one of"),
        ("network=reset; 503", "sends no HTTP response"),
        ("network=truncated; dribble-ms=5", "dribbleMs goes with network 'dribble' only"),
        ("dribble-ms=5", "dribbleMs goes with network 'dribble' only"),
    ],
)
def test_a_bad_value_is_a_400_naming_the_header(client: TestClient, value: str, says: str) -> None:
    headers = auth_headers(client)
    refused = _faulted(client, value, headers)

    error = assert_error(refused, 400, "invalid_header", HEADER)
    assert error["message"].startswith(f"{HEADER}: ") and says in error["message"], error
    assert len(error["message"]) < 300
    entry = _journal(client)[-1]
    assert (entry["status"], entry["fault"]) == (400, None)


def test_the_header_sent_twice_is_refused(client: TestClient) -> None:
    refused = client.get(LINKS_PATH, headers=[(HEADER, "503"), (HEADER, "502")])
    error = assert_error(refused, 400, "invalid_header", HEADER)
    assert "once" in error["message"]


def test_non_latin_bytes_are_refused_not_a_5xx(client: TestClient) -> None:
    refused = client.get(LINKS_PATH, headers={HEADER: "503; délai=é".encode()})  # type: ignore[dict-item]
    assert_error(refused, 400, "invalid_header", HEADER)


def test_control_calls_never_take_the_header(client: TestClient) -> None:
    assert client.get(f"{CONTROL}/faults", headers={HEADER: "503"}).status_code == 200
    assert client.get(f"{CONTROL}/faults", headers={HEADER: "nonsense"}).status_code == 200


def test_a_page_elsewhere_may_send_it_and_read_the_429(client: TestClient) -> None:
    preflight = client.options(
        LINKS_PATH,
        headers={
            "Origin": ELSEWHERE,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, x-emulator-fault",
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert HEADER.lower() in preflight.headers["Access-Control-Allow-Headers"].lower()

    refused = _faulted(client, "429; retry-after=20", {"Origin": ELSEWHERE, **auth_headers(client)})
    assert refused.status_code == 429
    exposed = refused.headers["Access-Control-Expose-Headers"].lower()
    for name in ("retry-after", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"):
        assert name in exposed


@pytest.mark.parametrize(
    "turned_off",
    [Settings(request_faults=False), Settings(control=False)],
    ids=["no-request-faults", "no-control"],
)
def test_turned_off_the_header_is_ignored(turned_off: Settings) -> None:
    with emulator_client(turned_off) as client:
        body = {"clientId": "sb_demo_client", "clientSecret": "sbs_demo_secret"}
        for value in ("503", "network=reset", "nonsense;;"):
            answered = client.post(TOKEN_PATH, json=body, headers={HEADER: value})
            assert answered.status_code == 200, (value, answered.text)
        if turned_off.control:  # the fault plan still works
            planned = {"status": 503, "times": 1, "path": TOKEN_PATH}
            assert client.post(f"{CONTROL}/faults", json=planned).status_code == 201
            refused = client.post(TOKEN_PATH, json=body, headers={HEADER: "502"})
            assert_error(refused, 503, "injected_fault")
            assert _journal(client)[-1]["fault"]["source"] == "control"


# -- the grammar, fuzzed: any value is a fault or a 400 naming the header, never anything else

NAMES = ["status", "retry-after", "Retry-After", "retryAfter", "delay-ms", "network", "dribble-ms"]
ITEMS = st.one_of(
    st.integers(0, 10**20).map(str),
    st.tuples(
        st.sampled_from([*NAMES, "times", ""]),
        st.sampled_from(["", " ", "\t"]),
        st.one_of(
            st.integers(-5, 10**20).map(str),
            st.sampled_from(["reset", "EMPTY", "garbage", "truncated", "dribble", "x", ""]),
        ),
    ).map(lambda item: f"{item[0]}{item[1]}={item[1]}{item[2]}"),
    st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=12),
)
VALUES = st.one_of(
    st.lists(ITEMS, max_size=4).map("; ".join),
    st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_any_value_is_a_fault_or_a_400_naming_the_header(value: str) -> None:
    try:
        fault = parse_fault_header(value)
    except ApiError as error:
        assert (error.status, error.code, error.field) == (400, "invalid_header", HEADER)
        assert error.message.startswith(f"{HEADER}: ")
        return
    if fault is not None:
        assert fault.times == 1 and fault.source == "header"
        assert fault.status is not None or fault.network is not None or fault.delay_ms > 0
