"""One forwarded exchange as the proxy holds it: what the client sent and what the target said.

Bodies are held whole only up to a bound (`forward.py` passes larger ones through unread), and a
compressed answer is decompressed for checking, within a bound of its own, while its bytes go
back to the client as they came.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl

RawHeaders = tuple[tuple[bytes, bytes], ...]
NOT_JSON: Any = object()


def header_dict(raw: RawHeaders) -> dict[str, str]:
    """Lower-case names; repeated headers joined with `, ` (as HTTP reads them)."""
    found: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        found[key] = f"{found[key]}, {text}" if key in found else text
    return found


def parse_json(body: bytes | None) -> Any:
    """The body as JSON, or NOT_JSON (empty, absent, or not JSON)."""
    if not body:
        return NOT_JSON
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return NOT_JSON


@dataclass(frozen=True)
class ClientRequest:
    method: str
    path: str
    raw_path: bytes
    query_string: bytes
    headers: RawHeaders
    # `None`: larger than the bound, passed through to the target unread.
    body: bytes | None

    @cached_property
    def header_map(self) -> dict[str, str]:
        return header_dict(self.headers)

    @cached_property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query_string.decode("latin-1"), keep_blank_values=True)

    @cached_property
    def json(self) -> Any:
        return parse_json(self.body)

    def describe(self) -> str:
        query = self.query_string.decode("latin-1")
        text = f"{self.method} {self.path}" + (f"?{query}" if query else "")
        return text if len(text) <= 200 else text[:197] + "..."


@dataclass(frozen=True)
class TargetAnswer:
    status: int
    headers: RawHeaders
    # As received (compressed if the target compressed it): what the client gets.
    raw_body: bytes
    # Decompressed, for checking; `None` when it could not be (too large, unknown encoding).
    body: bytes | None
    sent_at: float
    received_at: float
    notes: tuple[str, ...] = field(default=())

    @cached_property
    def header_map(self) -> dict[str, str]:
        return header_dict(self.headers)

    @cached_property
    def json(self) -> Any:
        return parse_json(self.body)

    @property
    def media_type(self) -> str:
        return self.header_map.get("content-type", "").split(";")[0].strip().lower()


class TooLarge(Exception):
    pass


class UnknownEncoding(Exception):
    pass


def decode_body(raw: bytes, content_encoding: str | None, most: int) -> bytes:
    """`raw` without its Content-Encoding (gzip, deflate; identity), at most `most` bytes out:
    a small compressed answer cannot become a large buffer."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    data = raw
    for coding in reversed(codings):
        if coding == "identity":
            continue
        if coding in ("gzip", "x-gzip"):
            data = _inflate(data, zlib.MAX_WBITS | 16, most)
        elif coding == "deflate":
            try:
                data = _inflate(data, zlib.MAX_WBITS, most)
            except zlib.error:  # raw deflate, as some servers send it
                data = _inflate(data, -zlib.MAX_WBITS, most)
        else:
            raise UnknownEncoding(coding)
    if len(data) > most:
        raise TooLarge
    return data


def _inflate(data: bytes, wbits: int, most: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(data, most + 1)
    if len(out) > most or inflater.unconsumed_tail:
        raise TooLarge
    out += inflater.flush()
    if len(out) > most:
        raise TooLarge
    return out
