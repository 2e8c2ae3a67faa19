"""The emulator's clock: the only place that reads the wall clock.

Token expiry, rate windows, visit times and `createdAt` stamps all come from a `Clock`. The
emulator's clock follows real time by default; tests freeze it, set it and advance it.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from emulator import errors

# Far enough for any test, near enough that datetime arithmetic never overflows.
EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


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


class _Reading(NamedTuple):
    """What a clock reads from: replaced whole on each change, so a reader needs no lock."""

    frozen_at: datetime | None
    frozen_timestamp: float
    offset: timedelta
    offset_seconds: float


class Clock:
    """Real time plus an offset, or a frozen instant. Thread-safe: changes take a lock, readings
    take the current `_Reading`."""

    def __init__(self, frozen_at: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._reading = _reading(frozen_at, timedelta(0))

    @property
    def _frozen_at(self) -> datetime | None:
        return self._reading.frozen_at

    @property
    def _offset(self) -> timedelta:
        return self._reading.offset

    @staticmethod
    def _wall() -> datetime:
        return datetime.fromtimestamp(time.time(), UTC)

    def now(self) -> datetime:
        reading = self._reading
        if reading.frozen_at is not None:
            return reading.frozen_at
        return self._wall() + reading.offset

    def timestamp(self) -> float:
        """`now().timestamp()` without building a datetime: every API request reads it."""
        reading = self._reading
        if reading.frozen_at is not None:
            return reading.frozen_timestamp
        return time.time() + reading.offset_seconds

    @property
    def frozen(self) -> bool:
        return self._reading.frozen_at is not None

    def set(self, moment: datetime, *, frozen: bool = True) -> None:
        """Jump to `moment`; frozen there unless `frozen` is false (then time runs on from it)."""
        with self._lock:
            if frozen:
                self._reading = _reading(moment, self._offset)
            else:
                self._reading = _reading(None, moment - self._wall())

    def advance(self, seconds: float) -> None:
        with self._lock:
            step = timedelta(seconds=seconds)
            if self._frozen_at is not None:
                self._reading = _reading(self._frozen_at + step, self._offset)
            else:
                self._reading = _reading(None, self._offset + step)

    def resume(self) -> None:
        """Let a frozen clock run again from where it stands."""
        with self._lock:
            if self._frozen_at is not None:
                self._reading = _reading(None, self._frozen_at - self._wall())


def _reading(frozen_at: datetime | None, offset: timedelta) -> _Reading:
    frozen_timestamp = frozen_at.timestamp() if frozen_at is not None else 0.0
    return _Reading(frozen_at, frozen_timestamp, offset, offset.total_seconds())


@dataclass(frozen=True)
class ClockChange:
    """Set the clock (`now`), move it on (`advance_seconds`), and/or freeze or let it run."""

    now: datetime | None = None
    advance_seconds: float | None = None
    frozen: bool | None = None

    def apply(self, clock: Clock) -> None:
        """Change `clock`; 422 when an advance would take it out of range."""
        if self.now is not None:
            clock.set(self.now, frozen=self.frozen is not False)
            return
        if self.advance_seconds is not None:
            # Compared before any arithmetic: an integer of 400 digits does not fit a float.
            if not self.advance_seconds <= LATEST.timestamp() - clock.timestamp():
                raise errors.validation_failed(
                    "advanceSeconds", "That moves the clock out of range."
                )
            clock.advance(self.advance_seconds)
        if self.frozen and not clock.frozen:
            clock.set(clock.now(), frozen=True)
        elif self.frozen is False:
            clock.resume()


def parse_clock_change(body: object) -> ClockChange:
    """`{"now": instant, "frozen"?}`, `{"advanceSeconds": n, "frozen"?}` or `{"frozen": bool}`.

    `now` is an ISO 8601 string (or a datetime, from a scenario file) from 1970-01-02 to
    9000-01-01, and freezes the clock there unless `frozen` is false. `advanceSeconds` moves
    the clock forward only: set `now` to go back."""
    if not isinstance(body, dict):
        raise errors.invalid_request("The request body must be a JSON object.")
    frozen = body.get("frozen")
    if frozen is not None and not isinstance(frozen, bool):
        raise errors.invalid_request("frozen must be a boolean.", "frozen")
    has_now, has_advance = body.get("now") is not None, body.get("advanceSeconds") is not None
    if has_now and has_advance:
        raise errors.validation_failed("now", "Give now or advanceSeconds, not both.")
    if has_now:
        return ClockChange(now=_moment(body["now"]), frozen=frozen)
    if has_advance:
        seconds = body["advanceSeconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise errors.invalid_request("advanceSeconds must be a number.", "advanceSeconds")
        if isinstance(seconds, float) and not math.isfinite(seconds):
            raise errors.validation_failed("advanceSeconds", "advanceSeconds must be finite.")
        if seconds < 0:
            raise errors.validation_failed(
                "advanceSeconds",
                f"advanceSeconds must not be negative ({seconds}): the clock only moves "
                "forward; set it to an earlier instant to go back.",
            )
        return ClockChange(advance_seconds=seconds, frozen=frozen)
    if frozen is not None:
        return ClockChange(frozen=frozen)
    raise errors.validation_failed("now", "Give now, advanceSeconds or frozen.")


def _moment(value: object) -> datetime:
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, str):
        try:
            moment = parse_timestamp(value)
        except (ValueError, OverflowError):
            raise errors.validation_failed(
                "now", f"now is not an ISO 8601 instant: {value!r}."
            ) from None
    else:
        raise errors.invalid_request("now must be an ISO 8601 string.", "now")
    if not EARLIEST <= moment <= LATEST:
        raise errors.validation_failed("now", "now must be between 1970-01-02 and 9000-01-01.")
    return moment
