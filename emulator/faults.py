"""Injected faults: the next N matching API requests fail with a status and/or wait."""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import dataclass, replace
from typing import Any

from emulator import errors, fields

MAX_DELAY_MS = 60_000
MAX_TIMES = 1_000_000


@dataclass(frozen=True)
class Fault:
    times: int
    method: str | None = None
    path: str | None = None
    status: int | None = None
    delay_ms: int = 0

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
            "times": self.times,
        }


def parse_fault(body: object) -> Fault:
    if not isinstance(body, dict):
        raise errors.invalid_request("The fault must be a JSON object.")
    times = fields.whole(body, "times", 1, MAX_TIMES, required=True)
    status = fields.whole(body, "status", 400, 599)
    delay_ms = fields.whole(body, "delayMs", 0, MAX_DELAY_MS)
    method = fields.text(body, "method")
    path = fields.text(body, "path")
    if status is None and not delay_ms:
        raise errors.validation_failed("status", "A fault needs a status, a delayMs, or both.")
    return Fault(
        times=times or 1,
        method=method.upper() if method else None,
        path=path,
        status=status,
        delay_ms=delay_ms or 0,
    )


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
                        self._faults[index] = replace(fault, times=fault.times - 1)
                    return fault
            return None
