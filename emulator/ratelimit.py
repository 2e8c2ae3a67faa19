"""A sliding 60-second window per key (an application, or a workspace that its apps share)."""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

from emulator.clock import Clock

WINDOW_SECONDS = 60


class Decision(NamedTuple):
    """One request counted against its window (a named tuple: made on every API request)."""

    allowed: bool
    limit: int
    remaining: int
    reset_epoch: int
    retry_after: int

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """`X-RateLimit-Limit`, `-Remaining` and `-Reset`, as ASGI raw headers."""
        return [
            (b"x-ratelimit-limit", b"%d" % self.limit),
            (b"x-ratelimit-remaining", b"%d" % self.remaining),
            (b"x-ratelimit-reset", b"%d" % self.reset_epoch),
        ]


@dataclass(frozen=True)
class WindowState:
    key: str
    used: int
    limit: int
    reset_epoch: int


class RateLimiter:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, deque[float]] = {}
        self._limits: dict[str, int] = {}

    def acquire(self, key: str, limit: int) -> Decision:
        """Count one request against `key` if the window allows it; exact under concurrency."""
        with self._lock:
            now = self._clock.timestamp()
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = deque()
            self._limits[key] = limit
            _expire(window, now)
            allowed = len(window) < limit
            if allowed:
                window.append(now)
            oldest = window[0] if window else now
            frees_at = oldest + WINDOW_SECONDS
            return Decision(
                allowed=allowed,
                limit=limit,
                remaining=max(limit - len(window), 0),
                reset_epoch=math.ceil(frees_at),
                retry_after=0 if allowed else max(1, math.ceil(frees_at - now)),
            )

    def fill(self, key: str, limit: int, stamps: list[float]) -> None:
        """Count requests made at `stamps` (epoch seconds) against `key`'s window, as if they had
        come then (a scenario's `usage`)."""
        with self._lock:
            window = self._windows.get(key, deque())
            self._windows[key] = deque(sorted([*window, *stamps]))
            self._limits[key] = limit

    def windows(self) -> dict[str, tuple[int, list[float]]]:
        """Each window's limit and the times of the requests it still counts."""
        with self._lock:
            now = self._clock.timestamp()
            for window in self._windows.values():
                _expire(window, now)
            return {
                key: (self._limits[key], list(window))
                for key, window in sorted(self._windows.items())
                if window
            }

    def states(self) -> list[WindowState]:
        with self._lock:
            now = self._clock.timestamp()
            result = []
            for key, window in sorted(self._windows.items()):
                _expire(window, now)
                frees_at = (window[0] if window else now) + WINDOW_SECONDS
                result.append(WindowState(key, len(window), self._limits[key], math.ceil(frees_at)))
            return result


def _expire(window: deque[float], now: float) -> None:
    while window and window[0] <= now - WINDOW_SECONDS:
        window.popleft()
