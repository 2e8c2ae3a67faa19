"""The emulator's clock: the only place that reads the wall clock.

Token expiry, rate windows, visit times and `createdAt` stamps all come from a `Clock`. The
emulator's clock follows real time by default; tests freeze it, set it and advance it.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


def format_timestamp(moment: datetime) -> str:
    """UTC `YYYY-MM-DDTHH:MM:SSZ`, whole seconds, as on the wire."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO 8601 instant; a naive one is taken as UTC. Raises ValueError, also for an
    instant that UTC cannot represent (year 1 with a positive offset)."""
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(f"{text} is out of range in UTC") from exc


class Clock:
    """Real time plus an offset, or a frozen instant. Thread-safe."""

    def __init__(self, frozen_at: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        self._frozen_at = frozen_at

    @staticmethod
    def _wall() -> datetime:
        return datetime.fromtimestamp(time.time(), UTC)

    def now(self) -> datetime:
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return self._wall() + self._offset

    def timestamp(self) -> float:
        """`now().timestamp()` without building a datetime: every API request reads it."""
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at.timestamp()
            return time.time() + self._offset.total_seconds()

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def set(self, moment: datetime, *, frozen: bool = True) -> None:
        """Jump to `moment`; frozen there unless `frozen` is false (then time runs on from it)."""
        with self._lock:
            if frozen:
                self._frozen_at = moment
            else:
                self._frozen_at = None
                self._offset = moment - self._wall()

    def advance(self, seconds: float) -> None:
        with self._lock:
            step = timedelta(seconds=seconds)
            if self._frozen_at is not None:
                self._frozen_at += step
            else:
                self._offset += step

    def resume(self) -> None:
        """Let a frozen clock run again from where it stands."""
        with self._lock:
            if self._frozen_at is not None:
                self._offset = self._frozen_at - self._wall()
                self._frozen_at = None
