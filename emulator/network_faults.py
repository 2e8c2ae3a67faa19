"""Network faults on the wire: a connection cut before any answer (reset, empty, garbage), and an
answer cut short (truncated) or sent slowly (dribble).

Cutting a connection needs its socket: the served protocol (`emulator.protocol`) puts a
`Connection` in each request's scope, under CONNECTION_EXTENSION; a request served in process has
none. Dribbling needs no socket, so it works in process too.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from starlette.datastructures import MutableHeaders
from starlette.types import Message, Receive, Send

from emulator.fence import Fence, wait

if TYPE_CHECKING:
    from emulator.faults import Fault

CONNECTION_EXTENSION = "8here.connection"
GARBAGE_BYTES = 256
_END_OF_HEAD = b"\r\n\r\n"
# A dribbled body goes out in this many pieces (fewer when it is shorter), one every
# dribbleMs / DRIBBLE_PIECES: a client's read timeout shorter than that gap fires.
DRIBBLE_PIECES = 10


class Connection(Protocol):
    """A request's connection, as the server lets the app cut it."""

    def reset(self) -> None:
        """Close it with a TCP reset (RST) at once, sending nothing more."""

    def close(self, data: bytes = b"") -> None:
        """Send `data`, then close it cleanly (FIN), sending nothing more."""


def connection_of(scope: Mapping[str, Any]) -> Connection | None:
    extensions = scope.get("extensions") or {}
    connection: Connection | None = extensions.get(CONNECTION_EXTENSION)
    return connection


def no_response_bytes(fault: Fault, seed: int) -> bytes:
    """What a fault that sends no HTTP response sends instead: nothing, or for garbage
    GARBAGE_BYTES random bytes that are not HTTP, the same for the same seed and firing. They end
    as a response's head does (a blank line), so that a client reads them as one and says why
    it is not one, rather than only that the connection closed."""
    if fault.network != "garbage":
        return b""
    rng = random.Random(f"8here-garbage/{seed}/{fault.fired}")
    data = bytearray(rng.randbytes(GARBAGE_BYTES - len(_END_OF_HEAD)))
    if data[0] == ord("H"):  # so that it never begins "HTTP/"
        data[0] = ord("h")
    return bytes(data) + _END_OF_HEAD


async def read_request(receive: Receive, limit: int) -> None:
    """Receive the request's body to its end (or `limit` bytes of it), so that a cut comes after
    the whole request, as from a server that failed while answering it: a client still sending
    would otherwise meet the cut in its send, and some report that as something else."""
    received = 0
    while received <= limit:
        message = await receive()
        if message["type"] != "http.request":  # the client is gone
            return
        received += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def cut(fault: Fault, scope: Mapping[str, Any], data: bytes) -> None:
    """Cut the request's connection before any response: a reset, or `data` then a clean close."""
    connection = connection_of(scope)
    assert connection is not None, "faults.take_fault lets no socket kind through without one"
    if fault.network == "reset":
        connection.reset()
    else:
        connection.close(data)


def faulted_send(
    fault: Fault | None, scope: Mapping[str, Any], send: Send, fence: Fence, ticket: int
) -> Send:
    """`send` as it is, or for a truncated or dribbled fault, one that truncates or dribbles the
    response. A dribble stops waiting at a reset, as a delay does."""
    if fault is None or fault.network not in ("truncated", "dribble"):
        return send
    if fault.network == "dribble":
        assert fault.dribble_ms is not None
        return _dribbling(send, fault.dribble_ms, fence, ticket)
    connection = connection_of(scope)
    assert connection is not None, "faults.take_fault lets no socket kind through without one"
    return _truncating(send, connection)


def _truncating(send: Send, connection: Connection) -> Send:
    """The status and headers with the whole body's Content-Length, half the body, a close."""

    async def truncate(start: Message, body: bytes) -> None:
        MutableHeaders(scope=start)["content-length"] = str(len(body))
        await send(start)
        half = body[: len(body) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        connection.close()

    return _with_whole_body(send, truncate, hold_start=True)


def _dribbling(send: Send, dribble_ms: int, fence: Fence, ticket: int) -> Send:
    """The status and headers at once; then the body in equal pieces at equal gaps, the last
    `dribble_ms` after the headers."""

    async def dribble(start: Message, body: bytes) -> None:
        pieces = _pieces(body)
        started = time.monotonic()
        for number, piece in enumerate(pieces, 1):
            due = started + dribble_ms / 1000 * number / len(pieces)
            await wait(fence, ticket, (due - time.monotonic()) * 1000)
            more = number < len(pieces)
            await send({"type": "http.response.body", "body": piece, "more_body": more})

    return _with_whole_body(send, dribble, hold_start=False)


def _with_whole_body(
    send: Send, finish: Callable[[Message, bytes], Awaitable[None]], *, hold_start: bool
) -> Send:
    """A send that gathers the response's body and hands it, whole, to `finish` with the start
    message; the start goes on at once unless held (then `finish` sends it)."""
    start: Message = {}
    body: list[bytes] = []

    async def gathering(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            if not hold_start:
                await send(message)
            return
        if message["type"] != "http.response.body":
            await send(message)
            return
        body.append(message.get("body", b""))
        if not message.get("more_body", False):
            await finish(start, b"".join(body))

    return gathering


def _pieces(body: bytes) -> list[bytes]:
    count = max(1, min(len(body), DRIBBLE_PIECES))
    size = max(1, math.ceil(len(body) / count))
    return [body[i : i + size] for i in range(0, len(body), size)] or [b""]
