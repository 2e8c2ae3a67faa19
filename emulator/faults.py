"""Injected faults: the next N matching API requests fail with a status and/or wait."""

from __future__ import annotations

import fnmatch
import math
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from emulator import errors, fields

if TYPE_CHECKING:
    from emulator.state import EmulatorState

MAX_DELAY_MS = 60_000
MAX_TIMES = 1_000_000
MAX_RETRY_AFTER = 86_400
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# A 429 without `retryAfter` still says when to retry, as every 429 of the API does.
DEFAULT_RETRY_AFTER = 1


@dataclass(frozen=True)
class Fault:
    times: int  # uses left
    method: str | None = None
    path: str | None = None
    status: int | None = None
    delay_ms: int = 0
    retry_after: int | None = None
    fired: int = 0  # uses so far

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method.upper():
            return False
        return self.path is None or fnmatch.fnmatchcase(path, self.path)

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "delayMs": self.delay_ms,
            "retryAfter": self.retry_after,
            "times": self.times,
            "fired": self.fired,
        }

    def __str__(self) -> str:
        effect = [f"status {self.status}"] if self.status is not None else []
        effect += [f"Retry-After {self.retry_after}"] if self.retry_after is not None else []
        effect += [f"{self.delay_ms} ms delay"] if self.delay_ms else []
        where = f"{self.method or 'any method'} {self.path or 'any path'}"
        return f"{', '.join(effect)} on {where}: fired {self.fired} of {self.fired + self.times}"


def parse_fault(body: object) -> Fault:
    if not isinstance(body, dict):
        raise errors.invalid_request("The fault must be a JSON object.")
    times = fields.whole(body, "times", 1, MAX_TIMES, required=True)
    status = fields.whole(body, "status", 400, 599)
    delay_ms = fields.whole(body, "delayMs", 0, MAX_DELAY_MS)
    retry_after = fields.whole(body, "retryAfter", 1, MAX_RETRY_AFTER)
    method = fields.text(body, "method")
    path = fields.text(body, "path")
    if status is None and not delay_ms:
        raise errors.validation_failed("status", "A fault needs a status, a delayMs, or both.")
    if retry_after is not None and status is None:
        raise errors.validation_failed("retryAfter", "retryAfter needs a status to go with it.")
    if method is not None and method.upper() not in METHODS:
        raise errors.validation_failed("method", f"method must be one of {', '.join(METHODS)}.")
    if path is not None and not path.startswith("/"):
        raise errors.validation_failed(
            "path", f"path must start with '/' (a request's path always does), not {path!r}."
        )
    if path is not None and "?" in path:
        raise errors.validation_failed(
            "path", "path must not hold '?': faults match the path only, never the query string."
        )
    if status == 429 and retry_after is None:
        retry_after = DEFAULT_RETRY_AFTER
    return Fault(
        times=times or 1,
        method=method.upper() if method else None,
        path=path,
        status=status,
        delay_ms=delay_ms or 0,
        retry_after=retry_after,
    )


def injected_error(
    state: EmulatorState, fault: Fault, authorization: str | None
) -> errors.ApiError:
    """What a fault with a status answers: `Retry-After` when it has one and, on a 429, the
    rate-limit headers of the caller's window (when its token is good) as if that window were
    used up until `Retry-After` ends. The window itself is left as it is. The one place that
    makes an injected error, whatever asked for it."""
    assert fault.status is not None
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    if fault.status == 429:
        try:
            principal = state.tokens.authenticate(authorization)
        except errors.ApiError:
            principal = None
        if principal is not None:
            ends = state.clock.timestamp() + (fault.retry_after or 0)
            headers["X-RateLimit-Limit"] = str(principal.rate_limit)
            headers["X-RateLimit-Remaining"] = "0"
            headers["X-RateLimit-Reset"] = str(math.ceil(ends))
    return errors.injected_fault(fault.status, headers)


class FaultPlan:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def take(self, method: str, path: str) -> Fault | None:
        """The first fault matching this request, counted down by one use."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.matches(method, path):
                    if fault.times <= 1:
                        del self._faults[index]
                    else:
                        self._faults[index] = replace(
                            fault, times=fault.times - 1, fired=fault.fired + 1
                        )
                    return replace(fault, times=1, fired=fault.fired + 1)
            return None
