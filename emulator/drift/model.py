"""What a drift run finds: differences (each with where, both answers and the contract's side),
the probes it skipped, and the list of known, accepted differences."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

Layer = Literal["differential", "conformance"]
Agreement = Literal["emulator", "target", "both", "neither", "unknown"]


@dataclass(frozen=True)
class Difference:
    """One difference. `location` is stable across runs, so a known-differences file can name it:
    `<probe>: <aspect>` for the differential layer, `conformance <operationId>: <failure>` for
    the conformance layer."""

    layer: Layer
    location: str
    request: str
    aspect: str
    kind: str
    emulator: str
    target: str
    contract: Agreement
    detail: str = ""
    curl: str | None = None
    accepted: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "location": self.location,
            "request": self.request,
            "aspect": self.aspect,
            "kind": self.kind,
            "emulator": self.emulator,
            "target": self.target,
            "contractAgreesWith": self.contract,
            "detail": self.detail,
            "curl": self.curl,
            "accepted": self.accepted,
        }


@dataclass(frozen=True)
class Skipped:
    location: str
    reason: str


def location_matches(pattern: str, location: str) -> bool:
    """`*` matches any text; everything else, brackets included, matches itself."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, location, flags=re.DOTALL) is not None


@dataclass(frozen=True)
class KnownDifference:
    location: str
    reason: str
    kind: str | None = None

    def matches(self, difference: Difference) -> bool:
        if self.kind is not None and self.kind != difference.kind:
            return False
        return location_matches(self.location, difference.location)


@dataclass
class KnownDifferences:
    entries: list[KnownDifference] = field(default_factory=list)
    used: set[int] = field(default_factory=set)

    @classmethod
    def load(cls, path: Path) -> KnownDifferences:
        """A YAML or JSON file: a list of `{location, reason, kind?}` (or `{accepted: [...]}`);
        `location` is a glob over difference locations."""
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(raw, dict):
            raw = raw.get("accepted", raw.get("differences"))
        if raw is None:
            return cls()
        if not isinstance(raw, list):
            raise ValueError(f"{path}: expected a list of accepted differences")
        entries = []
        for number, item in enumerate(raw, 1):
            if isinstance(item, str):
                item = {"location": item}
            if not isinstance(item, dict) or not isinstance(item.get("location"), str):
                raise ValueError(f"{path}: entry {number} needs a 'location' string")
            entries.append(
                KnownDifference(
                    location=item["location"],
                    reason=str(item.get("reason") or "listed as a known difference"),
                    kind=item.get("kind"),
                )
            )
        return cls(entries)

    def apply(self, difference: Difference) -> Difference:
        for index, entry in enumerate(self.entries):
            if entry.matches(difference):
                self.used.add(index)
                return replace(difference, accepted=entry.reason)
        return difference

    def unused(self) -> list[KnownDifference]:
        return [e for i, e in enumerate(self.entries) if i not in self.used]


@dataclass
class RunInfo:
    target: str
    emulator: str
    environment: str
    client_id: str
    rate_limit: str
    seed: int | None
    max_examples: int
    layers: list[str]
    writes_allowed: bool
    started_at: str = ""
    duration_seconds: float = 0.0
    target_requests: int = 0
    emulator_requests: int = 0
    estimate_seconds: float = 0.0


@dataclass
class DriftResult:
    info: RunInfo
    differences: list[Difference] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    probes: list[str] = field(default_factory=list)
    operations: list[str] = field(default_factory=list)
    unused_known: list[KnownDifference] = field(default_factory=list)

    @property
    def drift(self) -> list[Difference]:
        return [d for d in self.differences if d.accepted is None]

    @property
    def accepted(self) -> list[Difference]:
        return [d for d in self.differences if d.accepted is not None]

    def exit_code(self) -> int:
        if self.drift:
            return 1
        return 2 if self.errors else 0

    def to_json(self) -> dict[str, Any]:
        info = self.info
        return {
            "version": 1,
            "result": {0: "no-drift", 1: "drift", 2: "incomplete"}[self.exit_code()],
            "run": {
                "target": info.target,
                "emulator": info.emulator,
                "environment": info.environment,
                "clientId": info.client_id,
                "rateLimit": info.rate_limit,
                "seed": info.seed,
                "maxExamples": info.max_examples,
                "layers": info.layers,
                "writesAllowed": info.writes_allowed,
                "startedAt": info.started_at,
                "durationSeconds": round(info.duration_seconds, 1),
                "estimatedSeconds": round(info.estimate_seconds, 1),
                "requests": {"target": info.target_requests, "emulator": info.emulator_requests},
            },
            "summary": {
                "differences": len(self.drift),
                "accepted": len(self.accepted),
                "skipped": len(self.skipped),
                "errors": len(self.errors),
            },
            "differences": [d.to_json() for d in self.differences],
            "skipped": [{"location": s.location, "reason": s.reason} for s in self.skipped],
            "errors": list(self.errors),
            "unusedKnownDifferences": [
                {"location": k.location, "reason": k.reason} for k in self.unused_known
            ],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False)
