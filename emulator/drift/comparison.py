"""Comparing two answers to one request: status, error code and field, the headers that matter,
JSON shape and meaning. Nothing here sends a request: the differential layer compares the answers
its probes got, and anything else that holds two answers (a proxy, say) can do the same."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from emulator.drift import properties
from emulator.drift.contract import ITEMS, Contract
from emulator.drift.model import Agreement, Difference
from emulator.drift.probes import Probe
from emulator.drift.properties import LABELS, RATE_HEADERS, Answer, Verdict
from emulator.drift.shapes import ShapeDiff, diff_shapes, render_path, shape_of

COMPARED_HEADERS = ("X-Request-Id", *RATE_HEADERS, "WWW-Authenticate", "Location", "Retry-After")


@dataclass
class Exchange:
    """One side's answer to a request, with how to describe and reproduce the request."""

    answer: Answer
    media_type: str
    request: str
    curl: str


def agreement(emulator_ok: bool | None, target_ok: bool | None) -> Agreement:
    if emulator_ok is None or target_ok is None:
        return "unknown"
    if emulator_ok and target_ok:
        return "both"
    if emulator_ok:
        return "emulator"
    return "target" if target_ok else "neither"


def _error(body: Any) -> dict[str, Any]:
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _status_text(answer: Answer) -> str:
    code = _error(answer.body).get("code")
    return f"{answer.status} {code}" if code else str(answer.status)


class Comparison:
    """Compares one probe's two answers; `run()` returns the differences found."""

    def __init__(
        self, contract: Contract, probe: Probe, target: Exchange, emulator: Exchange
    ) -> None:
        self.contract = contract
        self.probe = probe
        self.target = target
        self.emulator = emulator
        self.found: list[Difference] = []

    def add(
        self,
        aspect: str,
        kind: str,
        emulator: str,
        target: str,
        contract: Agreement,
        detail: str = "",
        cause: str | None = None,
        places: tuple[str, ...] | None = None,
    ) -> None:
        """One difference at `aspect` (where in the answer); `cause` names its group when the
        aspect alone would join unrelated differences (every status difference is at `status`).
        `places` are the places of the answer it is about (the aspect's, unless given)."""
        self.found.append(
            Difference(
                layer="differential",
                location=f"{self.probe.name}: {aspect}",
                request=self.target.request,
                aspect=aspect,
                kind=kind,
                emulator=emulator,
                target=target,
                contract=contract,
                probe=self.probe.name,
                operation=self.probe.operation,
                cause=cause or aspect,
                detail=detail,
                curl=self.target.curl,
                places=(aspect,) if places is None else places,
            )
        )

    def run(self) -> list[Difference]:
        e, t = self.emulator.answer, self.target.answer
        if e.status != t.status:
            e_text, t_text = _status_text(e), _status_text(t)
            verdict = self._status_agreement()
            # Two statuses are two kinds of answer: whatever else differs follows from it.
            cause = f"status {e_text} → {t_text}"
            self.add("status", "status", e_text, t_text, verdict, cause=cause, places=("*",))
            return self.found
        self.errors()
        self.headers()
        self.shapes()
        self.meanings()
        return self.found

    def _status_agreement(self) -> Agreement:
        e, t = self.emulator.answer.status, self.target.answer.status
        expected = self.probe.expect_status
        if expected is not None:
            return agreement(e == expected, t == expected)
        op = self.probe.operation
        return agreement(self.contract.declares_status(op, e), self.contract.declares_status(op, t))

    def errors(self) -> None:
        e, t = _error(self.emulator.answer.body), _error(self.target.answer.body)
        if not e and not t:
            return
        status = self.target.answer.status
        if e.get("code") != t.get("code"):
            expected = self.probe.expect_code
            if expected is not None:
                verdict = agreement(e.get("code") == expected, t.get("code") == expected)
            else:
                schema = self.contract.body_schema(self.probe.operation, status)
                allowed = self.contract.enum_at(self.contract.at(schema, ("error", "code")))
                verdict = (
                    agreement(e.get("code") in allowed, t.get("code") in allowed)
                    if allowed is not None
                    else "unknown"
                )
            e_code, t_code = str(e.get("code")), str(t.get("code"))
            cause = f"error.code {e_code} → {t_code}"
            places = ("body $.error.code",)
            self.add(
                "error.code", "error-code", e_code, t_code, verdict, cause=cause, places=places
            )
        if e.get("field") != t.get("field"):
            expected = self.probe.expect_field
            verdict = (
                agreement(e.get("field") == expected, t.get("field") == expected)
                if expected is not None
                else "both"
            )
            e_field, t_field = str(e.get("field", "absent")), str(t.get("field", "absent"))
            if "absent" in (e_field, t_field):
                side = "target" if t_field == "absent" else "emulator"
                cause = f"error.field absent on the {side}"
            else:
                cause = f"error.field {e_field} → {t_field}"
            places = ("body $.error.field",)
            self.add(
                "error.field", "error-field", e_field, t_field, verdict, cause=cause, places=places
            )

    def headers(self) -> None:
        e, t = self.emulator.answer, self.target.answer
        op, status = self.probe.operation, t.status
        if self.emulator.media_type != self.target.media_type:
            declared = self.contract.media_types(op, status)
            verdict = (
                agreement(self.emulator.media_type in declared, self.target.media_type in declared)
                if declared
                else "unknown"
            )
            e_type = self.emulator.media_type or "absent"
            t_type = self.target.media_type or "absent"
            cause = f"header Content-Type {e_type} → {t_type}"
            self.add("header Content-Type", "header-value", e_type, t_type, verdict, cause=cause)
        for name in COMPARED_HEADERS:
            key = name.lower()
            if (key in e.headers) == (key in t.headers):
                continue
            rule = self.contract.header_rule(op, status, name)
            verdict = (
                agreement(key in e.headers, key in t.headers) if rule == "required" else "both"
            )
            self.add(
                f"header {name}",
                "header-presence",
                e.headers.get(key, "absent"),
                t.headers.get(key, "absent"),
                verdict,
                detail=f"the contract has it {rule} on {status}",
            )
        e_rate, t_rate = properties.rate_limit_headers(e), properties.rate_limit_headers(t)
        for key in e_rate.keys() & t_rate.keys():
            self.meaning(key, e_rate[key], t_rate[key])

    def meaning(self, key: str, e: Verdict, t: Verdict) -> None:
        if e.holds is None or t.holds is None or e.holds == t.holds:
            return
        self.add(
            f"meaning {LABELS[key]}",
            "meaning",
            e.observed,
            t.observed,
            agreement(e.holds, t.holds),
            places=(),
        )

    def meanings(self) -> None:
        for key in self.probe.checks:
            check = properties.PROPERTIES[key]
            self.meaning(key, check(self.emulator.answer), check(self.target.answer))

    def shapes(self) -> None:
        e, t = self.emulator.answer.body, self.target.answer.body
        if e is None or t is None:
            return
        schema = self.contract.body_schema(self.probe.operation, self.target.answer.status)
        for diff in diff_shapes(shape_of(e), shape_of(t)):
            verdict = self._shape_agreement(schema, diff)
            if verdict is None:
                continue
            where = render_path(diff.path)
            places = [f"body {where}"]
            if diff.renamed_to is not None:
                where += f" → {diff.renamed_to}"
                places.append(f"body {render_path((*diff.path[:-1], diff.renamed_to))}")
            self.add(
                f"body {where}",
                diff.kind,
                diff.emulator,
                diff.target,
                verdict,
                cause=_cause(diff),
                places=tuple(places),
            )

    def _shape_agreement(self, schema: Any, diff: ShapeDiff) -> Agreement | None:
        """Which side the contract takes; `None` for a difference it allows on both sides (the
        two sides simply hold different data, e.g. a null `lastVisitedAt` on one)."""
        contract = self.contract
        if diff.renamed_to is not None:
            parent = contract.at(schema, diff.path[:-1])
            old, new = (
                contract.key_rule(parent, diff.path[-1]),
                contract.key_rule(parent, diff.renamed_to),
            )
            if "unknown" in (old, new):
                return "unknown"
            return agreement(
                old != "forbidden" and new != "required", new != "forbidden" and old != "required"
            )
        if diff.kind in ("missing-on-target", "missing-on-emulator"):
            rule = contract.key_rule(contract.at(schema, diff.path[:-1]), diff.path[-1])
            present_on_emulator = diff.kind == "missing-on-target"
            if rule == "required":
                return agreement(present_on_emulator, not present_on_emulator)
            if rule == "forbidden":
                return agreement(not present_on_emulator, present_on_emulator)
            return "both" if rule == "optional" else "unknown"
        alternatives = contract.at(schema, diff.path)
        if alternatives is None:
            return "unknown"
        allowed = contract.allowed_types(alternatives)
        e_ok, t_ok = diff.emulator_types <= allowed, diff.target_types <= allowed
        if e_ok and t_ok:
            return None
        return agreement(e_ok, t_ok)


def _cause(diff: ShapeDiff) -> str:
    """A body difference's group: the key wherever it sits (`$..clicks`), since the same field
    drifts alike in a page's items, a detail and a created link."""
    if not diff.path or diff.path[-1] == ITEMS:
        return f"body {render_path(diff.path)}"
    cause = f"body $..{diff.path[-1]}"
    return cause if diff.renamed_to is None else f"{cause} → {diff.renamed_to}"


def compare(
    contract: Contract, probe: Probe, target: Exchange, emulator: Exchange
) -> list[Difference]:
    """Every difference between the two answers to `probe`, with the contract's side on each."""
    return Comparison(contract, probe, target, emulator).run()


def compare_decreases(target: Sequence[Answer], emulator: Sequence[Answer]) -> list[Difference]:
    """Whether `X-RateLimit-Remaining` decreases over each side's counted answers, compared."""
    t_verdicts = properties.remaining_decreases(target)
    e_verdicts = properties.remaining_decreases(emulator)
    operations = {answer.probe.name: answer.probe.operation for answer in target}
    aspect = f"meaning {LABELS['rate_decreases']}"
    found = []
    for name in sorted(t_verdicts.keys() & e_verdicts.keys()):
        e, t = e_verdicts[name], t_verdicts[name]
        if e.holds != t.holds:
            found.append(
                Difference(
                    layer="differential",
                    location=f"{name}: {aspect}",
                    request=name,
                    aspect=aspect,
                    kind="meaning",
                    emulator=e.observed,
                    target=t.observed,
                    contract=agreement(e.holds, t.holds),
                    probe=name,
                    operation=operations.get(name, ""),
                    cause=aspect,
                )
            )
    return found
