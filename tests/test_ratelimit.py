"""Rate limits: a sliding 60-second window per application on the emulator's clock.

Every test freezes the clock first and moves it through the control API; nothing sleeps.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import (
    FROZEN_EPOCH,
    LINKS_PATH,
    SANDBOX_LIMIT,
    TOKEN_PATH,
    advance_clock,
    assert_error,
    auth_headers,
    bearer,
    register_app,
    reset,
)
from starlette.testclient import TestClient

CREATE_BODY = {"title": "Rate me", "destination": "https://example.com/rate"}


def _call(client: TestClient, headers: dict[str, str], kind: int, link_id: str) -> Any:
    """Cycle through the three counted endpoints: list, detail, create."""
    if kind % 3 == 0:
        return client.get(LINKS_PATH, params={"limit": 1}, headers=headers)
    if kind % 3 == 1:
        return client.get(f"{LINKS_PATH}/{link_id}", headers=headers)
    return client.post(LINKS_PATH, json=CREATE_BODY, headers=headers)


def _sample_id(client: TestClient) -> str:
    """A sample link id, read with a separate high-limit app so no window is touched."""
    register_app(client, "id_reader", "id_reader_secret")
    response = client.get(
        LINKS_PATH,
        params={"limit": 1},
        headers=auth_headers(client, "id_reader", "id_reader_secret"),
    )
    link_id: str = response.json()["data"][0]["id"]
    return link_id


def _spend(client: TestClient, headers: dict[str, str], count: int) -> list[Any]:
    responses = [client.get(LINKS_PATH, params={"limit": 1}, headers=headers) for _ in range(count)]
    assert all(r.status_code == 200 for r in responses), [r.status_code for r in responses]
    return responses


def _assert_limited(response: Any, limit: int = SANDBOX_LIMIT) -> int:
    assert_error(response, 429, "rate_limited")
    assert response.headers["X-RateLimit-Limit"] == str(limit)
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["X-RateLimit-Reset"]) > 0
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    return retry_after


def test_fifteen_calls_count_down_then_429(frozen_client: TestClient) -> None:
    client = frozen_client
    link_id = _sample_id(client)
    headers = auth_headers(client)
    remaining = []
    for kind in range(SANDBOX_LIMIT):
        response = _call(client, headers, kind, link_id)
        assert response.status_code in (200, 201), response.text
        assert response.headers["X-RateLimit-Limit"] == "15"
        assert response.headers["X-RateLimit-Reset"] == str(FROZEN_EPOCH + 60)
        remaining.append(int(response.headers["X-RateLimit-Remaining"]))
    assert remaining == list(range(14, -1, -1))
    for kind in range(3):
        limited = _call(client, headers, kind, link_id)
        assert _assert_limited(limited) == 60
        assert limited.headers["X-RateLimit-Reset"] == str(FROZEN_EPOCH + 60)


def test_token_exchange_and_401s_are_not_counted(frozen_client: TestClient) -> None:
    client = frozen_client
    headers = auth_headers(client)
    for _ in range(20):
        assert (
            client.post(
                TOKEN_PATH, json={"clientId": "sb_demo_client", "clientSecret": "sbs_demo_secret"}
            ).status_code
            == 200
        )
        assert (
            client.post(
                TOKEN_PATH, json={"clientId": "sb_demo_client", "clientSecret": "wrong"}
            ).status_code
            == 401
        )
        assert client.get(LINKS_PATH).status_code == 401
        assert client.get(LINKS_PATH, headers=bearer("forged")).status_code == 401
    responses = _spend(client, headers, SANDBOX_LIMIT)
    assert responses[0].headers["X-RateLimit-Remaining"] == "14"
    _assert_limited(client.get(LINKS_PATH, headers=headers))
    # Exchanging a token still works while the links endpoints are limited.
    assert (
        client.post(
            TOKEN_PATH, json={"clientId": "sb_demo_client", "clientSecret": "sbs_demo_secret"}
        ).status_code
        == 200
    )


def test_expired_token_calls_are_not_counted(frozen_client: TestClient) -> None:
    client = frozen_client
    old = auth_headers(client)
    advance_clock(client, 3600)
    for _ in range(20):
        assert_error(client.get(LINKS_PATH, headers=old), 401, "token_expired")
    _spend(client, auth_headers(client), SANDBOX_LIMIT)


def test_429s_are_not_counted(frozen_client: TestClient) -> None:
    client = frozen_client
    headers = auth_headers(client)
    _spend(client, headers, SANDBOX_LIMIT)
    advance_clock(client, 30)
    for _ in range(10):
        assert _assert_limited(client.get(LINKS_PATH, headers=headers)) == 30
    advance_clock(client, 30)
    # Only the 15 calls at t counted; all left the window at t+60, the 429s at t+30 did not count.
    responses = _spend(client, headers, SANDBOX_LIMIT)
    assert responses[0].headers["X-RateLimit-Remaining"] == "14"
    _assert_limited(client.get(LINKS_PATH, headers=headers))


def test_advancing_sixty_seconds_restores_the_window(frozen_client: TestClient) -> None:
    client = frozen_client
    headers = auth_headers(client)
    _spend(client, headers, SANDBOX_LIMIT)
    advance_clock(client, 59)
    assert _assert_limited(client.get(LINKS_PATH, headers=headers)) == 1
    advance_clock(client, 1)
    responses = _spend(client, headers, SANDBOX_LIMIT)
    assert [r.headers["X-RateLimit-Remaining"] for r in responses] == [
        str(n) for n in range(14, -1, -1)
    ]
    assert responses[0].headers["X-RateLimit-Reset"] == str(FROZEN_EPOCH + 120)


def test_window_slides_one_call_at_a_time(frozen_client: TestClient) -> None:
    client = frozen_client
    headers = auth_headers(client)
    _spend(client, headers, 5)  # at t
    advance_clock(client, 30)
    later = _spend(client, headers, 10)  # at t+30
    assert later[-1].headers["X-RateLimit-Remaining"] == "0"
    # The oldest counted call (at t) leaves the window at t+60.
    assert later[-1].headers["X-RateLimit-Reset"] == str(FROZEN_EPOCH + 60)
    assert _assert_limited(client.get(LINKS_PATH, headers=headers)) == 30
    advance_clock(client, 29)
    assert _assert_limited(client.get(LINKS_PATH, headers=headers)) == 1
    advance_clock(client, 1)  # t+60: exactly the 5 calls of t are free
    freed = _spend(client, headers, 5)
    assert [r.headers["X-RateLimit-Remaining"] for r in freed] == ["4", "3", "2", "1", "0"]
    # Now the oldest counted call is from t+30: it leaves at t+90.
    assert freed[-1].headers["X-RateLimit-Reset"] == str(FROZEN_EPOCH + 90)
    limited = client.get(LINKS_PATH, headers=headers)
    assert _assert_limited(limited) == 30
    assert limited.headers["X-RateLimit-Reset"] == str(FROZEN_EPOCH + 90)
    advance_clock(client, 30)  # t+90: the 10 calls of t+30 are free
    assert len(_spend(client, headers, 10)) == 10
    _assert_limited(client.get(LINKS_PATH, headers=headers))


def test_calls_spread_one_per_four_seconds_free_one_by_one(frozen_client: TestClient) -> None:
    client = frozen_client
    headers = auth_headers(client)
    for step in range(SANDBOX_LIMIT):
        response = client.get(LINKS_PATH, params={"limit": 1}, headers=headers)
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Reset"] == str(FROZEN_EPOCH + 60)
        if step < SANDBOX_LIMIT - 1:
            advance_clock(client, 4)
    # At t+56 the window is full; at t+60 only the first call has left it.
    assert _assert_limited(client.get(LINKS_PATH, headers=headers)) == 4
    advance_clock(client, 4)
    ok = client.get(LINKS_PATH, params={"limit": 1}, headers=headers)
    assert ok.status_code == 200
    assert ok.headers["X-RateLimit-Remaining"] == "0"
    assert ok.headers["X-RateLimit-Reset"] == str(FROZEN_EPOCH + 64)
    _assert_limited(client.get(LINKS_PATH, headers=headers))


def test_reset_header_is_when_the_oldest_call_leaves(frozen_client: TestClient) -> None:
    client = frozen_client
    headers = auth_headers(client)
    first = client.get(LINKS_PATH, params={"limit": 1}, headers=headers)
    assert first.headers["X-RateLimit-Reset"] == str(FROZEN_EPOCH + 60)
    advance_clock(client, 45)
    second = client.get(LINKS_PATH, params={"limit": 1}, headers=headers)
    assert second.headers["X-RateLimit-Reset"] == str(FROZEN_EPOCH + 60)
    assert second.headers["X-RateLimit-Remaining"] == "13"
    advance_clock(client, 15)  # the first call left; the second is now the oldest
    third = client.get(LINKS_PATH, params={"limit": 1}, headers=headers)
    assert third.headers["X-RateLimit-Reset"] == str(FROZEN_EPOCH + 105)
    assert third.headers["X-RateLimit-Remaining"] == "13"


def test_rejected_calls_carry_rate_headers(frozen_client: TestClient) -> None:
    client = frozen_client
    headers = auth_headers(client)
    for response in (
        client.get(LINKS_PATH, params={"limit": 0}, headers=headers),
        client.get(f"{LINKS_PATH}/nope", headers=headers),
        client.post(LINKS_PATH, json={"title": ""}, headers=headers),
    ):
        assert 400 <= response.status_code < 500
        for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
            assert response.headers[name].isdigit(), (name, response.headers)


def test_two_sandbox_apps_have_separate_windows(frozen_client: TestClient) -> None:
    client = frozen_client
    register_app(client, "second_sandbox", "second_secret", rate_limit=None)
    first = auth_headers(client)
    second = auth_headers(client, "second_sandbox", "second_secret")
    _spend(client, first, SANDBOX_LIMIT)
    _assert_limited(client.get(LINKS_PATH, headers=first))
    responses = _spend(client, second, SANDBOX_LIMIT)
    assert responses[0].headers["X-RateLimit-Remaining"] == "14"
    assert responses[0].headers["X-RateLimit-Limit"] == "15"
    _assert_limited(client.get(LINKS_PATH, headers=second))


def test_two_tokens_of_one_app_share_its_window(frozen_client: TestClient) -> None:
    client = frozen_client
    a, b = auth_headers(client), auth_headers(client)
    _spend(client, a, 10)
    _spend(client, b, 5)
    _assert_limited(client.get(LINKS_PATH, headers=a))
    _assert_limited(client.get(LINKS_PATH, headers=b))


@pytest.mark.parametrize("limit", [1, 3, 40])
def test_registered_rate_limit_replaces_the_sandbox_limit(
    frozen_client: TestClient, limit: int
) -> None:
    client = frozen_client
    register_app(client, "custom_limit", "custom_secret", rate_limit=limit)
    headers = auth_headers(client, "custom_limit", "custom_secret")
    responses = _spend(client, headers, limit)
    assert responses[0].headers["X-RateLimit-Limit"] == str(limit)
    assert responses[-1].headers["X-RateLimit-Remaining"] == "0"
    _assert_limited(client.get(LINKS_PATH, headers=headers), limit)
    advance_clock(client, 60)
    assert client.get(LINKS_PATH, params={"limit": 1}, headers=headers).status_code == 200


def test_registered_live_app_limit_replaces_the_workspace_limit(frozen_client: TestClient) -> None:
    client = frozen_client
    register_app(client, "live_custom", "live_secret", environment="live", rate_limit=2)
    headers = auth_headers(client, "live_custom", "live_secret")
    responses = _spend(client, headers, 2)
    assert responses[0].headers["X-RateLimit-Limit"] == "2"
    _assert_limited(client.get(LINKS_PATH, headers=headers), 2)


def test_company_live_apps_share_their_workspace_window(frozen_client: TestClient) -> None:
    client = frozen_client
    a = auth_headers(client, "lv_demo_company_a", "lvs_demo_company_a_secret")
    b = auth_headers(client, "lv_demo_company_b", "lvs_demo_company_b_secret")
    first = client.get(LINKS_PATH, headers=a)
    assert first.status_code == 200, first.text
    limit = int(first.headers["X-RateLimit-Limit"])
    second = client.get(LINKS_PATH, headers=b)
    assert second.headers["X-RateLimit-Limit"] == str(limit)
    assert int(second.headers["X-RateLimit-Remaining"]) == limit - 2
    # A personal workspace is counted apart.
    other = auth_headers(client, "lv_demo_personal", "lvs_demo_personal_secret")
    personal = client.get(LINKS_PATH, headers=other)
    assert (
        int(personal.headers["X-RateLimit-Remaining"])
        == int(personal.headers["X-RateLimit-Limit"]) - 1
    )


def test_reset_clears_rate_windows(frozen_client: TestClient) -> None:
    client = frozen_client
    _spend(client, auth_headers(client), SANDBOX_LIMIT)
    assert reset(client).status_code == 200
    headers = auth_headers(client)
    responses = _spend(client, headers, SANDBOX_LIMIT)
    assert responses[0].headers["X-RateLimit-Remaining"] == "14"
