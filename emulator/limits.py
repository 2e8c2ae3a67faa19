"""What a client can make the emulator hold for one request, and the check of a request's head.

The served protocol (`emulator/protocol.py`) refuses an oversized head while it arrives, before it
is buffered; the same check runs in the app, so in-process clients see the same answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

from emulator import errors
from emulator.errors import ApiError

# Request headers in total, as on the wire: `name: value\r\n` each.
HEADER_BYTES_MAX = 16 * 1024
# The request target (path and query string) as sent.
URL_BYTES_MAX = 8 * 1024
HEADER_LINE_OVERHEAD = 4  # ": " and CRLF
# In the ASGI scope of a request whose head a served protocol has checked already: the size of
# its headers (`header_bytes`).
HEAD_CHECKED = "emulator.head_checked"


def header_bytes(headers: Sequence[tuple[bytes, bytes]]) -> int:
    """Headers' size as on the wire, `name: value` and CRLF each."""
    return sum(map(len, chain.from_iterable(headers))) + HEADER_LINE_OVERHEAD * len(headers)


def oversized(head_bytes: int, raw_path: bytes, query: bytes) -> ApiError | None:
    """431 for headers (of `head_bytes`) over HEADER_BYTES_MAX, 414 for a target over
    URL_BYTES_MAX, else None."""
    if len(raw_path) + len(query) + (1 if query else 0) > URL_BYTES_MAX:
        return errors.uri_too_long(URL_BYTES_MAX)
    if head_bytes > HEADER_BYTES_MAX:
        return errors.headers_too_large(HEADER_BYTES_MAX)
    return None
