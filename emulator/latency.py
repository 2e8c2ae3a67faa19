"""Latency profiles: how long each API operation takes to answer, in real time.

A profile gives a distribution per operation (the contract's operationIds) and a default for the
others: `fixed`, `uniform` or `lognormal`, each with optional `min`/`max` clamps, in ms. Delays are
drawn from generators seeded by the profile's seed, one per operation, so the n-th call of an
operation waits the same on every run whatever the other operations do. `--latency-scale`
multiplies every delay; 0 switches them off without drawing.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Literal

from emulator import errors, fields
from emulator.faults import MAX_DELAY_MS
from emulator.operations import OPERATIONS, operation_of

SEED_MAX = 2**63 - 1
KINDS = ("fixed", "uniform", "lognormal")
# The standard normal's 99th percentile: a lognormal's p99 is median * exp(sigma * Z99).
Z99 = NormalDist().inv_cdf(0.99)

Kind = Literal["fixed", "uniform", "lognormal"]


@dataclass(frozen=True)
class Distribution:
    """`fixed`: `first` ms; `uniform`: from `first` to `second`; `lognormal`: median `first`,
    p99 `second`. Draws are clamped to `low`..`high` when given."""

    kind: Kind
    first: float
    second: float = 0.0
    low: float | None = None
    high: float | None = None

    def draw(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            value = self.first
        elif self.kind == "uniform":
            value = rng.uniform(self.first, self.second)
        else:
            sigma = math.log(self.second / self.first) / Z99
            value = self.first * math.exp(sigma * rng.gauss(0.0, 1.0))
        if self.low is not None:
            value = max(value, self.low)
        if self.high is not None:
            value = min(value, self.high)
        return min(value, MAX_DELAY_MS)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any]
        if self.kind == "fixed":
            body = {"fixed": self.first}
        elif self.kind == "uniform":
            body = {"uniform": {"min": self.first, "max": self.second}}
        else:
            body = {"lognormal": {"median": self.first, "p99": self.second}}
        if self.low is not None:
            body["min"] = self.low
        if self.high is not None:
            body["max"] = self.high
        return body


@dataclass(frozen=True)
class LatencyProfile:
    default: Distribution | None = None
    operations: dict[str, Distribution] = field(default_factory=dict)
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.default is not None:
            body["default"] = self.default.to_json()
        if self.operations:
            body["operations"] = {op: d.to_json() for op, d in self.operations.items()}
        body["seed"] = self.seed
        return body


def parse_latency(body: object) -> LatencyProfile:
    """`{"default"?: distribution, "operations"?: {operationId: distribution}, "seed"?}`."""
    if not isinstance(body, dict):
        raise errors.invalid_request("latency must be an object.")
    default = None
    if body.get("default") is not None:
        with fields.within("default"):
            default = parse_distribution(body["default"])
    operations: dict[str, Distribution] = {}
    given = body.get("operations")
    if given is not None:
        if not isinstance(given, dict):
            raise errors.invalid_request("operations must be an object.", "operations")
        for name, distribution in given.items():
            if name not in OPERATIONS:
                raise errors.validation_failed(
                    f"operations.{name}",
                    f"{name!r} is not an operation of the API: {', '.join(OPERATIONS)}.",
                )
            with fields.within(f"operations.{name}"):
                operations[name] = parse_distribution(distribution)
    seed = fields.whole(body, "seed", 0, SEED_MAX) or 0
    return LatencyProfile(default, operations, seed)


def parse_distribution(body: object) -> Distribution:
    """`{"fixed": ms}`, `{"uniform": {"min", "max"}}` or `{"lognormal": {"median", "p99"}}`, with
    optional `min` and `max` clamps beside it."""
    if not isinstance(body, dict):
        raise errors.invalid_request("A distribution must be an object.")
    given = [kind for kind in KINDS if body.get(kind) is not None]
    if len(given) != 1:
        raise errors.validation_failed(
            given[1] if given else "fixed",
            "Give one distribution: fixed, uniform or lognormal"
            + (f", not both {given[0]} and {given[1]}." if given else "."),
        )
    low = fields.number(body, "min", 0, MAX_DELAY_MS)
    high = fields.number(body, "max", 0, MAX_DELAY_MS)
    if low is not None and high is not None and low > high:
        raise errors.validation_failed("max", f"max ({high:g}) is below min ({low:g}).")
    kind: Kind = given[0]  # type: ignore[assignment]
    if kind == "fixed":
        ms = fields.number(body, "fixed", 0, MAX_DELAY_MS, required=True)
        assert ms is not None
        return Distribution("fixed", ms, low=low, high=high)
    inner = body[kind]
    if not isinstance(inner, dict):
        raise errors.invalid_request(f"{kind} must be an object.", kind)
    with fields.within(kind):
        names = ("min", "max") if kind == "uniform" else ("median", "p99")
        first, second = (
            fields.number(inner, name, 0, MAX_DELAY_MS, required=True) for name in names
        )
        assert first is not None and second is not None
        if kind == "lognormal" and first <= 0:
            raise errors.validation_failed("median", "median must be above 0.")
        if second < first:
            raise errors.validation_failed(
                names[1], f"{names[1]} ({second:g}) is below {names[0]} ({first:g})."
            )
    return Distribution(kind, first, second, low, high)


class Latency:
    """The delays of the profile in use, times `scale`."""

    def __init__(self, profile: LatencyProfile | None, scale: float = 1.0) -> None:
        self.profile = profile
        self.scale = scale
        self._off = profile is None or scale == 0 or not (profile.default or profile.operations)
        seed = profile.seed if profile is not None else 0
        # Seeding costs tens of µs each, on every reset: only for a profile in use.
        self._generators = (
            {} if self._off else {op: random.Random(f"{seed}:{op}") for op in OPERATIONS}
        )
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return not self._off

    def delay_ms(self, method: str, path: str) -> float:
        """The delay to add to this request (drawn now), in ms; 0 for other paths."""
        if self._off:
            return 0.0
        assert self.profile is not None
        operation = operation_of(method, path)
        if operation is None:
            return 0.0
        distribution = self.profile.operations.get(operation, self.profile.default)
        if distribution is None:
            return 0.0
        with self._lock:
            drawn = distribution.draw(self._generators[operation])
        return min(drawn * self.scale, MAX_DELAY_MS)
