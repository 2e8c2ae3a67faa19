"""Resets fence off requests in flight: a request that started before a reset is never journaled
after it and changes nothing after it, whether it was delayed by a fault, sent its body slowly,
or was read slowly. Against the session's served emulator (the `emulator` fixture)."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import CONTROL, LINKS_PATH, TOKEN_PATH

from emulator import errors
from emulator.fence import Fence

PERSONAL = ("lv_demo_personal", "lvs_demo_personal_secret")
WAIT_SECONDS = 10.0


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=8) as executor:
        yield executor


class SlowRequest:
    """An HTTP request whose headers and first body bytes go now, and the rest on `finish()`."""

    def __init__(self, url: str, method: str, path: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(
            parts.hostname or "", parts.port, timeout=WAIT_SECONDS
        )
        self.connection.putrequest(method, path)
        for name, value in headers.items():
            self.connection.putheader(name, value)
        self.connection.endheaders()

    def send(self, data: bytes) -> None:
        self.connection.send(data)

    def finish(self, data: bytes) -> tuple[int, dict[str, Any]]:
        self.connection.send(data)
        response = self.connection.getresponse()
        body = json.loads(response.read())
        self.connection.close()
        return response.status, body


def _json_request(url: str, path: str, body: dict[str, Any], **headers: str) -> SlowRequest:
    """A JSON POST sent up to its last byte."""
    raw = json.dumps(body).encode()
    request = SlowRequest(
        url,
        "POST",
        path,
        {"Content-Type": "application/json", "Content-Length": str(len(raw)), **headers},
    )
    request.send(raw[:-1])
    request.last = raw[-1:]  # type: ignore[attr-defined]
    return request


def _started(emulator: Any) -> None:
    """Wait until the server has taken the marker fault, that is, has started the request."""
    deadline = time.monotonic() + WAIT_SECONDS
    while emulator.pending_faults:
        assert time.monotonic() < deadline, "the request never reached the server"
        time.sleep(0.005)


def _watch_tickets(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """An event set once a request takes its ticket at the fence (has started)."""
    fence, taken = emulator.state.fence, threading.Event()
    ticket = fence.ticket

    def watched() -> int:
        taken.set()
        return ticket()

    monkeypatch.setattr(fence, "ticket", watched)
    return taken


def _mark_next(emulator: Any, path: str) -> None:
    """A fault that does nothing visible (1 ms), whose firing shows a request has started."""
    emulator.fault(delay_ms=1, path=path)


def _get(emulator: Any, path: str, token: str, **params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(emulator.url + path, params=params, headers=headers, timeout=WAIT_SECONDS)


def _assert_reset_refusal(status: int, body: dict[str, Any]) -> None:
    assert (status, body["error"]["code"]) == (503, "emulator_reset"), body


# -- the fence itself


def test_a_ticket_goes_stale_at_the_next_reset() -> None:
    fence = Fence()
    ticket = fence.ticket()
    with fence.guard(ticket):
        pass
    with fence.advance():
        pass

    assert not fence.is_current(ticket)
    with pytest.raises(errors.ApiError) as refused, fence.guard(ticket):
        pass
    assert (refused.value.status, refused.value.code) == (503, "emulator_reset")
    assert fence.if_current(ticket, lambda: "done") is None
    assert fence.if_current(fence.ticket(), lambda: "done") == "done"


def test_a_reset_waits_for_a_guarded_change_to_finish() -> None:
    fence = Fence()
    entered, release = threading.Event(), threading.Event()
    order: list[str] = []

    def change() -> None:
        with fence.guard(fence.ticket()):
            entered.set()
            release.wait(WAIT_SECONDS)
            order.append("change")

    worker = threading.Thread(target=change)
    worker.start()
    assert entered.wait(WAIT_SECONDS)
    threading.Timer(0.05, release.set).start()
    with fence.advance():
        order.append("reset")
    worker.join(WAIT_SECONDS)

    assert order == ["change", "reset"]


# -- delayed requests


def test_a_delayed_request_outliving_its_test_is_neither_journaled_nor_counted(emulator, pool):
    emulator.fault(delay_ms=5_000, path=LINKS_PATH)
    late = pool.submit(_get, emulator, LINKS_PATH, emulator.token(), limit=1)
    _started(emulator)
    started = time.monotonic()

    emulator.reset()

    response = late.result(WAIT_SECONDS)
    _assert_reset_refusal(response.status_code, response.json())
    assert time.monotonic() - started < 2.5, "the delay should end at the reset"
    fresh = _get(emulator, LINKS_PATH, emulator.token(), limit=1)
    assert fresh.headers["X-RateLimit-Remaining"] == "14"
    assert [(r.path, r.status) for r in emulator.journal] == [(LINKS_PATH, 200)]


def test_a_delayed_fault_injected_before_a_reset_is_not_answered_after_it(emulator, pool):
    emulator.fault(503, delay_ms=5_000, path=TOKEN_PATH)
    body = {"clientId": PERSONAL[0], "clientSecret": PERSONAL[1]}
    late = pool.submit(httpx.post, emulator.url + TOKEN_PATH, json=body, timeout=WAIT_SECONDS)
    _started(emulator)

    emulator.reset()

    response = late.result(WAIT_SECONDS)
    _assert_reset_refusal(response.status_code, response.json())
    assert emulator.journal == []


def test_a_dribble_stops_dribbling_at_a_reset(emulator, pool):
    emulator.fault(network="dribble", dribble_ms=5_000, path=LINKS_PATH)
    late = pool.submit(_get, emulator, LINKS_PATH, emulator.token(), limit=1)
    deadline = time.monotonic() + WAIT_SECONDS
    while not emulator.journal:  # journaled as its dribble begins: its head is out
        assert time.monotonic() < deadline, "the request was never answered"
        time.sleep(0.005)
    started = time.monotonic()

    emulator.reset()

    response = late.result(WAIT_SECONDS)
    assert response.status_code == 200 and len(response.json()["data"]) == 1
    assert time.monotonic() - started < 2.5, "the dribble should end at the reset"
    assert emulator.journal == []


def test_requests_in_flight_together_are_all_fenced_off(emulator, pool):
    for _round in range(3):
        token = emulator.token()
        live = emulator.token("lv_demo_personal")
        emulator.fault(delay_ms=3_000, times=6)
        calls: list[Future[httpx.Response]] = [
            pool.submit(_get, emulator, LINKS_PATH, token, limit=1),
            pool.submit(_get, emulator, LINKS_PATH, live),
            pool.submit(_get, emulator, f"{LINKS_PATH}/lnk_nothing", token),
            pool.submit(
                httpx.post,
                emulator.url + LINKS_PATH,
                json={"title": "Late", "destination": "https://e.com", "slug": "late-link"},
                headers={"Authorization": f"Bearer {live}"},
                timeout=WAIT_SECONDS,
            ),
            pool.submit(
                httpx.post,
                emulator.url + TOKEN_PATH,
                json={"clientId": PERSONAL[0], "clientSecret": PERSONAL[1]},
                timeout=WAIT_SECONDS,
            ),
            pool.submit(httpx.get, emulator.url + "/late-link", timeout=WAIT_SECONDS),
        ]
        _started(emulator)

        emulator.reset()

        fresh = _get(emulator, LINKS_PATH, emulator.token("lv_demo_personal"))
        for call in calls:
            response = call.result(WAIT_SECONDS)
            _assert_reset_refusal(response.status_code, response.json())
        assert fresh.json()["pagination"]["total"] == 0
        assert fresh.headers["X-RateLimit-Remaining"] == str(60 - 1)
        assert [(r.path, r.status) for r in emulator.journal] == [(LINKS_PATH, 200)]
        emulator.reset()


# -- slow bodies and streaming clients


def test_a_create_whose_body_arrives_after_a_reset_creates_nothing(emulator):
    token = emulator.token("lv_demo_personal")
    _mark_next(emulator, LINKS_PATH)
    link = {"title": "Slow", "destination": "https://e.com/slow", "slug": "slow-link"}
    slow = _json_request(emulator.url, LINKS_PATH, link, Authorization=f"Bearer {token}")
    _started(emulator)

    emulator.reset()

    _assert_reset_refusal(*slow.finish(slow.last))  # type: ignore[attr-defined]
    assert emulator.state.live.find_slug("slow-link") is None
    assert emulator.journal == []
    created = httpx.post(
        emulator.url + LINKS_PATH,
        json=link,
        headers={"Authorization": f"Bearer {emulator.token('lv_demo_personal')}"},
        timeout=WAIT_SECONDS,
    )
    assert created.status_code == 201, created.text  # the slug was never taken


def test_a_chunked_upload_across_a_reset_creates_nothing(emulator):
    token = emulator.token("lv_demo_personal")
    _mark_next(emulator, LINKS_PATH)
    raw = json.dumps({"title": "Chunked", "destination": "https://e.com/c", "slug": "chunky"})
    chunks = [raw[:10].encode(), raw[10:].encode()]
    slow = SlowRequest(
        emulator.url,
        "POST",
        LINKS_PATH,
        {
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked",
            "Authorization": f"Bearer {token}",
        },
    )
    slow.send(b"%x\r\n%s\r\n" % (len(chunks[0]), chunks[0]))
    _started(emulator)

    emulator.reset()

    _assert_reset_refusal(*slow.finish(b"%x\r\n%s\r\n0\r\n\r\n" % (len(chunks[1]), chunks[1])))
    assert emulator.state.live.count("ws_personal_demo") == 0
    assert emulator.journal == []


def test_a_token_exchange_whose_body_arrives_after_a_reset_gets_no_token(emulator):
    _mark_next(emulator, TOKEN_PATH)
    body = {"clientId": PERSONAL[0], "clientSecret": PERSONAL[1]}
    slow = _json_request(emulator.url, TOKEN_PATH, body)
    _started(emulator)

    emulator.reset()

    _assert_reset_refusal(*slow.finish(slow.last))  # type: ignore[attr-defined]
    assert emulator.journal == []


@pytest.mark.parametrize(
    ("path", "body", "unchanged"),
    [
        (
            "/faults",
            {"status": 503, "times": 1},
            lambda emulator: emulator.pending_faults == [],
        ),
        (
            "/applications",
            {"clientId": "sb_late", "clientSecret": "sb_late_secret"},
            lambda emulator: emulator.state.registry.application("sb_late") is None,
        ),
        (
            "/clock",
            {"now": "2030-01-01T00:00:00Z"},
            lambda emulator: not emulator.clock.frozen,
        ),
    ],
    ids=["faults", "applications", "clock"],
)
def test_a_control_call_whose_body_arrives_after_a_reset_changes_nothing(
    emulator, monkeypatch, path: str, body: dict[str, Any], unchanged: Callable[[Any], bool]
):
    ticketed = _watch_tickets(emulator, monkeypatch)  # control calls take no fault to show it
    slow = _json_request(emulator.url, CONTROL + path, body)
    assert ticketed.wait(WAIT_SECONDS), "the request never reached the server"

    emulator.reset()

    status, answer = slow.finish(slow.last)  # type: ignore[attr-defined]
    assert (status, answer["error"]["code"]) == (503, "emulator_reset"), answer
    assert unchanged(emulator)


def test_a_response_read_slowly_across_a_reset_stays_in_its_own_test(emulator):
    token = emulator.token()
    with (
        httpx.Client(timeout=WAIT_SECONDS) as http,
        http.stream(
            "GET",
            emulator.url + LINKS_PATH,
            params={"limit": 100},
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        chunks = response.iter_raw(4096)
        first = next(chunks)
        assert [r.status for r in emulator.journal] == [200]

        emulator.reset()

        rest = b"".join(chunks)
    assert len(json.loads(first + rest)["data"]) == 100
    assert emulator.journal == []
