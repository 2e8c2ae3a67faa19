"""The request journal: what API requests the emulator received, bounded in memory."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any


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

    def to_json(self) -> dict[str, Any]:
        raw = asdict(self)
        return {
            "sequence": raw["sequence"],
            "requestId": raw["request_id"],
            "time": raw["time"],
            "method": raw["method"],
            "path": raw["path"],
            "query": raw["query"],
            "status": raw["status"],
            "clientId": raw["client_id"],
            "durationMs": raw["duration_ms"],
        }


class Journal:
    """Oldest entries drop once `capacity` is reached."""

    def __init__(self, capacity: int) -> None:
        self._entries: deque[JournalEntry] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._sequence = 0

    def record(self, **fields: Any) -> JournalEntry:
        with self._lock:
            self._sequence += 1
            entry = JournalEntry(sequence=self._sequence, **fields)
            self._entries.append(entry)
            return entry

    def entries(self) -> list[JournalEntry]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
