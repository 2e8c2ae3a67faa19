"""Injected faults: API requests that fail with a status, wait, or meet a network failure.

A fault comes from the fault plan (the next N matching requests: `POST /_emulator/faults`, the
handle's `fault()`) or from a request's own `X-Emulator-Fault` header (`fault_header`), and is
parsed by `parse_fault` either way. What a network kind does on the wire is `network_faults`'.
"""

from __future__ import annotations

import fnmatch
import math
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from emulator import errors, fields
from emulator.fault_header import HEADER, fault_body
from emulator.network_faults import connection_of

if TYPE_CHECKING:
    from emulator.state import EmulatorState

MAX_DELAY_MS = 60_000
MAX_TIMES = 1_000_000
MAX_RETRY_AFTER = 86_400
SEED_MAX = 2**63 - 1
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# A 429 without `retryAfter` still says when to retry, as every 429 of the API does.
DEFAULT_RETRY_AFTER = 1
# The network kinds: the first three send no HTTP response at all; all but dribble need a socket.
NETWORK_KINDS = ("reset", "empty", "garbage", "truncated", "dribble")
NO_RESPONSE_KINDS = ("reset", "empty", "garbage")
SOCKET_KINDS = ("reset", "empty", "garbage", "truncated")
DEFAULT_DRIBBLE_MS = 1000


@dataclass(frozen=True)
class Fault:
    times: int  # uses left
    method: str | None = None
    path: str | None = None
    status: int | None = None
    delay_ms: int = 0
    retry_after: int | None = None
    fired: int = 0  # uses so far
    network: str | None = None  # one of NETWORK_KINDS
    dribble_ms: int | None = None  # with network "dribble" only
    # "control" (the fault plan), "header" (X-Emulator-Fault) or "scenario" (a scenario's, which
    # the unfired-fault report leaves out: it is the scenario's setting, not a test's ask)
    source: str = "control"
    # Intermittent: only every n-th matching request, or each with this probability (drawn from
    # a generator seeded by `seed`, so a run repeats); the others pass as if it were not there.
    every: int | None = None
    probability: float | None = None
    seed: int | None = None
    matched: int = 0  # matching requests so far, fired or not
    _draws: random.Random | None = field(default=None, compare=False, repr=False)

    @property
    def sends_no_response(self) -> bool:
        """The connection is cut before any HTTP response (reset, empty, garbage)."""
        return self.network in NO_RESPONSE_KINDS

    @property
    def needs_socket(self) -> bool:
        return self.network in SOCKET_KINDS

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method.upper():
            return False
        return self.path is None or fnmatch.fnmatchcase(path, self.path)

    def effect_json(self) -> dict[str, Any]:
        """What the fault does, as the journal says which fault ran."""
        return {
            "status": self.status,
            "delayMs": self.delay_ms,
            "retryAfter": self.retry_after,
            "network": self.network,
            "dribbleMs": self.dribble_ms,
            "source": self.source,
        }

    def _fires(self) -> bool:
        """For a matching request (counted in `matched` already): whether this one fails."""
        if self.every is not None:
            return self.matched % self.every == 0
        if self._draws is not None and self.probability is not None:
            return self._draws.random() < self.probability
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "delayMs": self.delay_ms,
            "retryAfter": self.retry_after,
            "network": self.network,
            "dribbleMs": self.dribble_ms,
            "times": self.times,
            "fired": self.fired,
            **{
                name: value
                for name, value in (
                    ("every", self.every),
                    ("probability", self.probability),
                    ("seed", self.seed),
                )
                if value is not None
            },
        }

    def __str__(self) -> str:
        effect = [f"status {self.status}"] if self.status is not None else []
        effect += [f"Retry-After {self.retry_after}"] if self.retry_after is not None else []
        effect += [f"{self.delay_ms} ms delay"] if self.delay_ms else []
        if self.network is not None:
            over = f" over {self.dribble_ms} ms" if self.dribble_ms is not None else ""
            effect.append(f"network {self.network}{over}")
        effect += [f"every {self.every} requests"] if self.every is not None else []
        effect += [f"probability {self.probability:g}"] if self.probability is not None else []
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
    network = fields.text(body, "network")
    dribble_ms = fields.whole(body, "dribbleMs", 1, MAX_DELAY_MS)
    if network is not None and network not in NETWORK_KINDS:
        raise errors.validation_failed(
            "network", f"network must be one of {', '.join(NETWORK_KINDS)}, not {network!r}."
        )
    every = fields.whole(body, "every", 1, MAX_TIMES)
    probability = fields.number(body, "probability", 0, 1)
    seed = fields.whole(body, "seed", 0, SEED_MAX)
    if every is not None and probability is not None:
        raise errors.validation_failed(
            "probability", "Give every or probability, not both: a fault is one or the other."
        )
    if probability == 0:
        raise errors.validation_failed("probability", "probability must be above 0.")
    if seed is not None and probability is None:
        raise errors.validation_failed("seed", "seed goes with probability.")
    if retry_after is not None and status is None:
        raise errors.validation_failed("retryAfter", "retryAfter needs a status to go with it.")
    if dribble_ms is not None and network != "dribble":
        raise errors.validation_failed("dribbleMs", "dribbleMs goes with network 'dribble' only.")
    if status is None and not delay_ms and network is None:
        raise errors.validation_failed(
            "status", "A fault needs a status, a network, a delayMs, or more than one of them."
        )
    if network in NO_RESPONSE_KINDS and status is not None:
        raise errors.validation_failed(
            "status", f"network {network!r} sends no HTTP response, so it takes no status."
        )
    if network == "dribble" and dribble_ms is None:
        dribble_ms = DEFAULT_DRIBBLE_MS
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
        network=network,
        dribble_ms=dribble_ms,
        every=every,
        probability=probability,
        seed=seed if seed is not None or probability is None else 0,
    )


def require_socket(fault: Fault, has_socket: bool) -> None:
    """Refuse (422, field `network`) a kind that needs a socket where the request has none."""
    if fault.needs_socket and not has_socket:
        raise errors.validation_failed(
            "network",
            f"network {fault.network!r} needs a socket to act on, and this emulator is served in "
            "process (no socket): use the `emulator` fixture or `8here-emulator serve` for it.",
        )


def parse_fault_header(value: str, has_socket: bool = True) -> Fault | None:
    """The fault an `X-Emulator-Fault` value asks for (None for an empty value), for one
    request; a bad value, or a kind that needs a socket the request has not, raises 400
    `invalid_header` naming the header."""
    body = fault_body(value)
    if not body:
        return None
    try:
        fault = parse_fault({**body, "times": 1})
        require_socket(fault, has_socket)
    except errors.ApiError as error:
        raise errors.invalid_header(HEADER, error.message) from None
    return replace(fault, source="header")


def take_fault(state: EmulatorState, scope: Mapping[str, Any], ticket: int) -> Fault | None:
    """The fault this API request meets: its `X-Emulator-Fault` header's when it has one and
    request faults are on (`--no-request-faults` and `--no-control` turn them off), else the
    first planned fault that matches it, used up by one. Raises the ApiError to answer for a bad
    header, or a kind that needs a socket where there is none."""
    settings = state.settings
    if settings.request_faults and settings.control:
        values = [v for k, v in scope["headers"] if k == b"x-emulator-fault"]
        if len(values) > 1:
            raise errors.invalid_header(HEADER, f"send it once, not {len(values)} times.")
        has_socket = connection_of(scope) is not None
        fault = parse_fault_header(values[0].decode("latin-1"), has_socket) if values else None
        if fault is not None:
            return fault
    fault = state.fence.if_current(
        ticket, lambda: state.faults.take(scope["method"], scope["path"])
    )
    if fault is not None:
        require_socket(fault, connection_of(scope) is not None)
    return fault


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
        """Add a fault; one with a probability draws from a generator of its own, seeded anew."""
        if fault.probability is not None:
            fault = replace(fault, _draws=random.Random(fault.seed or 0))
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def armed(self) -> bool:
        """Whether any fault is pending (a hint, read without the lock: `take` decides)."""
        return bool(self._faults)

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def take(self, method: str, path: str) -> Fault | None:
        """The first fault matching this request, counted down by one use."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.matches(method, path):
                    if fault.every is not None or fault.probability is not None:
                        fault = replace(fault, matched=fault.matched + 1)
                        self._faults[index] = fault
                        if not fault._fires():
                            continue
                    if fault.times <= 1:
                        del self._faults[index]
                    else:
                        self._faults[index] = replace(
                            fault, times=fault.times - 1, fired=fault.fired + 1
                        )
                    return replace(fault, times=1, fired=fault.fired + 1)
            return None
