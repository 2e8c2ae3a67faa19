"""Rate limits are exact under concurrency: a real server on a free port, 60 calls at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from conftest import FROZEN_NOW, LINKS_PATH, SANDBOX_CLIENT_ID, SANDBOX_SECRET, TOKEN_PATH

from emulator.testing import EmulatorServer

CALLS = 60
LIMIT = 15
TIMEOUT = httpx.Timeout(20.0)


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    emulator = EmulatorServer().start()
    try:
        yield emulator
    finally:
        emulator.stop()


def _prepare(
    base_url: str, client_id: str = SANDBOX_CLIENT_ID, secret: str = SANDBOX_SECRET
) -> dict[str, str]:
    """Freeze the clock (so all calls fall in one window) and get a token."""
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
        assert client.post("/_emulator/clock", json={"now": FROZEN_NOW}).status_code == 200
        response = client.post(TOKEN_PATH, json={"clientId": client_id, "clientSecret": secret})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['accessToken']}"}


async def _burst(base_url: str, headers: dict[str, str], paths: list[str]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=CALLS, max_keepalive_connections=CALLS)
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT, limits=limits) as client:
        calls = [client.get(path, headers=headers) for path in paths]
        return await asyncio.wait_for(asyncio.gather(*calls), timeout=60)


def _assert_exact(responses: list[httpx.Response]) -> None:
    statuses = Counter(response.status_code for response in responses)
    assert statuses == {200: LIMIT, 429: CALLS - LIMIT}, statuses
    remaining = sorted(
        int(r.headers["X-RateLimit-Remaining"]) for r in responses if r.status_code == 200
    )
    assert remaining == list(range(LIMIT)), "each admitted call saw its own place in the window"
    for response in responses:
        assert response.headers.get("X-Request-Id")
        if response.status_code == 429:
            assert response.json()["error"]["code"] == "rate_limited"
            assert response.headers["Retry-After"] == "60"
            assert response.headers["X-RateLimit-Remaining"] == "0"


def test_sixty_simultaneous_list_calls_admit_exactly_fifteen(server: EmulatorServer) -> None:
    headers = _prepare(server.url)
    responses = asyncio.run(_burst(server.url, headers, [f"{LINKS_PATH}?limit=5"] * CALLS))
    _assert_exact(responses)
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        journal = client.get("/_emulator/requests").json()["requests"]
        statuses = Counter(e["status"] for e in journal if e["path"] == LINKS_PATH)
        assert statuses == {200: LIMIT, 429: CALLS - LIMIT}
        assert client.post("/_emulator/clock", json={"advanceSeconds": 60}).status_code == 200
        assert client.get(LINKS_PATH, headers=headers).status_code == 200


def test_sixty_threads_over_list_and_detail_admit_exactly_fifteen(server: EmulatorServer) -> None:
    headers = _prepare(server.url)
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        # Read a sample id with another app so the window under test stays untouched.
        registered = client.post(
            "/_emulator/applications",
            json={
                "clientId": "reader",
                "clientSecret": "reader_secret",
                "rateLimitPerMinute": 1000,
            },
        )
        assert registered.status_code == 201, registered.text
        reader = _prepare(server.url, "reader", "reader_secret")
        link_id = client.get(LINKS_PATH, params={"limit": 1}, headers=reader).json()["data"][0][
            "id"
        ]
    paths = [
        f"{LINKS_PATH}?limit=3&sortBy=title" if i % 2 else f"{LINKS_PATH}/{link_id}"
        for i in range(CALLS)
    ]

    def call(path: str) -> httpx.Response:
        with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
            return client.get(path, headers=headers)

    with ThreadPoolExecutor(max_workers=CALLS) as pool:
        responses = list(pool.map(call, paths, timeout=60))
    _assert_exact(responses)


def test_separate_apps_do_not_share_a_window_under_concurrency(server: EmulatorServer) -> None:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        response = client.post(
            "/_emulator/applications",
            json={"clientId": "second", "clientSecret": "second_secret", "environment": "sandbox"},
        )
        assert response.status_code == 201, response.text
    first = _prepare(server.url)
    second = _prepare(server.url, "second", "second_secret")

    async def both() -> tuple[list[httpx.Response], list[httpx.Response]]:
        a, b = await asyncio.gather(
            _burst(server.url, first, [LINKS_PATH + "?limit=1"] * 30),
            _burst(server.url, second, [LINKS_PATH + "?limit=1"] * 30),
        )
        return a, b

    a, b = asyncio.run(both())
    for responses in (a, b):
        assert Counter(r.status_code for r in responses) == {200: LIMIT, 429: 30 - LIMIT}
