"""The control API under /_emulator/: health, reset, clock, applications, journal and faults."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import (
    CONTROL,
    FROZEN_EPOCH,
    FROZEN_NOW,
    JSON,
    LINKS_PATH,
    SANDBOX_CLIENT_ID,
    SANDBOX_SECRET,
    STAMP_PATTERN,
    TOKEN_PATH,
    advance_clock,
    assert_error,
    auth_headers,
    emulator_client,
    register_app,
    reset,
    set_clock,
    token_for,
)
from starlette.testclient import TestClient

from emulator.settings import Settings

ORIGIN = "http://localhost:3000"
CONTROL_CALLS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", f"{CONTROL}/reset", None),
    ("GET", f"{CONTROL}/clock", None),
    ("POST", f"{CONTROL}/clock", {"advanceSeconds": 1}),
    ("GET", f"{CONTROL}/applications", None),
    ("POST", f"{CONTROL}/applications", {"clientId": "x_app", "clientSecret": "x_secret"}),
    ("GET", f"{CONTROL}/requests", None),
    ("DELETE", f"{CONTROL}/requests", None),
    ("GET", f"{CONTROL}/faults", None),
    ("POST", f"{CONTROL}/faults", {"status": 503, "times": 1, "path": "/nowhere"}),
    ("DELETE", f"{CONTROL}/faults", None),
]


def _journal(client: TestClient) -> list[dict[str, Any]]:
    response = client.get(f"{CONTROL}/requests")
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["requests"]
    return entries


def _add_fault(client: TestClient, **fault: Any) -> dict[str, Any]:
    response = client.post(f"{CONTROL}/faults", json=fault)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _wall_epoch() -> float:
    return datetime.now(UTC).timestamp()


# --- health and reset ----------------------------------------------------------------------------


def test_health(client: TestClient) -> None:
    response = client.get(f"{CONTROL}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers.get("X-Request-Id")


def test_reset_returns_everything_to_the_start(client: TestClient) -> None:
    set_clock(client, FROZEN_NOW)
    sandbox_headers = auth_headers(client)
    for _ in range(15):
        client.get(LINKS_PATH, params={"limit": 1}, headers=sandbox_headers)
    assert client.get(LINKS_PATH, headers=sandbox_headers).status_code == 429
    register_app(client, "temp_app", "temp_secret")
    live_headers = auth_headers(client, "lv_demo_personal", "lvs_demo_personal_secret")
    created = client.post(
        LINKS_PATH,
        json={"title": "Live one", "destination": "https://example.com", "slug": "reset-me"},
        headers=live_headers,
    )
    assert created.status_code == 201, created.text
    _add_fault(client, status=503, times=5, path="/nowhere")
    assert _journal(client)

    response = reset(client)
    assert response.status_code == 200, response.text

    assert _journal(client) == []
    assert client.get(f"{CONTROL}/faults").json()["faults"] == []
    clock = client.get(f"{CONTROL}/clock").json()
    assert clock["frozen"] is False
    assert abs(clock["epoch"] - _wall_epoch()) < 120  # real time again, not 2026-01-01
    assert_error(client.get(LINKS_PATH, headers=sandbox_headers), 401, "invalid_token")
    assert_error(
        client.post(TOKEN_PATH, json={"clientId": "temp_app", "clientSecret": "temp_secret"}),
        401,
        "invalid_client",
    )
    fresh = auth_headers(client)
    window = client.get(LINKS_PATH, params={"limit": 1}, headers=fresh)
    assert window.status_code == 200
    assert window.headers["X-RateLimit-Remaining"] == "14"
    live_again = auth_headers(client, "lv_demo_personal", "lvs_demo_personal_secret")
    gone = client.get(f"{LINKS_PATH}/{created.json()['id']}", headers=live_again)
    assert_error(gone, 404, "link_not_found")
    listed = client.get(LINKS_PATH, headers=live_again).json()
    assert listed["pagination"]["total"] == 0


def test_reset_keeps_the_shipped_applications(client: TestClient) -> None:
    reset(client)
    assert token_for(client)
    assert token_for(client, "lv_demo_personal", "lvs_demo_personal_secret")


# --- clock ---------------------------------------------------------------------------------------


def test_clock_read(client: TestClient) -> None:
    body = client.get(f"{CONTROL}/clock").json()
    assert {"now", "epoch", "frozen"} <= set(body)
    assert body["frozen"] is False
    assert abs(body["epoch"] - _wall_epoch()) < 120


def test_clock_set_freezes_there(client: TestClient) -> None:
    body = set_clock(client, FROZEN_NOW)
    assert body["now"] == FROZEN_NOW and body["epoch"] == FROZEN_EPOCH and body["frozen"] is True
    again = client.get(f"{CONTROL}/clock").json()
    assert again["now"] == FROZEN_NOW and again["epoch"] == FROZEN_EPOCH


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2026-01-01T00:00:00+00:00", FROZEN_NOW),
        ("2026-01-01T01:00:00+01:00", FROZEN_NOW),
        ("2026-01-01T00:00:00", FROZEN_NOW),
        ("2030-12-31T23:59:59Z", "2030-12-31T23:59:59Z"),
    ],
)
def test_clock_set_accepts_iso_forms(client: TestClient, given: str, expected: str) -> None:
    assert set_clock(client, given)["now"] == expected


def test_clock_advance(client: TestClient) -> None:
    set_clock(client, FROZEN_NOW)
    body = advance_clock(client, 61)
    assert body["now"] == "2026-01-01T00:01:01Z"
    assert body["epoch"] == FROZEN_EPOCH + 61
    assert body["frozen"] is True
    assert advance_clock(client, 86400 * 365 - 61)["now"] == "2027-01-01T00:00:00Z"


def test_clock_takes_now_or_advance_not_both(client: TestClient) -> None:
    body = {"now": FROZEN_NOW, "advanceSeconds": 5}
    assert_error(client.post(f"{CONTROL}/clock", json=body), 422, "validation_failed", "now")


def test_clock_never_advances_backwards(client: TestClient) -> None:
    set_clock(client, FROZEN_NOW)
    response = client.post(f"{CONTROL}/clock", json={"advanceSeconds": -10})
    error = assert_error(response, 422, "validation_failed", "advanceSeconds")
    assert "set it to an earlier instant" in error["message"]
    assert client.get(f"{CONTROL}/clock").json()["now"] == FROZEN_NOW
    assert set_clock(client, "2025-12-31T23:59:50Z")["now"] == "2025-12-31T23:59:50Z"


def test_clock_drives_api_timestamps(client: TestClient) -> None:
    set_clock(client, "2031-05-05T05:05:05Z")
    headers = {**auth_headers(client)}
    created = client.post(
        LINKS_PATH, json={"title": "t", "destination": "https://a.example"}, headers=headers
    ).json()
    assert created["createdAt"] == "2031-05-05T05:05:05Z"
    token = client.post(
        TOKEN_PATH, json={"clientId": SANDBOX_CLIENT_ID, "clientSecret": SANDBOX_SECRET}
    ).json()
    assert token["expiresAt"] == "2031-05-05T06:05:05Z"


def test_unfreezing_lets_time_run_from_there(client: TestClient) -> None:
    set_clock(client, FROZEN_NOW)
    body = client.post(f"{CONTROL}/clock", json={"frozen": False}).json()
    assert body["frozen"] is False
    assert abs(body["epoch"] - FROZEN_EPOCH) < 60


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"now": 5},
        {"now": None},
        {"now": "garbage"},
        {"now": ""},
        {"now": "2026-13-01T00:00:00Z"},
        {"now": "0001-01-01T00:00:00Z"},
        {"now": "9999-12-31T23:59:59Z"},
        {"advanceSeconds": "x"},
        {"advanceSeconds": True},
        {"advanceSeconds": None},
        {"advanceSeconds": [1]},
        {"advanceSeconds": 1e308},
        {"advanceSeconds": -1e308},
        {"advanceSeconds": 10**40},
        {"frozen": "yes"},
        {"unknown": 1},
        [],
        "now",
        7,
    ],
    ids=repr,
)
def test_bad_clock_bodies_are_4xx(client: TestClient, body: Any) -> None:
    before = client.get(f"{CONTROL}/clock").json()
    response = client.post(f"{CONTROL}/clock", json=body)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["code"] in ("invalid_request", "validation_failed")
    after = client.get(f"{CONTROL}/clock").json()
    assert after["frozen"] == before["frozen"]
    assert abs(after["epoch"] - before["epoch"]) < 60


@pytest.mark.parametrize(
    "raw", [b"{", b"", b'{"advanceSeconds": NaN}', b'{"advanceSeconds": Infinity}'], ids=repr
)
def test_bad_clock_json_is_4xx(client: TestClient, raw: bytes) -> None:
    response = client.post(
        f"{CONTROL}/clock", content=raw, headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500, response.text


def test_clock_with_non_json_content_type_is_415(client: TestClient) -> None:
    response = client.post(
        f"{CONTROL}/clock", content=b'{"advanceSeconds": 1}', headers={"Content-Type": "text/plain"}
    )
    assert_error(response, 415, "unsupported_media_type")


# --- applications --------------------------------------------------------------------------------


def test_register_application_then_its_token_works(client: TestClient) -> None:
    body = register_app(client, "my_app", "my_secret", rate_limit=2)
    assert body["clientId"] == "my_app"
    assert body["environment"] == "sandbox"
    assert body["rateLimitPerMinute"] == 2
    assert "my_secret" not in str(body)
    set_clock(client, FROZEN_NOW)
    headers = auth_headers(client, "my_app", "my_secret")
    first = client.get(LINKS_PATH, params={"limit": 1}, headers=headers)
    assert first.status_code == 200
    assert first.headers["X-RateLimit-Limit"] == "2"
    assert client.get(LINKS_PATH, params={"limit": 1}, headers=headers).status_code == 200
    assert_error(client.get(LINKS_PATH, headers=headers), 429, "rate_limited")
    listed = client.get(f"{CONTROL}/applications").json()
    assert "my_app" in [app["clientId"] for app in listed["applications"]]
    assert "my_secret" not in client.get(f"{CONTROL}/applications").text


def test_register_live_application_in_a_new_workspace(client: TestClient) -> None:
    body = register_app(
        client, "live_new", "live_new_secret", environment="live", workspace_id="ws_x"
    )
    assert body["environment"] == "live" and body["workspaceId"] == "ws_x"
    token = client.post(
        TOKEN_PATH, json={"clientId": "live_new", "clientSecret": "live_new_secret"}
    )
    assert token.status_code == 200 and token.json()["environment"] == "live"
    headers = {"Authorization": f"Bearer {token.json()['accessToken']}"}
    listed = client.get(LINKS_PATH, headers=headers)
    assert listed.status_code == 200 and listed.json()["pagination"]["total"] == 0


def test_registering_an_existing_client_id_is_a_conflict(client: TestClient) -> None:
    register_app(client, "twice", "first_secret")
    for client_id in ("twice", "sb_demo_client"):
        body = {"clientId": client_id, "clientSecret": "other_secret"}
        response = client.post(f"{CONTROL}/applications", json=body)
        error = assert_error(response, 409, "application_exists", "clientId")
        assert repr(client_id) in error["message"] and "replace" in error["message"]
    assert token_for(client, "twice", "first_secret")
    assert token_for(client)


def test_a_sandbox_application_takes_no_workspace_settings(client: TestClient) -> None:
    body = {"clientId": "sb_q", "clientSecret": "s", "linkQuota": 5}

    error = assert_error(
        client.post(f"{CONTROL}/applications", json=body), 422, "validation_failed", "linkQuota"
    )

    assert error["message"] == (
        "linkQuota is for live applications: sandbox applications share the sandbox workspace."
    )


def test_registering_again_with_replace_replaces_the_secret(client: TestClient) -> None:
    register_app(client, "twice", "first_secret")
    body = {"clientId": "twice", "clientSecret": "second_secret", "replace": True}
    assert client.post(f"{CONTROL}/applications", json=body).status_code == 201
    assert_error(
        client.post(TOKEN_PATH, json={"clientId": "twice", "clientSecret": "first_secret"}),
        401,
        "invalid_client",
    )
    assert token_for(client, "twice", "second_secret")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"clientId": "a"},
        {"clientSecret": "b"},
        {"clientId": "", "clientSecret": "b"},
        {"clientId": 1, "clientSecret": "b"},
        {"clientId": "a", "clientSecret": ["b"]},
        {"clientId": "a", "clientSecret": "b", "environment": "staging"},
        {"clientId": "a", "clientSecret": "b", "environment": "live"},
        {"clientId": "a", "clientSecret": "b", "rateLimitPerMinute": 0},
        {"clientId": "a", "clientSecret": "b", "rateLimitPerMinute": -5},
        {"clientId": "a", "clientSecret": "b", "rateLimitPerMinute": 1.5},
        {"clientId": "a", "clientSecret": "b", "rateLimitPerMinute": "100"},
        {"clientId": "a", "clientSecret": "b", "rateLimitPerMinute": True},
        {"clientId": "a", "clientSecret": "b", "rateLimitPerMinute": 10**30},
        {"clientId": "a", "clientSecret": "b", "linkQuota": 5},
        {"clientId": "a", "clientSecret": "b", "workspaceKind": "company"},
        {"clientId": "a", "clientSecret": "b", "apiAccess": False},
        {"clientId": "a", "clientSecret": "b", "replace": "yes"},
        [],
        "a",
    ],
    ids=repr,
)
def test_bad_application_bodies_are_4xx(client: TestClient, body: Any) -> None:
    response = client.post(f"{CONTROL}/applications", json=body)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["code"] in ("invalid_request", "validation_failed")
    assert_error(
        client.post(TOKEN_PATH, json={"clientId": "a", "clientSecret": "b"}), 401, "invalid_client"
    )


# --- journal -------------------------------------------------------------------------------------


def test_journal_lists_api_requests_oldest_first(client: TestClient) -> None:
    set_clock(client, FROZEN_NOW)
    headers = auth_headers(client)
    client.get(LINKS_PATH, params={"q": "launch", "limit": "5"}, headers=headers)
    advance_clock(client, 7)
    client.get(f"{LINKS_PATH}/nope", headers=headers)
    client.post(LINKS_PATH, json={"title": "t", "destination": "https://a.b"}, headers=headers)
    client.get(LINKS_PATH)  # 401, no client id
    client.get(f"{CONTROL}/health")  # the emulator's own calls are not journaled
    entries = _journal(client)
    summary = [(e["method"], e["path"], e["status"]) for e in entries]
    assert summary == [
        ("POST", TOKEN_PATH, 200),
        ("GET", LINKS_PATH, 200),
        ("GET", f"{LINKS_PATH}/nope", 404),
        ("POST", LINKS_PATH, 201),
        ("GET", LINKS_PATH, 401),
    ]
    for entry in entries:
        assert {"method", "path", "query", "status", "clientId", "time"} <= set(entry)
        assert entry["time"] is not None
    assert entries[0]["time"] == FROZEN_NOW
    assert entries[1]["query"] == "q=launch&limit=5"
    assert entries[1]["clientId"] == SANDBOX_CLIENT_ID
    assert entries[2]["time"] == "2026-01-01T00:00:07Z"
    assert entries[2]["query"] == ""
    assert entries[4]["clientId"] is None
    for entry in entries:
        assert entry["time"] >= FROZEN_NOW


def test_journal_records_429s_and_faults(client: TestClient) -> None:
    set_clock(client, FROZEN_NOW)
    headers = auth_headers(client)
    for _ in range(16):
        client.get(LINKS_PATH, params={"limit": 1}, headers=headers)
    _add_fault(client, status=502, times=1)
    client.get(LINKS_PATH, headers=headers)
    statuses = [e["status"] for e in _journal(client)]
    assert statuses == [200] + [200] * 15 + [429, 502]


def test_journal_is_bounded() -> None:
    with emulator_client(Settings(journal_size=5)) as client:
        for number in range(8):
            client.get(LINKS_PATH, params={"n": str(number)})
        entries = _journal(client)
        assert [e["query"] for e in entries] == [f"n={n}" for n in range(3, 8)]


def test_journal_delete_clears_it(client: TestClient) -> None:
    token_for(client)
    assert _journal(client)
    response = client.delete(f"{CONTROL}/requests", headers=JSON)
    assert response.status_code in (200, 204)
    assert _journal(client) == []
    client.get(LINKS_PATH)
    assert len(_journal(client)) == 1


# --- faults --------------------------------------------------------------------------------------


def test_fault_fails_the_next_n_requests_then_normal(client: TestClient) -> None:
    headers = auth_headers(client)
    fault = _add_fault(client, status=503, times=2)
    assert fault["status"] == 503 and fault["times"] == 2
    for _ in range(2):
        response = client.get(LINKS_PATH, headers=headers)
        assert_error(response, 503, "injected_fault")
        assert response.headers.get("X-Request-Id")
    assert client.get(LINKS_PATH, params={"limit": 1}, headers=headers).status_code == 200
    assert client.get(f"{CONTROL}/faults").json()["faults"] == []


def test_fault_counts_down_across_endpoints(client: TestClient) -> None:
    headers = auth_headers(client)
    _add_fault(client, status=500, times=3)
    assert_error(client.post(TOKEN_PATH, json={}), 500, "injected_fault")
    assert_error(client.get(LINKS_PATH, headers=headers), 500, "injected_fault")
    pending = client.get(f"{CONTROL}/faults").json()["faults"]
    assert [f["times"] for f in pending] == [1]
    assert_error(client.get(f"{LINKS_PATH}/x", headers=headers), 500, "injected_fault")
    assert client.get(LINKS_PATH, params={"limit": 1}, headers=headers).status_code == 200


def test_control_calls_do_not_consume_faults(client: TestClient) -> None:
    _add_fault(client, status=503, times=1)
    assert client.get(f"{CONTROL}/clock").status_code == 200
    assert client.get(f"{CONTROL}/health").status_code == 200
    assert len(client.get(f"{CONTROL}/faults").json()["faults"]) == 1


def test_fault_method_filter(client: TestClient) -> None:
    headers = auth_headers(client)
    _add_fault(client, status=500, times=1, method="post")
    assert client.get(LINKS_PATH, params={"limit": 1}, headers=headers).status_code == 200
    response = client.post(
        LINKS_PATH, json={"title": "t", "destination": "https://a.b"}, headers=headers
    )
    assert_error(response, 500, "injected_fault")
    assert (
        client.post(
            LINKS_PATH, json={"title": "t", "destination": "https://a.b"}, headers=headers
        ).status_code
        == 201
    )


def test_fault_path_filter(client: TestClient) -> None:
    headers = auth_headers(client)
    _add_fault(client, status=429, times=1, path=TOKEN_PATH)
    assert client.get(LINKS_PATH, params={"limit": 1}, headers=headers).status_code == 200
    assert_error(
        client.post(
            TOKEN_PATH, json={"clientId": SANDBOX_CLIENT_ID, "clientSecret": SANDBOX_SECRET}
        ),
        429,
        "injected_fault",
    )
    assert token_for(client)


def test_fault_path_pattern_for_detail(client: TestClient) -> None:
    headers = auth_headers(client)
    _add_fault(client, status=504, times=1, path=f"{LINKS_PATH}/*", method="GET")
    assert client.get(LINKS_PATH, params={"limit": 1}, headers=headers).status_code == 200
    assert_error(client.get(f"{LINKS_PATH}/anything", headers=headers), 504, "injected_fault")


def test_fault_delay_still_succeeds(client: TestClient) -> None:
    headers = auth_headers(client)
    fault = _add_fault(client, delayMs=50, times=1)
    assert fault["delayMs"] == 50
    response = client.get(LINKS_PATH, params={"limit": 1}, headers=headers)
    assert response.status_code == 200, response.text
    assert client.get(f"{CONTROL}/faults").json()["faults"] == []


def test_fault_with_delay_and_status(client: TestClient) -> None:
    headers = auth_headers(client)
    _add_fault(client, delayMs=20, status=503, times=1)
    assert_error(client.get(LINKS_PATH, headers=headers), 503, "injected_fault")


def test_faulted_requests_are_not_counted_against_the_rate_limit(client: TestClient) -> None:
    set_clock(client, FROZEN_NOW)
    headers = auth_headers(client)
    _add_fault(client, status=503, times=5)
    for _ in range(5):
        assert client.get(LINKS_PATH, headers=headers).status_code == 503
    first = client.get(LINKS_PATH, params={"limit": 1}, headers=headers)
    assert first.headers["X-RateLimit-Remaining"] == "14"


def test_delete_faults_clears_them(client: TestClient) -> None:
    headers = auth_headers(client)
    _add_fault(client, status=503, times=10)
    _add_fault(client, status=500, times=10, method="POST")
    assert len(client.get(f"{CONTROL}/faults").json()["faults"]) == 2
    assert client.delete(f"{CONTROL}/faults", headers=JSON).status_code in (200, 204)
    assert client.get(f"{CONTROL}/faults").json()["faults"] == []
    assert client.get(LINKS_PATH, params={"limit": 1}, headers=headers).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"times": 1},
        {"status": 503},
        {"status": 503, "times": 0},
        {"status": 503, "times": -1},
        {"status": 503, "times": "2"},
        {"status": 503, "times": 1.5},
        {"status": 200, "times": 1},
        {"status": 600, "times": 1},
        {"status": "503", "times": 1},
        {"status": True, "times": 1},
        {"delayMs": -1, "times": 1},
        {"delayMs": 10**9, "times": 1},
        {"delayMs": "50", "times": 1},
        {"status": 503, "times": 1, "method": 5},
        {"status": 503, "times": 1, "path": ["/"]},
        {"status": 503, "times": 10**30},
        {"status": 429, "times": 1, "retryAfter": 0},
        {"status": 429, "times": 1, "retryAfter": "5"},
        {"status": 429, "times": 1, "retryAfter": 10**6},
        {"delayMs": 10, "times": 1, "retryAfter": 5},
        {"status": 503, "times": 1, "method": "FETCH"},
        [],
        "fault",
    ],
    ids=repr,
)
def test_bad_fault_bodies_are_4xx(client: TestClient, body: Any) -> None:
    response = client.post(f"{CONTROL}/faults", json=body)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["code"] in ("invalid_request", "validation_failed")
    assert client.get(f"{CONTROL}/faults").json()["faults"] == []


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("api/api-applications/token", "must start with '/'"),
        ("*/links", "must start with '/'"),
        (f"{LINKS_PATH}?limit=1", "must not hold '?'"),
        (f"{LINKS_PATH}*?", "must not hold '?'"),
    ],
)
def test_a_fault_path_that_could_never_match_is_refused(
    client: TestClient, path: str, says: str
) -> None:
    response = client.post(f"{CONTROL}/faults", json={"status": 503, "times": 1, "path": path})

    error = assert_error(response, 422, "validation_failed", "path")
    assert says in error["message"]
    assert client.get(f"{CONTROL}/faults").json()["faults"] == []


def test_a_fault_lists_how_often_it_fired(client: TestClient) -> None:
    _add_fault(client, status=503, times=3, path=TOKEN_PATH)
    client.post(TOKEN_PATH, json={})

    assert client.get(f"{CONTROL}/faults").json()["faults"] == [
        {
            "method": None,
            "path": TOKEN_PATH,
            "status": 503,
            "delayMs": 0,
            "retryAfter": None,
            "network": None,
            "dribbleMs": None,
            "times": 2,
            "fired": 1,
        }
    ]


def test_an_injected_429_says_when_to_retry_and_whose_window(client: TestClient) -> None:
    set_clock(client, FROZEN_NOW)
    register_app(client, "sb_limited", "sb_limited_secret", rate_limit=7)
    headers = auth_headers(client, "sb_limited", "sb_limited_secret")
    assert client.get(LINKS_PATH, params={"limit": 1}, headers=headers).status_code == 200
    fault = _add_fault(client, status=429, times=1, path=LINKS_PATH, retryAfter=30)
    assert fault["retryAfter"] == 30

    refused = client.get(LINKS_PATH, params={"limit": 1}, headers=headers)

    assert_error(refused, 429, "injected_fault")
    assert refused.headers["Retry-After"] == "30"
    assert refused.headers["X-RateLimit-Limit"] == "7"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.headers["X-RateLimit-Reset"] == str(FROZEN_EPOCH + 30)
    assert _journal(client)[-1]["retryAfter"] == 30
    # The window itself is untouched: the injected 429 was not counted.
    after = client.get(LINKS_PATH, params={"limit": 1}, headers=headers)
    assert after.headers["X-RateLimit-Remaining"] == "5"


def test_an_injected_429_has_a_retry_after_even_unasked(client: TestClient) -> None:
    headers = auth_headers(client)
    _add_fault(client, status=429, times=1)

    refused = client.get(LINKS_PATH, headers=headers)

    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["X-RateLimit-Limit"] == "15"


def test_an_injected_429_without_a_good_token_has_no_window(client: TestClient) -> None:
    _add_fault(client, status=429, times=3, retryAfter=9)
    for headers in ({}, {"Authorization": "Bearer eh_forged.token"}):
        refused = client.get(LINKS_PATH, headers=headers)
        assert refused.headers["Retry-After"] == "9"
        assert not [h for h in refused.headers if h.lower().startswith("x-ratelimit")]
    token = client.post(TOKEN_PATH, json={"clientId": "x", "clientSecret": "y"})
    assert (token.status_code, token.headers["Retry-After"]) == (429, "9")


def test_retry_after_goes_with_other_statuses_too(client: TestClient) -> None:
    headers = auth_headers(client)
    _add_fault(client, status=503, times=1, retryAfter=120)

    refused = client.get(LINKS_PATH, headers=headers)

    assert_error(refused, 503, "injected_fault")
    assert refused.headers["Retry-After"] == "120"
    assert "X-RateLimit-Limit" not in refused.headers


# --- faults seen from a browser ------------------------------------------------------------------


def test_injected_fault_carries_cors_headers(client: TestClient) -> None:
    """A browser can only read a 503 (rather than a network error) if it carries CORS headers."""
    headers = {**auth_headers(client), "Origin": ORIGIN}
    _add_fault(client, status=503, times=1)
    response = client.get(LINKS_PATH, headers=headers)
    assert_error(response, 503, "injected_fault")
    assert response.headers.get("Access-Control-Allow-Origin") in ("*", ORIGIN), response.headers


def test_preflight_does_not_consume_a_fault(client: TestClient) -> None:
    """A browser preflights a call with Authorization; the fault is for the call itself."""
    headers = {**auth_headers(client), "Origin": ORIGIN}
    _add_fault(client, status=503, times=1)
    preflight = client.options(
        LINKS_PATH,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code in (200, 204), preflight.text
    assert preflight.headers.get("Access-Control-Allow-Origin") in ("*", ORIGIN)
    assert_error(client.get(LINKS_PATH, headers=headers), 503, "injected_fault")


# --- control switched off, or behind a token -----------------------------------------------------


@pytest.fixture
def no_control() -> Iterator[TestClient]:
    with emulator_client(Settings(control=False)) as client:
        yield client


@pytest.mark.parametrize(("method", "path", "body"), CONTROL_CALLS)
def test_control_off_is_404(
    no_control: TestClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = no_control.request(method, path, json=body, headers=JSON)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"


def test_control_off_keeps_health_and_the_api(no_control: TestClient) -> None:
    assert no_control.get(f"{CONTROL}/health").json() == {"status": "ok"}
    headers = auth_headers(no_control)
    assert no_control.get(LINKS_PATH, params={"limit": 1}, headers=headers).status_code == 200


@pytest.fixture
def guarded() -> Iterator[TestClient]:
    with emulator_client(Settings(control_token="t0k")) as client:
        yield client


@pytest.mark.parametrize(("method", "path", "body"), CONTROL_CALLS)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", "Bearer t0k0", "Bearer ", "t0k", "Basic t0k"]
)
def test_control_token_required(
    guarded: TestClient,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    authorization: str | None,
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = guarded.request(method, path, json=body, headers={**JSON, **headers})
    assert_error(response, 401, "control_unauthorized")


@pytest.mark.parametrize(("method", "path", "body"), CONTROL_CALLS)
def test_control_token_accepted(
    guarded: TestClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = guarded.request(
        method, path, json=body, headers={**JSON, "Authorization": "Bearer t0k"}
    )
    assert response.status_code < 300, response.text


def test_control_token_leaves_health_open(guarded: TestClient) -> None:
    assert guarded.get(f"{CONTROL}/health").status_code == 200
    assert (
        guarded.get(f"{CONTROL}/health", headers={"Authorization": "Bearer wrong"}).status_code
        == 200
    )


def test_control_token_is_not_an_api_token(guarded: TestClient) -> None:
    assert_error(
        guarded.get(LINKS_PATH, headers={"Authorization": "Bearer t0k"}), 401, "invalid_token"
    )


def test_journal_times_are_timestamps(client: TestClient) -> None:
    token_for(client)
    assert all(re.fullmatch(STAMP_PATTERN, e["time"]) for e in _journal(client))
