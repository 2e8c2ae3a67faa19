"""What a client can make the emulator hold for one request, and the check of a request's head.

The served protocol (`emulator/protocol.py`) refuses an oversized head while it arrives, before it
is buffered; the same check runs in the app, so in-process clients see the same answers.
"""

from __future__ import annotations

from emulator import errors
from emulator.errors import ApiError

# Request headers in total, as on the wire: `name: value\r\n` each.
HEADER_BYTES_MAX = 16 * 1024
# The request target (path and query string) as sent.
URL_BYTES_MAX = 8 * 1024
HEADER_LINE_OVERHEAD = 4  # ": " and CRLF


def header_bytes(headers: list[tuple[bytes, bytes]]) -> int:
    return sum(len(name) + len(value) for name, value in headers) + HEADER_LINE_OVERHEAD * len(
        headers
    )


def oversized(headers: list[tuple[bytes, bytes]], raw_path: bytes, query: bytes) -> ApiError | None:
    """431 for headers over HEADER_BYTES_MAX, 414 for a target over URL_BYTES_MAX, else None."""
    if len(raw_path) + len(query) + (1 if query else 0) > URL_BYTES_MAX:
        return errors.uri_too_long(URL_BYTES_MAX)
    if header_bytes(headers) > HEADER_BYTES_MAX:
        return errors.headers_too_large(HEADER_BYTES_MAX)
    return None
