"""Testing a sync 8here client in process, with no socket: `emulator_app.sync_transport()`.

Needs only `pip install 8here-emulator pytest httpx`. The client takes its `httpx.Client` from
the test, so the test hands it one whose transport is the emulator itself, and a clock and a
sleep that are the emulator's, so an hour passes in a microsecond.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

TOKEN_PATH = "/api/api-applications/token"
LINKS_PATH = "/api/api-applications/public/links"


class SyncLinksClient:
    """The client under test: it renews its token `refresh_margin` seconds before `expiresAt`
    (by its own clock) or when told it expired, waits out a 429 for as long as Retry-After
    says, and reads pages while hasMore is true."""

    def __init__(
        self,
        http: httpx.Client,
        client_id: str,
        client_secret: str,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
        refresh_margin: float = 60,
    ) -> None:
        self._http = http
        self._credentials = {"clientId": client_id, "clientSecret": client_secret}
        self._now = now
        self._sleep = sleep
        self._margin = timedelta(seconds=refresh_margin)
        self._token: str | None = None
        self._expires_at = datetime.min.replace(tzinfo=UTC)

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

    def _bearer(self) -> dict[str, str]:
        if self._token is None or self._now() >= self._expires_at - self._margin:
            response = self._http.post(TOKEN_PATH, json=self._credentials)
            response.raise_for_status()
            body = response.json()
            self._token = body["accessToken"]
            self._expires_at = datetime.fromisoformat(body["expiresAt"].replace("Z", "+00:00"))
        return {"Authorization": f"Bearer {self._token}"}

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        for _attempt in range(3):
            response = self._http.request(method, path, headers=self._bearer(), **kwargs)
            if response.status_code == 401 and response.json()["error"]["code"] == "token_expired":
                self._token = None
            elif response.status_code == 429:
                self._sleep(int(response.headers["Retry-After"]))
            else:
                break
        response.raise_for_status()
        return response.json()


@pytest.fixture
def http(emulator_app):
    """An httpx.Client whose transport is the in-process emulator: no server, no socket."""
    with httpx.Client(transport=emulator_app.sync_transport(), base_url=emulator_app.url) as http:
        yield http


@pytest.fixture
def client(emulator_app, http):
    """The client on the emulator's clock: `now` reads it and `sleep` moves it."""
    emulator_app.clock.freeze()
    creds = emulator_app.credentials
    return SyncLinksClient(
        http,
        creds.client_id,
        creds.client_secret,
        now=emulator_app.clock.now,
        sleep=emulator_app.clock.advance,
    )


def test_reuses_one_token(client, emulator_app):
    for _ in range(3):
        client.list_links(limit=5)

    emulator_app.assert_token_reused()


def test_reads_every_page_once(client, emulator_app):
    links = list(client.iter_links(page_size=50))

    assert len({link["id"] for link in links}) == 240
    assert [r.params["offset"] for r in emulator_app.journal if r.path == LINKS_PATH] == [
        0,
        50,
        100,
        150,
        200,
    ]
    emulator_app.assert_no_page_past_end()


def test_renews_its_token_before_it_expires(client, emulator_app):
    client.list_links(limit=1)
    emulator_app.clock.advance(3600 - 30)  # within the client's 60 s margin: it renews
    client.list_links(limit=1)
    emulator_app.clock.advance(30)  # the first token has expired; the client never sends it
    client.list_links(limit=1)

    emulator_app.assert_token_refreshed_before_expiry()
    emulator_app.assert_token_reused()  # renewing in the last 300 s of a token is no waste


def test_renews_an_expired_token_when_told(emulator_app, http):
    creds = emulator_app.credentials
    emulator_app.clock.freeze()
    wall_clock_client = SyncLinksClient(http, creds.client_id, creds.client_secret)
    wall_clock_client.list_links(limit=1)
    emulator_app.clock.advance(3600)  # the wall clock says the token is fresh; the API does not

    wall_clock_client.list_links(limit=1)

    assert [r.error_code for r in emulator_app.journal if r.status == 401] == ["token_expired"]
    emulator_app.assert_token_refreshed_after_expiry()


def test_waits_out_an_injected_429(client, emulator_app):
    emulator_app.fault(429, path=LINKS_PATH, retry_after=7)

    client.list_links(limit=1)

    assert [(r.status, r.retry_after) for r in emulator_app.journal if r.path == LINKS_PATH] == [
        (429, 7),
        (200, None),
    ]
    emulator_app.assert_retry_after_obeyed()


def test_a_server_error_reaches_the_caller(client, emulator_app):
    emulator_app.fault(503, path=LINKS_PATH)

    with pytest.raises(httpx.HTTPStatusError) as failure:
        client.list_links()

    assert failure.value.response.status_code == 503


def test_gives_up_on_a_slow_answer(emulator_app):
    emulator_app.fault(delay_ms=500, path=LINKS_PATH)  # real time, so keep it short
    creds = emulator_app.credentials
    transport = emulator_app.sync_transport()
    with httpx.Client(transport=transport, base_url=emulator_app.url, timeout=0.1) as http:
        client = SyncLinksClient(http, creds.client_id, creds.client_secret)

        with pytest.raises(httpx.ReadTimeout):
            client.list_links()
    # Still in flight when the test ends: the next reset fences it off, so no later test
    # ever sees it in its journal or its rate window.
