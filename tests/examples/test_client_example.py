"""Testing a small 8here client with the 8here-emulator pytest plugin: a complete example.

Needs only `pip install 8here-emulator pytest httpx`: installing the emulator registers its
fixtures with pytest, so this file runs on its own, with no conftest.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from emulator.assertions import (
    assert_no_page_past_end,
    assert_retry_after_obeyed,
    assert_token_refreshed_after_expiry,
    assert_token_reused,
)

TOKEN_PATH = "/api/api-applications/token"
LINKS_PATH = "/api/api-applications/public/links"


class LinksClient:
    """The client under test: it keeps one token until the API says it expired, waits out a 429
    for as long as Retry-After says, and follows pages while hasMore is true."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_retries: int = 3,
    ) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=10)
        self._credentials = {"clientId": client_id, "clientSecret": client_secret}
        self._sleep = sleep
        self._max_retries = max_retries
        self._token: str | None = None

    def __enter__(self) -> LinksClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.close()

    def list_links(self, **params: Any) -> dict[str, Any]:
        return self._call("GET", LINKS_PATH, params=params)

    def iter_links(self, page_size: int = 25, **params: Any) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            page = self.list_links(limit=page_size, offset=offset, **params)
            yield from page["data"]
            if not page["pagination"]["hasMore"]:
                return
            offset += page_size

    def create_link(self, title: str, destination: str, slug: str | None = None) -> dict[str, Any]:
        body = {"title": title, "destination": destination}
        if slug is not None:
            body["slug"] = slug
        return self._call("POST", LINKS_PATH, json=body)

    def get_link(self, link_id: str) -> dict[str, Any]:
        return self._call("GET", f"{LINKS_PATH}/{link_id}")

    def _bearer(self) -> dict[str, str]:
        if self._token is None:
            response = self._http.post(TOKEN_PATH, json=self._credentials)
            response.raise_for_status()
            self._token = response.json()["accessToken"]
        return {"Authorization": f"Bearer {self._token}"}

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        retries = 0
        while True:
            response = self._http.request(method, path, headers=self._bearer(), **kwargs)
            if retries < self._max_retries:
                retries += 1
                if response.status_code == 401 and _error_code(response) == "token_expired":
                    self._token = None
                    continue
                if response.status_code == 429:
                    self._sleep(int(response.headers["Retry-After"]))
                    continue
            response.raise_for_status()
            return response.json()


def _error_code(response: httpx.Response) -> str | None:
    return response.json().get("error", {}).get("code")


@pytest.fixture
def client(emulator):
    """The client pointed at the emulator; it sleeps on the emulator's clock, not the wall's."""
    creds = emulator.credentials
    with LinksClient(
        emulator.url, creds.client_id, creds.client_secret, sleep=emulator.clock.advance
    ) as client:
        yield client


def test_lists_links_with_filters(client):
    page = client.list_links(q="launch", hasVisits="true", sortBy="clicks")

    assert page["data"], "the sample set has visited links about a launch"
    assert all(link["hasVisits"] for link in page["data"])
    clicks = [link["clicks"] for link in page["data"]]
    assert clicks == sorted(clicks, reverse=True)


def test_reuses_one_token(client, emulator):
    for _ in range(3):
        client.list_links(limit=5)

    exchanges = [r for r in emulator.journal if r.path == TOKEN_PATH]
    assert len(exchanges) == 1
    assert_token_reused(emulator.journal)


def test_reads_every_page_and_stops(client, emulator):
    links = list(client.iter_links(page_size=5, q="launch"))

    pages = [r for r in emulator.journal if r.path == LINKS_PATH]
    total = pages[0].pagination["total"]
    assert len(pages) == -(-total // 5)  # each page once, none past the end
    assert len(links) == total
    assert len({link["id"] for link in links}) == total
    assert_no_page_past_end(emulator.journal)


def test_waits_out_the_rate_limit(emulator):
    emulator.clock.freeze()
    app = emulator.register_application(rate_limit_per_minute=3)
    with LinksClient(
        emulator.url, app.client_id, app.client_secret, sleep=emulator.clock.advance
    ) as client:
        for _ in range(4):  # the fourth call is over the limit: 429, wait, retry
            client.list_links(limit=1)

    statuses = [r.status for r in emulator.journal if r.path == LINKS_PATH]
    assert statuses == [200, 200, 200, 429, 200]
    assert [r.retry_after for r in emulator.journal if r.status == 429] == [60]
    assert_retry_after_obeyed(emulator.journal)


def test_the_rate_window_slides_with_the_clock(emulator):
    creds = emulator.credentials
    with LinksClient(emulator.url, creds.client_id, creds.client_secret, max_retries=0) as client:
        for _ in range(15):  # the sandbox allows 15 requests a minute
            client.list_links(limit=1)
        with pytest.raises(httpx.HTTPStatusError) as refused:
            client.list_links(limit=1)
        assert refused.value.response.status_code == 429

        emulator.clock.advance(60)  # no sleeping: the window slides on the emulator's clock
        client.list_links(limit=1)

    assert_retry_after_obeyed(emulator.journal)


def test_refreshes_an_expired_token(client, emulator):
    client.list_links(limit=1)
    emulator.clock.advance(3600)  # tokens live one hour on the emulator's clock

    client.list_links(limit=1)

    statuses = [(r.path, r.status) for r in emulator.journal]
    assert statuses == [
        (TOKEN_PATH, 200),
        (LINKS_PATH, 200),
        (LINKS_PATH, 401),
        (TOKEN_PATH, 200),
        (LINKS_PATH, 200),
    ]
    assert_token_refreshed_after_expiry(emulator.journal)


def test_reports_server_errors(client, emulator):
    emulator.fault(status=503, method="GET", path=LINKS_PATH, times=1)

    with pytest.raises(httpx.HTTPStatusError) as failure:
        client.list_links()

    assert failure.value.response.status_code == 503


def test_live_links_count_their_visits(emulator):
    live = emulator.register_application(environment="live")  # a workspace of its own
    with LinksClient(emulator.url, live.client_id, live.client_secret) as client:
        link = client.create_link("Launch", "https://example.com/launch", slug="launch-page")
        emulator.visit("launch-page", count=3, country="DE", device="mobile")

        detail = client.get_link(link["id"])

    assert link["persisted"] is True
    assert detail["clicks"] == 3
    assert detail["analytics"]["topCountries"] == [{"country": "DE", "clicks": 3}]
    assert detail["analytics"]["devices"]["mobile"] == 3


def test_in_process_with_no_socket(emulator_app):
    async def first_link() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=emulator_app)
        async with httpx.AsyncClient(transport=transport, base_url=emulator_app.url) as http:
            token = emulator_app.token()
            response = await http.get(
                LINKS_PATH, params={"limit": 1}, headers={"Authorization": f"Bearer {token}"}
            )
            response.raise_for_status()
            return response.json()

    page = asyncio.run(first_link())

    assert len(page["data"]) == 1
    assert [r.status for r in emulator_app.journal] == [200]
