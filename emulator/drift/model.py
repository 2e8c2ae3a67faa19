"""What a drift run finds: differences (each with where, both answers and the contract's side)
grouped by cause, the probes it skipped, and the list of known, accepted differences."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from emulator.drift.grouping import Group, Occurrence, group

Layer = Literal["differential", "conformance"]
Agreement = Literal["emulator", "target", "both", "neither", "unknown"]


@dataclass(frozen=True)
class Difference:
    """One difference. `location` is stable across runs, so a known-differences file can name it:
    `<probe>: <aspect>` for the differential layer, `conformance <operationId>: <failure>` for
    the conformance layer. `cause` names its group: the same difference seen in other probes
    (a missing header, a renamed field) has the same cause, and is one row of the report."""

    layer: Layer
    location: str
    request: str
    aspect: str
    kind: str
    emulator: str
    target: str
    contract: Agreement
    probe: str
    operation: str
    cause: str
    detail: str = ""
    curl: str | None = None
    accepted: str | None = None
    # The places in the answer it is about, named as contract checks name them (`status`,
    # `header X-RateLimit-Remaining`, `body $.data[*].clicks`); `*` for all of them.
    places: tuple[str, ...] = ()

    def occurrence(self) -> Occurrence[Difference]:
        where = self.location.split(": ", 1)[-1] if self.layer == "conformance" else self.aspect
        return Occurrence(
            kind=self.kind,
            cause=self.cause,
            location=where,
            operation=self.operation,
            seen_in=self.probe,
            emulator=self.emulator,
            target=self.target,
            contract=self.contract,
            item=self,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "location": self.location,
            "probe": self.probe,
            "operation": self.operation,
            "cause": self.cause,
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
    """An accepted difference: a glob over single locations (`location`), over the report's
    groups (`group`, a cause as the report names it), or both; `kind` narrows either."""

    reason: str
    location: str | None = None
    group: str | None = None
    kind: str | None = None

    def matches(self, difference: Difference) -> bool:
        if self.kind is not None and self.kind != difference.kind:
            return False
        if self.location is not None and not location_matches(self.location, difference.location):
            return False
        return self.group is None or location_matches(self.group, difference.cause)

    @property
    def pattern(self) -> str:
        """How the entry reads in a report: `group: …`, `location: …` or both."""
        parts = [
            f"{name}: {value}"
            for name, value in (("group", self.group), ("location", self.location))
            if value is not None
        ]
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"reason": self.reason}
        for name in ("location", "group", "kind"):
            if getattr(self, name) is not None:
                entry[name] = getattr(self, name)
        return entry


@dataclass
class KnownDifferences:
    entries: list[KnownDifference] = field(default_factory=list)
    covered: list[list[Difference]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.covered = [[] for _ in self.entries]

    @classmethod
    def load(cls, path: Path) -> KnownDifferences:
        """A YAML or JSON file: a list of `{location?, group?, reason, kind?}` (or
        `{accepted: [...]}`); `location` and `group` are globs over difference locations and the
        report's group names (causes); a bare string is a location."""
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise ValueError(f"{path}: not YAML or JSON{where}") from None
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
            if not isinstance(item, dict):
                raise ValueError(f"{path}: entry {number} is not a mapping")
            globs = {name: item.get(name) for name in ("location", "group")}
            if all(value is None for value in globs.values()):
                raise ValueError(f"{path}: entry {number} needs a 'location' or a 'group'")
            for name, value in globs.items():
                if value is not None and not isinstance(value, str):
                    raise ValueError(f"{path}: entry {number}: '{name}' must be a string")
            kind = item.get("kind")
            if kind is not None and not isinstance(kind, str):
                raise ValueError(f"{path}: entry {number}: 'kind' must be a string")
            entries.append(
                KnownDifference(
                    reason=str(item.get("reason") or "listed as a known difference"),
                    location=globs["location"],
                    group=globs["group"],
                    kind=kind,
                )
            )
        return cls(entries)

    def apply(self, difference: Difference) -> Difference:
        for index, entry in enumerate(self.entries):
            if entry.matches(difference):
                accepted = replace(difference, accepted=entry.reason)
                self.covered[index].append(accepted)
                return accepted
        return difference

    def coverage(self) -> list[tuple[KnownDifference, list[Difference]]]:
        """Each entry with the differences it accepted (none for an entry no longer seen)."""
        return list(zip(self.entries, self.covered, strict=True))

    def unused(self) -> list[KnownDifference]:
        return [entry for entry, covered in self.coverage() if not covered]


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
    known: list[tuple[KnownDifference, list[Difference]]] = field(default_factory=list)

    @property
    def drift(self) -> list[Difference]:
        return [d for d in self.differences if d.accepted is None]

    @property
    def accepted(self) -> list[Difference]:
        return [d for d in self.differences if d.accepted is not None]

    def drift_groups(self) -> list[Group[Difference]]:
        """The open differences, one group per cause, in the order they were found."""
        return group(d.occurrence() for d in self.drift)

    def accepted_groups(self) -> list[Group[Difference]]:
        return group(d.occurrence() for d in self.accepted)

    @property
    def probes_affected(self) -> list[str]:
        return list(dict.fromkeys(d.probe for d in self.drift))

    @property
    def unused_known(self) -> list[KnownDifference]:
        return [entry for entry, covered in self.known if not covered]

    def exit_code(self) -> int:
        if self.drift:
            return 1
        return 2 if self.errors else 0

    def to_json(self) -> dict[str, Any]:
        info = self.info
        drift_groups, accepted_groups = self.drift_groups(), self.accepted_groups()
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
                "causes": len(drift_groups),
                "probesAffected": len(self.probes_affected),
                "differences": len(self.drift),
                "acceptedCauses": len(accepted_groups),
                "accepted": len(self.accepted),
                "skipped": len(self.skipped),
                "errors": len(self.errors),
            },
            "groups": [_group_json(g) for g in drift_groups],
            "acceptedGroups": [_group_json(g) for g in accepted_groups],
            "differences": [d.to_json() for d in self.differences],
            "skipped": [{"location": s.location, "reason": s.reason} for s in self.skipped],
            "errors": list(self.errors),
            "knownDifferences": [
                {**entry.to_json(), "covered": len(covered), "probes": _distinct_probes(covered)}
                for entry, covered in self.known
            ],
            "unusedKnownDifferences": [entry.to_json() for entry in self.unused_known],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False)


def _distinct_probes(differences: list[Difference]) -> int:
    return len({d.probe for d in differences})


def _group_json(g: Group[Difference]) -> dict[str, Any]:
    example = g.example.item
    return {
        "cause": g.cause,
        "kind": g.kind,
        "layer": example.layer,
        "count": g.count,
        "probes": g.seen_in,
        "operations": g.operations,
        "locations": g.locations,
        "example": {
            "probe": example.probe,
            "request": example.request,
            "emulator": example.emulator,
            "target": example.target,
            "contractAgreesWith": example.contract,
            "curl": example.curl,
        },
        "accepted": sorted({d.accepted for d in g.items if d.accepted is not None}),
        "occurrences": [d.to_json() for d in g.items],
    }
