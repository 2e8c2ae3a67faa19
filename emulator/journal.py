"""The request journal: what API requests the emulator received, bounded in memory.

Entries keep the raw headers (packed into one bytes object each) and truncated bodies; secrets
are masked only when an entry is shown, so recording stays cheap on the request path. Every entry
has a fixed most bytes (ENTRY_MAX_BYTES), and the journal a fixed most in all (JOURNAL_MAX_BYTES):
the oldest entries go first.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from emulator.limits import HEADER_BYTES_MAX, URL_BYTES_MAX
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


def pack_headers(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Headers as they came on the wire (`name: value` lines), in one bytes object."""
    return b"".join([name + b": " + value + b"\r\n" for name, value in headers])


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
        self._entries: deque[tuple[int, dict[str, Any], int]] = deque()
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
        size = _entry_bytes(fields)
        with self._lock:
            self._sequence += 1
            self._entries.append((self._sequence, fields, size))
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

    def entries(self) -> list[JournalEntry]:
        with self._lock:
            kept = [(sequence, fields) for sequence, fields, _ in self._entries]
        masker = self._masker()
        return [JournalEntry(sequence=seq, masker=masker, **fields) for seq, fields in kept]

    def find(self, sequence: int) -> JournalEntry | None:
        with self._lock:
            found = next((fields for seq, fields, _ in self._entries if seq == sequence), None)
        if found is None:
            return None
        return JournalEntry(sequence=sequence, masker=self._masker(), **found)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
