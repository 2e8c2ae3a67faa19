"""Pacing under the target's rate limit, `Retry-After` parsing, and progress with time left."""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import TextIO

# Requests are spaced a little wider than the limit allows, so that network jitter never lets the
# server's sliding window see one request too many.
SAFETY_MARGIN = 0.05

_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
}
_RATE = re.compile(r"^\s*(\d+)\s*(?:/\s*([a-z]+?)s?)?\s*$")


@dataclass(frozen=True)
class Rate:
    count: int
    per_seconds: float

    @property
    def interval(self) -> float:
        """Seconds between two request starts, margin included."""
        return self.per_seconds / self.count * (1 + SAFETY_MARGIN)

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "h"}.get(self.per_seconds, f"{self.per_seconds:g}s")
        return f"{self.count}/{unit}"


def parse_rate(text: str) -> Rate:
    """`15/m`, `15/min`, `2/s`, `900/h`; a bare number is per minute."""
    match = _RATE.match(text.lower())
    if not match:
        raise ValueError(f"not a rate: {text!r} (try 15/m, 2/s or 900/h)")
    count = int(match.group(1))
    unit = match.group(2) or "m"
    if unit not in _UNITS:
        raise ValueError(f"unknown unit {unit!r} in rate {text!r} (use s, m or h)")
    if count < 1:
        raise ValueError("a rate must allow at least one request")
    return Rate(count, _UNITS[unit])


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    reference = now if now is not None else time.time()
    return max(0.0, moment.timestamp() - reference)


class Pacer:
    """Spaces request starts `rate.interval` apart; `None` sends as fast as asked."""

    def __init__(
        self,
        rate: Rate | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0

    @property
    def interval(self) -> float:
        return self.rate.interval if self.rate is not None else 0.0

    def wait(self) -> float:
        """Block until the next request may start; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        waited = start - now
        if waited > 0:
            self._sleep(waited)
        return waited

    def defer(self, seconds: float) -> None:
        """No request before `seconds` from now (a `Retry-After`)."""
        with self._lock:
            self._next = max(self._next, self._clock() + seconds)


def format_duration(seconds: float) -> str:
    seconds = max(0, math.ceil(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """Requests sent out of planned, and the time left at the paced rate, on one status line.

    On a terminal the line is redrawn in place; elsewhere (CI logs) a line is written every
    `log_every` requests or `log_seconds`, whichever comes first.
    """

    def __init__(
        self,
        stream: TextIO | None,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        log_every: int = 10,
        log_seconds: float = 15.0,
        label: str = "drift",
    ) -> None:
        self._stream = stream
        self._label = label
        self._interval = interval
        self._clock = clock
        self._tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self._log_every = log_every
        self._log_seconds = log_seconds
        self._lock = threading.Lock()
        self.planned = 0
        self.sent = 0
        self.phase = ""
        self._started = clock()
        self._last_log = self._started

    def plan(self, count: int) -> None:
        with self._lock:
            self.planned = max(self.sent, self.planned + count)

    def set_phase(self, phase: str) -> None:
        self.phase = phase
        self._emit(force=True)

    def tick(self) -> None:
        with self._lock:
            self.sent += 1
            self.planned = max(self.planned, self.sent)
        self._emit(force=False)

    def note(self, message: str) -> None:
        if self._stream is None:
            return
        if self._tty:
            self._stream.write("\r\033[K")
        self._stream.write(f"{self._label}: {message}\n")
        self._stream.flush()

    def time_left(self) -> float:
        left = self.planned - self.sent
        if self._interval > 0:
            return left * self._interval
        elapsed = self._clock() - self._started
        return left * (elapsed / self.sent) if self.sent else 0.0

    def line(self) -> str:
        percent = 100 * self.sent // self.planned if self.planned else 100
        phase = f"{self.phase}: " if self.phase else ""
        return (
            f"{self._label}: {phase}{self.sent}/{self.planned} requests to the target "
            f"({percent}%), about {format_duration(self.time_left())} left"
        )

    def finish(self) -> None:
        if self._stream is None:
            return
        elapsed = format_duration(self._clock() - self._started)
        if self._tty:
            self._stream.write("\r\033[K")
        self._stream.write(
            f"{self._label}: done, {self.sent} requests to the target in {elapsed}\n"
        )
        self._stream.flush()

    def _emit(self, *, force: bool) -> None:
        if self._stream is None:
            return
        if self._tty:
            self._stream.write("\r\033[K" + self.line())
            self._stream.flush()
            return
        now = self._clock()
        due = self.sent % self._log_every == 0 or now - self._last_log >= self._log_seconds
        if force or due:
            self._last_log = now
            self._stream.write(self.line() + "\n")
            self._stream.flush()
