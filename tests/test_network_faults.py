"""Network faults as real socket clients meet them: httpx, the standard library's http.client and
requests against the session's served emulator (the plugin's `emulator` fixture), and what the
in-process `emulator_app` does with them."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import requests
from conftest import CONTROL, LINKS_PATH, TOKEN_PATH

from emulator.handle import Emulator, InvalidArgument

TIMEOUT = 10.0
DRIBBLE_MS = 600
PAGE = {"limit": 3}


def _headers(emulator: Emulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {emulator.token()}"}


def _httpx(emulator: Emulator, headers: dict[str, str]) -> tuple[int, bytes]:
    response = httpx.get(emulator.url + LINKS_PATH, params=PAGE, headers=headers, timeout=TIMEOUT)
    return response.status_code, response.content


def _requests(emulator: Emulator, headers: dict[str, str]) -> tuple[int, bytes]:
    response = requests.get(
        emulator.url + LINKS_PATH, params=PAGE, headers=headers, timeout=TIMEOUT
    )
    return response.status_code, response.content


@contextmanager
def _connection(emulator: Emulator) -> Iterator[http.client.HTTPConnection]:
    host, port = emulator.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
    try:
        yield connection
    finally:
        connection.close()


def _stdlib(emulator: Emulator, headers: dict[str, str]) -> tuple[int, bytes]:
    with _connection(emulator) as connection:
        connection.request("GET", f"{LINKS_PATH}?limit=3", headers=headers)
        response = connection.getresponse()
        return response.status, response.read()


CLIENTS: dict[str, Callable[[Emulator, dict[str, str]], tuple[int, bytes]]] = {
    "httpx": _httpx,
    "http.client": _stdlib,
    "requests": _requests,
}
# What each client raises for each kind that sends no complete response.
RAISED: dict[str, dict[str, type[BaseException]]] = {
    "reset": {
        "httpx": httpx.ReadError,
        "http.client": ConnectionResetError,
        "requests": requests.ConnectionError,
    },
    "empty": {
        "httpx": httpx.RemoteProtocolError,
        "http.client": http.client.RemoteDisconnected,
        "requests": requests.ConnectionError,
    },
    "garbage": {
        "httpx": httpx.RemoteProtocolError,
        "http.client": http.client.BadStatusLine,
        "requests": requests.ConnectionError,
    },
    "truncated": {
        "httpx": httpx.RemoteProtocolError,
        "http.client": http.client.IncompleteRead,
        "requests": requests.exceptions.ChunkedEncodingError,
    },
}


@pytest.mark.parametrize("client", list(CLIENTS))
@pytest.mark.parametrize("kind", list(RAISED))
def test_each_client_meets_each_network_kind(emulator: Emulator, kind: str, client: str) -> None:
    headers = _headers(emulator)
    emulator.fault(network=kind, path=LINKS_PATH)

    with pytest.raises(RAISED[kind][client]):
        CLIENTS[client](emulator, headers)

    assert emulator.pending_faults == []
    entry = emulator.journal[-1]
    assert entry.path == LINKS_PATH
    assert entry.fault is not None and entry.fault["network"] == kind
    assert entry.fault["source"] == "control"
    assert entry.status == (200 if kind == "truncated" else 0)
    # The connection is gone, not the server: the next request is answered.
    assert CLIENTS[client](emulator, headers)[0] == 200


def test_a_reset_is_a_tcp_reset_before_any_byte(emulator: Emulator) -> None:
    emulator.fault(network="reset", path=LINKS_PATH)
    with socket.create_connection(("127.0.0.1", _port(emulator)), timeout=TIMEOUT) as raw:
        raw.sendall(f"GET {LINKS_PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        with pytest.raises(ConnectionResetError):
            assert raw.recv(1024) == b"", "bytes came before the reset"


def test_empty_closes_cleanly_before_any_byte(emulator: Emulator) -> None:
    emulator.fault(network="empty", path=LINKS_PATH)
    assert _raw_get(emulator) == b""


def test_garbage_is_not_http_and_the_same_on_every_run(emulator: Emulator) -> None:
    emulator.fault(network="garbage", path=LINKS_PATH, times=2)
    first, second = _raw_get(emulator), _raw_get(emulator)
    emulator.reset()
    emulator.fault(network="garbage", path=LINKS_PATH)
    again = _raw_get(emulator)

    assert first and not first.startswith(b"HTTP/")
    assert again == first, "the first firing sends the same bytes after a reset"
    assert second != first, "each firing sends bytes of its own"
    entry = emulator.journal[-1]
    assert entry.status == 0 and entry.fault is not None and entry.fault["network"] == "garbage"


def test_truncated_sends_the_head_and_half_the_body(emulator: Emulator) -> None:
    headers = _headers(emulator)
    whole = _httpx(emulator, headers)[1]
    emulator.fault(network="truncated", path=LINKS_PATH)

    with _connection(emulator) as connection:
        connection.request("GET", f"{LINKS_PATH}?limit=3", headers=headers)
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Length") == str(len(whole))
        with pytest.raises(http.client.IncompleteRead) as cut:
            response.read()
    assert cut.value.partial == whole[: len(whole) // 2]


@pytest.mark.parametrize("client", list(CLIENTS))
def test_a_dribbled_body_arrives_whole_but_no_sooner_than_dribble_ms(
    emulator: Emulator, client: str
) -> None:
    headers = _headers(emulator)
    whole = CLIENTS[client](emulator, headers)
    emulator.fault(network="dribble", dribble_ms=DRIBBLE_MS, path=LINKS_PATH)

    started = time.monotonic()
    dribbled = CLIENTS[client](emulator, headers)

    assert time.monotonic() - started >= DRIBBLE_MS / 1000
    assert dribbled == whole
    fault = emulator.journal[-1].fault
    assert fault is not None and (fault["network"], fault["dribbleMs"]) == ("dribble", DRIBBLE_MS)


def test_a_dribble_sends_the_head_at_once_and_the_body_in_pieces(emulator: Emulator) -> None:
    headers = _headers(emulator)
    emulator.fault(network="dribble", dribble_ms=DRIBBLE_MS, path=LINKS_PATH)
    with httpx.stream(
        "GET", emulator.url + LINKS_PATH, params=PAGE, headers=headers, timeout=TIMEOUT
    ) as response:
        assert response.status_code == 200
        pieces = list(response.iter_raw())
    assert len(pieces) > 1, "the body came in one piece"
    assert b"".join(pieces) == _httpx(emulator, headers)[1]


def test_a_dribble_outlasts_a_short_read_timeout(emulator: Emulator) -> None:
    headers = _headers(emulator)
    emulator.fault(network="dribble", dribble_ms=3_000, path=LINKS_PATH)  # a piece every 300 ms
    timeout = httpx.Timeout(TIMEOUT, read=0.05)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(emulator.url + LINKS_PATH, params={"limit": 1}, headers=headers, timeout=timeout)


def test_network_faults_combine_with_method_path_times_and_delay(emulator: Emulator) -> None:
    emulator.fault(network="empty", method="POST", path=TOKEN_PATH, times=2, delay_ms=200)
    credentials = emulator.credentials
    body = {"clientId": credentials.client_id, "clientSecret": credentials.client_secret}
    with httpx.Client(base_url=emulator.url, timeout=TIMEOUT) as client:
        assert client.get(TOKEN_PATH).status_code == 405  # another method: not faulted
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(httpx.RemoteProtocolError):
                client.post(TOKEN_PATH, json=body)
            assert time.monotonic() - started >= 0.2
        assert client.post(TOKEN_PATH, json=body).status_code == 200
    assert [e.status for e in emulator.journal] == [405, 0, 0, 200]


def test_a_cut_comes_after_the_whole_request(emulator: Emulator) -> None:
    """A client's body is read before the reset, so that the client meets the reset reading
    (httpx: ReadError), never while it sends (httpx would report that as a disconnect)."""
    emulator.fault(network="reset", method="POST", path=TOKEN_PATH, times=3)
    credentials = emulator.credentials
    body = {"clientId": credentials.client_id, "clientSecret": credentials.client_secret}
    with httpx.Client(base_url=emulator.url, timeout=TIMEOUT) as client:
        for _ in range(3):
            with pytest.raises(httpx.ReadError):
                client.post(TOKEN_PATH, json=body)
    entries = httpx.get(f"{emulator.url}{CONTROL}/requests?detail=1", timeout=TIMEOUT).json()
    sent = entries["requests"][-1]["request"]["body"]
    assert credentials.client_id in sent and credentials.client_secret not in sent


def test_a_status_fault_can_be_truncated_or_dribbled(emulator: Emulator) -> None:
    emulator.fault(503, network="truncated", path=LINKS_PATH)
    with _connection(emulator) as connection:
        connection.request("GET", LINKS_PATH)
        response = connection.getresponse()
        assert response.status == 503
        with pytest.raises(http.client.IncompleteRead):
            response.read()

    emulator.fault(429, retry_after=7, network="dribble", dribble_ms=300, path=LINKS_PATH)
    response = httpx.get(emulator.url + LINKS_PATH, timeout=TIMEOUT)
    assert (response.status_code, response.headers["Retry-After"]) == (429, "7")
    assert response.json()["error"]["code"] == "injected_fault"


def test_the_control_api_takes_and_lists_network_faults(emulator: Emulator) -> None:
    with httpx.Client(base_url=emulator.url, timeout=TIMEOUT) as client:
        added = client.post(
            f"{CONTROL}/faults", json={"network": "dribble", "times": 2, "path": LINKS_PATH}
        )
        assert added.status_code == 201, added.text
        assert added.json() | {"times": 2} == {
            "method": None,
            "path": LINKS_PATH,
            "status": None,
            "delayMs": 0,
            "retryAfter": None,
            "network": "dribble",
            "dribbleMs": 1000,  # the default
            "times": 2,
            "fired": 0,
        }
        refused = client.post(
            f"{CONTROL}/faults", json={"network": "reset", "status": 503, "times": 1}
        )
        assert refused.status_code == 422 and refused.json()["error"]["field"] == "status"
    emulator.clear_faults()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"network": "explode"}, "network"),
        ({"network": "RESET"}, "network"),
        ({"network": 1}, "network"),
        ({"network": "reset", "status": 503}, "status"),
        ({"network": "garbage", "retryAfter": 3}, "retryAfter"),
        ({"network": "truncated", "dribbleMs": 100}, "dribbleMs"),
        ({"dribbleMs": 100, "status": 503}, "dribbleMs"),
        ({"network": "dribble", "dribbleMs": 0}, "dribbleMs"),
        ({"network": "dribble", "dribbleMs": 60_001}, "dribbleMs"),
        ({"network": "dribble", "dribbleMs": "100"}, "dribbleMs"),
    ],
    ids=repr,
)
def test_bad_network_faults_are_refused(
    emulator: Emulator, body: dict[str, Any], field: str
) -> None:
    added = httpx.post(
        f"{emulator.url}{CONTROL}/faults", json={**body, "times": 1}, timeout=TIMEOUT
    )
    assert 400 <= added.status_code < 500, added.text
    assert added.json()["error"]["field"] == field, added.text
    assert emulator.pending_faults == []


# -- in process: no socket


def test_in_process_refuses_the_kinds_that_need_a_socket(emulator_app: Emulator) -> None:
    for kind in ("reset", "empty", "garbage", "truncated"):
        with pytest.raises(InvalidArgument, match="needs a socket") as refused:
            emulator_app.fault(network=kind)  # type: ignore[arg-type]
        assert refused.value.field == "network"
    assert emulator_app.pending_faults == []


def test_in_process_control_api_and_header_refuse_them_too(emulator_app: Emulator) -> None:
    transport = emulator_app.sync_transport()
    with httpx.Client(transport=transport, base_url=emulator_app.url, timeout=TIMEOUT) as client:
        added = client.post(f"{CONTROL}/faults", json={"network": "reset", "times": 1})
        assert added.status_code == 422, added.text
        assert "needs a socket" in added.json()["error"]["message"]
        answered = client.get(LINKS_PATH, headers={"X-Emulator-Fault": "network=reset"})
    assert answered.status_code == 400, answered.text
    error = answered.json()["error"]
    assert error["field"] == "X-Emulator-Fault" and "needs a socket" in error["message"]
    assert emulator_app.pending_faults == []


def test_in_process_dribble_works_with_the_sync_transport(emulator_app: Emulator) -> None:
    emulator_app.fault(network="dribble", dribble_ms=300, path=TOKEN_PATH)
    credentials = emulator_app.credentials
    body = {"clientId": credentials.client_id, "clientSecret": credentials.client_secret}
    transport = emulator_app.sync_transport()
    with httpx.Client(transport=transport, base_url=emulator_app.url, timeout=TIMEOUT) as client:
        started = time.monotonic()
        response = client.post(TOKEN_PATH, json=body)
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200 and response.json()["tokenType"] == "Bearer"


# -- helpers


def _port(emulator: Emulator) -> int:
    return int(emulator.url.rsplit(":", 1)[1])


def _raw_get(emulator: Emulator) -> bytes:
    """What a GET of the links path receives on a bare socket, up to the server's close."""
    received = bytearray()
    with socket.create_connection(("127.0.0.1", _port(emulator)), timeout=TIMEOUT) as raw:
        raw.sendall(f"GET {LINKS_PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        while chunk := raw.recv(65536):
            received += chunk
    return bytes(received)


def test_an_unfired_network_fault_says_what_it_would_do(emulator: Emulator) -> None:
    emulator.fault(network="dribble", dribble_ms=200, path=LINKS_PATH, times=2)
    emulator.fault(network="reset", method="POST")
    shown = [str(fault) for fault in emulator.pending_faults]
    emulator.clear_faults()
    assert shown == [
        f"network dribble over 200 ms on any method {LINKS_PATH}: fired 0 of 2",
        "network reset on POST any path: fired 0 of 1",
    ]
