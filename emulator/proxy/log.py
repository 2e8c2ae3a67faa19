"""The proxy's differences grouped by operation, kind and location, for `GET /_emulator/checks`.

A difference seen in many exchanges is one group with a count, the first and last journal
sequences and one example, however many exchanges showed it: bounded in groups and in what each
group keeps. Light on imports, since every emulator state holds one (empty under `serve`).
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from emulator.drift.grouping import Group, Grouping, Occurrence, by_operation

KEEP_PER_GROUP = 20
MOST_GROUPS = 500


class Recording(Protocol):
    def to_json(self) -> dict[str, Any]: ...


class CheckLog:
    """What the proxy's checks found, since the start or the last clear."""

    def __init__(self, target: str | None = None) -> None:
        self.target = target
        self.recording: Recording | None = None
        self._lock = threading.Lock()
        self._grouping: Grouping[Any] = Grouping(
            by_operation, keep=KEEP_PER_GROUP, most_groups=MOST_GROUPS
        )
        self.exchanges = 0
        self.with_differences = 0

    def add(self, occurrences: list[Occurrence[Any]]) -> None:
        """One checked exchange and the differences it had (none, for an `ok` one)."""
        with self._lock:
            self.exchanges += 1
            if occurrences:
                self.with_differences += 1
            for occurrence in occurrences:
                self._grouping.add(occurrence)

    def clear(self) -> None:
        with self._lock:
            self._grouping.clear()
            self.exchanges = 0
            self.with_differences = 0

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            groups = [_group_json(group) for group in self._grouping.groups()]
            overflow = self._grouping.overflow
            exchanges, with_differences = self.exchanges, self.with_differences
        return {
            "target": self.target,
            "exchanges": exchanges,
            "withDifferences": with_differences,
            "groups": groups,
            "ungrouped": overflow,
            "recording": self.recording.to_json() if self.recording is not None else None,
        }


def _group_json(group: Group[Any]) -> dict[str, Any]:
    example = group.example
    return {
        "operation": example.operation,
        "kind": group.kind,
        "location": example.location,
        "count": group.count,
        "first": group.first.seen_in,
        "last": group.last.seen_in,
        "entries": group.seen_in,
        "example": {
            "entry": example.seen_in,
            "request": getattr(example.item, "request", ""),
            "emulator": example.emulator,
            "target": example.target,
            "contractAgreesWith": example.contract,
            "detail": getattr(example.item, "detail", ""),
        },
    }
