"""uvicorn's httptools protocol with the emulator's bounds, for serving over a socket.

uvicorn with httptools buffers a request's target and headers whole (no size limit), keeps a
connection that sends half a request open for ever (its only timeout is keep-alive, between
requests), and answers malformed HTTP itself in plain text. This protocol:

- refuses a target over URL_BYTES_MAX (414) while it arrives, and headers over HEADER_BYTES_MAX
  (431) once they are complete; the head of a request is counted in raw bytes as it arrives
  (HEAD_BYTES_MAX, 431), so no head, not even a single endless header line, is buffered beyond
  that;
- closes a connection whose request has not arrived in full (line, headers and body) within
  `request_timeout` seconds of its start: with a 408 when part of one came, silently when nothing
  did (an idle connection a browser opened ahead of need);
- answers malformed HTTP with a 400 in the error envelope;
- gives each request's scope the `Connection` that network faults cut (`emulator.network_faults`).

Each of these refusals carries `X-Request-Id` and closes the connection, after a short linger:
the server stops sending, and reads and drops what the client still sends for at most
LINGER_SECONDS and LINGER_BYTES, so that a client still sending its oversized request is not reset
before it reads the answer. The app checks the same bounds (limits.oversized) for clients that
reach it in process.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from emulator import errors
from emulator.errors import ApiError
from emulator.limits import HEAD_CHECKED, HEADER_BYTES_MAX, URL_BYTES_MAX, header_bytes
from emulator.network_faults import CONNECTION_EXTENSION
from emulator.request_ids import new_request_id
from emulator.serialize import dumps
from emulator.settings import Settings

# The raw bytes a request's head may take before it is refused: the target, the headers, and
# room for the request line's method and version.
HEAD_BYTES_MAX = URL_BYTES_MAX + HEADER_BYTES_MAX + 1024
LINGER_SECONDS = 2.0
LINGER_BYTES = 128 * 1024 * 1024
# struct linger {l_onoff, l_linger}: on, 0 seconds, so that close() sends a reset (RST).
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)


class _Refused(Exception):
    """Raised in a parser callback to stop parsing; the refusal is kept on the protocol."""


def refusal_bytes(error: ApiError, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A complete HTTP/1.1 response carrying `error` in the envelope, closing the connection."""
    body = dumps(error.body())
    request_id = new_request_id().encode()
    parts = [STATUS_LINE[error.status]]
    for name, value in default_headers:
        parts += [name, b": ", value, b"\r\n"]
    parts += [
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"x-request-id: " + request_id + b"\r\n",
        b"connection: close\r\n\r\n",
        body,
    ]
    return b"".join(parts)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    request_timeout: float = Settings.request_timeout_seconds

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        # When the request under way began (the connection's start for its first request); None
        # between requests.
        self._started: float | None = None
        self._in_head = True  # reading a request's line and headers (or waiting for one)
        self._begun = False  # a byte of the current request has arrived
        self._head_bytes = 0
        self._refusal: ApiError | None = None
        self._lingering: asyncio.TimerHandle | None = None
        self._drained = 0

    # Deadline: from the connection (or the request's first byte) to the request's last byte.
    # One timer per connection, not one per request: a request that ends leaves it running, and
    # when it fires for a request that began later, it is set again for that request's deadline.

    def _arm(self, at: float) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_at(at, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        started = self._started
        if started is None or self.transport.is_closing() or self._lingering is not None:
            return  # between requests: the next one sets the timer again
        now = self.loop.time()
        if now < started + self.request_timeout:  # set for a request that has ended since
            self._arm(started + self.request_timeout)
        elif self.flow.read_paused:  # the server holds the reading (a pipeline, an unread body)
            self._arm(now + self.request_timeout)
        elif not self._begun:
            self.transport.close()
        else:
            self._refuse(errors.request_timeout(self.request_timeout))

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._started = self.loop.time()
        self._arm(self._started + self.request_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._lingering is not None:
            self._lingering.cancel()
        super().connection_lost(exc)

    # Refusals

    def _refuse(self, error: ApiError) -> None:
        """Answer `error` unless a response of this connection is under way; close."""
        self._disarm()
        cycle = self.cycle
        if self._in_head:  # no cycle for this request yet: answer unless the last is unanswered
            can_answer = cycle is None or cycle.response_complete
        else:
            can_answer = cycle is None or not cycle.response_started
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's receive() now says the client is gone
            cycle.message_event.set()
        if self.transport.is_closing() or self._lingering is not None:
            return
        if can_answer:
            self.transport.write(refusal_bytes(error, self.server_state.default_headers))
        self._linger()

    def _linger(self) -> None:
        """Send no more, drop what still comes for a moment, then close."""
        self._lingering = self.loop.call_later(LINGER_SECONDS, self.transport.close)
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        else:
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        self._refuse(errors.malformed_request())

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None:
            self._drained += len(data)
            if self._drained > LINGER_BYTES:
                self.transport.close()
            return
        self._unset_keepalive_if_required()
        if self._in_head and data:
            self._begun = True
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            self._refuse(self._refusal or errors.malformed_request())
            return
        if self._in_head and self._head_bytes > HEAD_BYTES_MAX:
            self._refuse(errors.headers_too_large(HEADER_BYTES_MAX))

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = True
        if self._started is None:
            self._started = self.loop.time()
            self._arm(self._started + self.request_timeout)

    def on_url(self, url: bytes) -> None:
        if len(self.url) + len(url) > URL_BYTES_MAX:
            self._refusal = errors.uri_too_long(URL_BYTES_MAX)
            raise _Refused
        super().on_url(url)

    def on_headers_complete(self) -> None:
        size = header_bytes(self.headers)
        if size > HEADER_BYTES_MAX:
            self._refusal = errors.headers_too_large(HEADER_BYTES_MAX)
            raise _Refused
        self.scope[HEAD_CHECKED] = size  # type: ignore[literal-required]  # the app need not
        super().on_headers_complete()  # when it raises (a target it cannot decode), still the head
        self._in_head = False
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:  # its task has not started yet
            extensions = self.scope.setdefault("extensions", {})  # type: ignore[typeddict-item]
            extensions[CONNECTION_EXTENSION] = _Connection(self, cycle)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._started = None
        self._in_head = True
        self._begun = False
        self._head_bytes = 0


class _Connection:
    """One request's connection, for the network faults to cut (network_faults.Connection)."""

    __slots__ = ("_cycle", "_protocol")

    def __init__(self, protocol: BoundedHttpToolsProtocol, cycle: RequestResponseCycle) -> None:
        self._protocol = protocol
        self._cycle = cycle

    def _let_go(self) -> bool:
        """End the request's cycle (uvicorn then sends nothing more, and logs no unfinished
        response); whether the connection is still there to cut."""
        cycle, protocol = self._cycle, self._protocol
        cycle.keep_alive = False
        cycle.disconnected = True
        cycle.message_event.set()
        protocol._disarm()
        return not (protocol.transport.is_closing() or protocol._lingering is not None)

    def reset(self) -> None:
        if not self._let_go():
            return
        transport = self._protocol.transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        transport.abort()

    def close(self, data: bytes = b"") -> None:
        if not self._let_go():
            return
        if data:
            self._protocol.transport.write(data)
        self._protocol._linger()


def http_protocol(settings: Settings) -> type[BoundedHttpToolsProtocol]:
    """The protocol class to give uvicorn (`http=`) for these settings."""
    return type(
        "EmulatorHttpProtocol",
        (BoundedHttpToolsProtocol,),
        {"request_timeout": settings.request_timeout_seconds},
    )
