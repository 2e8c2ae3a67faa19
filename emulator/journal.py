"""The request journal: what API requests the emulator received, bounded in memory.

Entries keep the raw headers and truncated bodies; secrets are masked only when an entry is
shown, so recording stays cheap on the request path. The request layer records an `Exchange`: the
references it holds anyway, packed, joined and cut to their bounds only when the entry is first
read. Every entry has a fixed most bytes (ENTRY_MAX_BYTES), and the journal a fixed most in all
(JOURNAL_MAX_BYTES): the oldest entries go first.
"""

from __future__ import annotations

import functools
import math
import threading
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from emulator.clock import format_timestamp
from emulator.limits import HEADER_BYTES_MAX, URL_BYTES_MAX, header_bytes
from emulator.masking import Masker

BODY_CAPTURE_BYTES = 16 * 1024
# Request headers over HEADER_BYTES_MAX are refused (431) before they reach the journal; a
# response's headers are the emulator's own, a few hundred bytes.
HEADERS_CAPTURE_BYTES = HEADER_BYTES_MAX
JOURNAL_MAX_BYTES = 32 * 1024 * 1024
_CAPPED = {
    "path": URL_BYTES_MAX,
    "query": URL_BYTES_MAX,
    "request_headers": HEADERS_CAPTURE_BYTES,
    "response_headers": HEADERS_CAPTURE_BYTES,
    "request_body": BODY_CAPTURE_BYTES,
    "response_body": BODY_CAPTURE_BYTES,
}
ENTRY_MAX_BYTES = sum(_CAPPED.values())
_UNMASKED = Masker()


def pack_headers(headers: Collection[tuple[bytes, bytes]]) -> bytes:
    """Headers as they came on the wire (`name: value` lines), in one bytes object."""
    return b"\r\n".join(map(b": ".join, headers)) + b"\r\n" if headers else b""


@functools.lru_cache(maxsize=4)
def _stamp(second: int) -> str:
    """`format_timestamp` of a whole second: entries of the same second share one string."""
    return format_timestamp(datetime.fromtimestamp(second, UTC))


class Exchange:
    """One request and its answer as the request layer saw them, for `Journal.record_exchange`:
    what it holds anyway (header lists, body chunks of at most BODY_CAPTURE_BYTES in all, the
    handler's notes), made into an entry's fields when the entry is first read."""

    __slots__ = (
        "check",
        "client_id",
        "fault",
        "latency_ms",
        "method",
        "pagination",
        "path",
        "query",
        "received_at",
        "request_body",
        "request_headers",
        "request_id",
        "response_body",
        "response_headers",
        "seconds",
        "size",
        "status",
        "token_fingerprint",
    )

    def __init__(
        self,
        request_id: str,
        received_at: float,
        method: str,
        path: str,
        query: bytes,
        request_headers: list[tuple[bytes, bytes]],
        request_head_bytes: int,
        request_body: list[bytes],
        status: int,
        response_headers: list[tuple[bytes, bytes]],
        response_body: list[bytes],
        seconds: float,
        client_id: str | None,
        token_fingerprint: str | None,
        pagination: dict[str, Any] | None,
        latency_ms: float = 0.0,
        fault: dict[str, Any] | None = None,
        check: EntryCheck | None = None,
    ) -> None:
        self.request_id = request_id
        self.received_at = received_at
        self.method = method
        self.path = path
        self.query = query
        self.request_headers = request_headers
        self.request_body = request_body
        self.status = status
        self.response_headers = response_headers
        self.response_body = response_body
        self.seconds = seconds
        self.client_id = client_id
        self.token_fingerprint = token_fingerprint
        self.pagination = pagination
        self.latency_ms = latency_ms
        self.fault = fault
        self.check = check
        # What the entry will take, as `Journal.record` counts it (each part within its bound;
        # header_bytes is the length of the packed headers).
        self.size = (
            (check.size_bytes() if check is not None else 0)
            + min(request_head_bytes, HEADERS_CAPTURE_BYTES)
            + min(len(path) + len(query), 2 * URL_BYTES_MAX)
            + sum(map(len, request_body))
            + sum(map(len, response_body))
            + min(header_bytes(response_headers), HEADERS_CAPTURE_BYTES)
        )

    def fields(self) -> dict[str, Any]:
        """The entry's fields, as `Journal.record` takes them."""
        retry_after = None
        if self.status == 429:
            value = next(
                (v for k, v in reversed(self.response_headers) if k == b"retry-after"), b""
            )
            retry_after = int(value) if value.isdigit() else None
        return {
            "request_id": self.request_id,
            "time": _stamp(math.floor(self.received_at)),
            "method": self.method,
            "path": self.path[:URL_BYTES_MAX],
            "query": self.query[:URL_BYTES_MAX].decode("latin-1"),
            "status": self.status,
            "client_id": self.client_id,
            "token_fingerprint": self.token_fingerprint,
            "retry_after": retry_after,
            "pagination": self.pagination,
            "duration_ms": round(self.seconds * 1000, 3),
            "latency_ms": self.latency_ms,
            "fault": self.fault,
            "check": self.check,
            "request_headers": pack_headers(self.request_headers)[:HEADERS_CAPTURE_BYTES],
            "request_body": b"".join(self.request_body)[:BODY_CAPTURE_BYTES],
            "response_headers": pack_headers(self.response_headers)[:HEADERS_CAPTURE_BYTES],
            "response_body": b"".join(self.response_body)[:BODY_CAPTURE_BYTES],
        }


def unpack_headers(packed: bytes) -> list[tuple[str, str]]:
    lines = packed.decode("latin-1").split("\r\n")
    return [(name, value) for name, _, value in (line.partition(": ") for line in lines if line)]


class EntryCheck(Protocol):
    """What was checked about an entry's exchange (the proxy's checks): shown with the entry
    (masked like it), and told the entry's sequence once it is recorded, for the headers it adds
    to the answer."""

    def summary(self) -> dict[str, Any]: ...

    def detail(self, masker: Masker) -> dict[str, Any]: ...

    def recorded(self, sequence: int) -> list[tuple[str, str]]: ...

    def size_bytes(self) -> int:
        """About what it holds, in bytes: it counts towards the journal's bound."""
        ...


@dataclass(frozen=True)
class JournalEntry:
    sequence: int
    request_id: str
    time: str
    method: str
    path: str
    query: str
    status: int
    client_id: str | None
    duration_ms: float
    latency_ms: float = 0.0  # the delay the emulator added (latency profile and fault); in duration
    token_fingerprint: str | None = None
    retry_after: int | None = None
    pagination: dict[str, Any] | None = None
    fault: dict[str, Any] | None = None  # the injected fault that ran (Fault.effect_json)
    request_headers: bytes = b""
    request_body: bytes = b""
    response_headers: bytes = b""
    response_body: bytes = b""
    masker: Masker = field(default=_UNMASKED, repr=False, compare=False)
    check: EntryCheck | None = None

    def to_json(self, *, detail: bool = False) -> dict[str, Any]:
        mask = self.masker
        body: dict[str, Any] = {
            "sequence": self.sequence,
            "requestId": self.request_id,
            "time": self.time,
            "method": self.method,
            "path": mask.text(self.path),
            "query": mask.query(self.query),
            "status": self.status,
            "clientId": self.client_id,
            "tokenFingerprint": self.token_fingerprint,
            "retryAfter": self.retry_after,
            "pagination": self.pagination,
            "fault": self.fault,
            "durationMs": self.duration_ms,
            "latencyMs": self.latency_ms,
        }
        if detail:
            body["request"] = {
                "headers": self._headers(self.request_headers),
                "body": self._body(self.request_body),
            }
            body["response"] = {
                "headers": self._headers(self.response_headers),
                "body": self._body(self.response_body),
            }
        if self.check is not None:
            body["check"] = self.check.detail(mask) if detail else self.check.summary()
        return body

    def _headers(self, packed: bytes) -> list[list[str]]:
        return [[name, self.masker.header(name, value)] for name, value in unpack_headers(packed)]

    def _body(self, raw: bytes) -> str:
        return self.masker.body(raw, truncated=len(raw) >= BODY_CAPTURE_BYTES)


def _entry_bytes(fields: dict[str, Any]) -> int:
    check = fields.get("check")
    kept = check.size_bytes() if check is not None else 0
    return kept + sum(len(fields.get(name) or b"") for name in _CAPPED)


class Journal:
    """Oldest entries drop once `capacity` entries or JOURNAL_MAX_BYTES are reached.

    An entry is kept as its sequence and fields, and made a JournalEntry only when read: recording
    is on every API request's path, reading is rare. `known_secrets` gives the secrets to mask
    wherever they appear when entries are shown."""

    def __init__(
        self,
        capacity: int,
        known_secrets: Callable[[], Iterable[str]] = tuple,
        max_bytes: int = JOURNAL_MAX_BYTES,
    ) -> None:
        # (sequence, fields or an Exchange not read yet, size)
        self._entries: deque[tuple[int, dict[str, Any] | Exchange, int]] = deque()
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._bytes = 0
        self._known_secrets = known_secrets
        self._lock = threading.Lock()
        self._sequence = 0

    def record(self, **fields: Any) -> int:
        """Keep an entry, each of its parts cut to its bound; its sequence number."""
        for name, limit in _CAPPED.items():
            value = fields.get(name)
            if value is not None and len(value) > limit:
                fields[name] = value[:limit]
        return self._keep(fields, _entry_bytes(fields))

    def record_exchange(self, exchange: Exchange) -> int:
        """Keep an exchange of the request layer; its sequence number. Its fields are made when
        it is first read: recording is on every API request's path, reading is rare."""
        return self._keep(exchange, exchange.size)

    def _keep(self, entry: dict[str, Any] | Exchange, size: int) -> int:
        with self._lock:
            self._sequence += 1
            self._entries.append((self._sequence, entry, size))
            self._bytes += size
            while len(self._entries) > self._capacity or self._bytes > self._max_bytes:
                self._bytes -= self._entries.popleft()[2]
            return self._sequence

    @property
    def size_bytes(self) -> int:
        """What the kept entries' headers, bodies, paths and queries take, in bytes."""
        return self._bytes

    def _masker(self) -> Masker:
        return Masker(self._known_secrets())

    def _read(self) -> list[tuple[int, dict[str, Any]]]:
        """Every kept entry's sequence and fields; an Exchange read for the first time is kept
        as its fields from then on."""
        with self._lock:
            kept = list(self._entries)
        made = {}
        read = []
        for index, (sequence, entry, _) in enumerate(kept):
            if isinstance(entry, Exchange):
                entry = made[index] = entry.fields()
            read.append((sequence, entry))
        if made:
            with self._lock:  # in place, unless the entry has gone meanwhile
                first = self._entries[0][0] if self._entries else 0
                for index, fields in made.items():
                    at = kept[index][0] - first
                    if 0 <= at < len(self._entries) and self._entries[at][0] == kept[index][0]:
                        self._entries[at] = (kept[index][0], fields, kept[index][2])
        return read

    def entries(self) -> list[JournalEntry]:
        masker = self._masker()
        return [JournalEntry(sequence=seq, masker=masker, **fields) for seq, fields in self._read()]

    def find(self, sequence: int) -> JournalEntry | None:
        found = next((fields for seq, fields in self._read() if seq == sequence), None)
        if found is None:
            return None
        return JournalEntry(sequence=sequence, masker=self._masker(), **found)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
