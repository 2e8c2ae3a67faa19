"""The request journal: what API requests the emulator received, bounded in memory.

Entries keep the raw headers and (truncated) bodies; secrets are masked only when an entry is
shown, so recording stays cheap on the request path.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

BODY_CAPTURE_BYTES = 16 * 1024
_SECRET_KEYS = {"clientsecret", "accesstoken", "client_secret", "access_token"}
_MAYBE_SECRET = re.compile(r"secret|token|\\u", re.IGNORECASE)
_MASKED_HEADERS = {"authorization", "cookie", "set-cookie"}


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
    token_fingerprint: str | None = None
    retry_after: int | None = None
    pagination: dict[str, Any] | None = None
    request_headers: tuple[tuple[bytes, bytes], ...] = ()
    request_body: bytes = b""
    response_headers: tuple[tuple[bytes, bytes], ...] = ()
    response_body: bytes = b""

    def to_json(self, *, detail: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "sequence": self.sequence,
            "requestId": self.request_id,
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "clientId": self.client_id,
            "tokenFingerprint": self.token_fingerprint,
            "retryAfter": self.retry_after,
            "pagination": self.pagination,
            "durationMs": self.duration_ms,
        }
        if detail:
            body["request"] = {
                "headers": _headers(self.request_headers),
                "body": _masked_body(self.request_body),
            }
            body["response"] = {
                "headers": _headers(self.response_headers),
                "body": _masked_body(self.response_body),
            }
        return body


def _headers(raw: tuple[tuple[bytes, bytes], ...]) -> list[list[str]]:
    shown = []
    for name, value in raw:
        key = name.decode("latin-1")
        text = value.decode("latin-1")
        if key.lower() in _MASKED_HEADERS:
            scheme, _, secret = text.partition(" ")
            text = f"{scheme} ***" if secret else "***"
        shown.append([key, text])
    return shown


def _masked_body(raw: bytes) -> str:
    """JSON bodies with every secret-bearing value masked; other bodies only when they cannot
    be hiding one (a truncated or escaped key defeats any pattern, so those are withheld)."""
    try:
        return json.dumps(_masked(json.loads(raw)), ensure_ascii=False)
    except (ValueError, RecursionError):
        pass
    text = raw.decode("utf-8", "replace")
    if _MAYBE_SECRET.search(text):
        return f"[{len(raw)} bytes withheld: not JSON, and may hold a secret]"
    return text + ("…(truncated)" if len(raw) >= BODY_CAPTURE_BYTES else "")


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: "***" if key.casefold() in _SECRET_KEYS else _masked(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value


class Journal:
    """Oldest entries drop once `capacity` is reached.

    An entry is kept as its sequence and fields, and made a JournalEntry only when read: recording
    is on every API request's path, reading is rare."""

    def __init__(self, capacity: int) -> None:
        self._entries: deque[tuple[int, dict[str, Any]]] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._sequence = 0

    def record(self, **fields: Any) -> int:
        """Keep an entry; its sequence number."""
        with self._lock:
            self._sequence += 1
            self._entries.append((self._sequence, fields))
            return self._sequence

    def entries(self) -> list[JournalEntry]:
        with self._lock:
            kept = list(self._entries)
        return [JournalEntry(sequence=sequence, **fields) for sequence, fields in kept]

    def find(self, sequence: int) -> JournalEntry | None:
        with self._lock:
            for number, fields in self._entries:
                if number == sequence:
                    return JournalEntry(sequence=number, **fields)
            return None

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
