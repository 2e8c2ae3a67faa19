"""Checking one forwarded exchange, and what the journal entry keeps of it.

Three checks, one list of differences:
1. the request against the contract (kept as the request's verdict: a client's own mistake that
   the target rightly refuses is not a difference between the target and anything);
2. the target's answer against the contract (`drift/contract_check.py`);
3. the target's answer against the shadow answer (`shadow.py`), with the drift check's comparison
   (`drift/comparison.py`): status, error code and field, the headers that matter, JSON shape and
   the meanings the drift check judges (sort order, filters, default page size, ...).
A contract finding at a place where the comparison already found a difference is that
difference (the contract's words are added to it: a renamed field is one difference, not a
missing and an undocumented one); any other is a difference of its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from emulator.drift.comparison import Exchange, compare
from emulator.drift.contract import Contract
from emulator.drift.contract_check import ContractCheck, Violation, find_operation
from emulator.drift.grouping import Occurrence
from emulator.drift.model import Agreement, Difference
from emulator.drift.probes import Probe
from emulator.drift.properties import Answer
from emulator.journal import BODY_CAPTURE_BYTES
from emulator.masking import Masker
from emulator.proxy.exchange import NOT_JSON, ClientRequest, TargetAnswer, header_dict, parse_json
from emulator.proxy.shadow import NoShadow, Shadow, ShadowAnswer
from emulator.state import EmulatorState

CHECK_HEADER = "X-Emulator-Check"
# A hostile target can differ everywhere; an entry keeps this many, and counts them all.
MOST_DIFFERENCES_KEPT = 50
Verdict = Literal["ok", "differences", "unchecked", "proxy-answer"]
UNKNOWN_OPERATION = "(not in the contract)"


@dataclass
class ExchangeCheck:
    """What was checked about one exchange: the journal entry's `check`."""

    verdict: Verdict
    operation: str = ""
    differences: list[Difference] = field(default_factory=list)
    difference_count: int = 0
    request: list[Violation] = field(default_factory=list)
    response: list[Violation] = field(default_factory=list)
    emulator: ShadowAnswer | None = None
    notes: list[str] = field(default_factory=list)
    # Told the entry's sequence once the entry is recorded (the proxy logs and records there).
    on_recorded: Callable[[int, ExchangeCheck], None] | None = None
    sequence: int | None = None
    # Whether the answer's start is still held, so the header can still be added.
    adds_header: bool = True

    def header(self, sequence: int) -> str:
        if self.verdict == "ok":
            return "ok"
        if self.verdict == "differences":
            return f"differences={self.difference_count}; entry={sequence}"
        return f"{self.verdict}; entry={sequence}"

    def recorded(self, sequence: int) -> list[tuple[str, str]]:
        self.sequence = sequence
        if self.on_recorded is not None:
            self.on_recorded(sequence, self)
        return [(CHECK_HEADER, self.header(sequence))] if self.adds_header else []

    def occurrences(self, sequence: int) -> list[Occurrence[Difference]]:
        return [
            Occurrence(
                kind=d.kind,
                cause=d.cause,
                location=d.aspect,
                operation=d.operation or UNKNOWN_OPERATION,
                seen_in=sequence,
                emulator=d.emulator,
                target=d.target,
                contract=d.contract,
                item=d,
            )
            for d in self.differences
        ]

    def size_bytes(self) -> int:
        texts = [d.emulator + d.target + d.detail + d.aspect for d in self.differences]
        texts += [v.message + v.location for v in (*self.request, *self.response)]
        size = sum(map(len, texts)) + sum(map(len, self.notes))
        if self.emulator is not None:
            size += len(self.emulator.body) + sum(len(k) + len(v) for k, v in self.emulator.headers)
        return size

    def summary(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "differences": self.difference_count}

    def detail(self, masker: Masker) -> dict[str, Any]:
        """Everything, for the journal entry's detail; the emulator's answer masked by `masker`
        as the entry's own headers and bodies are."""
        emulator = self.emulator
        return {
            **self.summary(),
            "operation": self.operation or None,
            "found": [_difference_json(d) for d in self.differences],
            "request": _verdict_json(self.request),
            "response": _verdict_json(self.response),
            "emulator": None
            if emulator is None
            else {
                "status": emulator.status,
                "path": emulator.path,
                "environment": emulator.environment,
                "matched": list(emulator.matched),
                "headers": [
                    [
                        name.decode("latin-1"),
                        masker.header(name.decode("latin-1"), value.decode("latin-1")),
                    ]
                    for name, value in emulator.headers
                ],
                "body": masker.body(
                    emulator.body, truncated=len(emulator.body) >= BODY_CAPTURE_BYTES
                ),
            },
            "notes": list(self.notes),
        }


def _difference_json(d: Difference) -> dict[str, Any]:
    return {
        "kind": d.kind,
        "location": d.aspect,
        "emulator": d.emulator,
        "target": d.target,
        "contractAgreesWith": d.contract,
        "detail": d.detail,
    }


def _verdict_json(violations: list[Violation]) -> dict[str, Any]:
    return {
        "conforms": not violations,
        "problems": [
            {"kind": v.kind, "location": v.location, "message": v.message} for v in violations
        ],
    }


def _covers(place: str, location: str) -> bool:
    return place == "*" or location == place or location.startswith((f"{place}.", f"{place}["))


def _meanings(operation: str, query: dict[str, str]) -> tuple[str, ...]:
    """The drift check's meaning properties that apply to this request's answer."""
    if operation == "listLinks":
        found = ["page", "sorted"]
        if "limit" not in query:
            found.append("default_page_size")
        if "q" in query:
            found.append("filter_q")
        if query.get("hasVisits") in ("true", "false"):
            found.append("filter_has_visits")
        return tuple(found)
    return {"getLink": ("detail_id",), "createLink": ("created",), "createToken": ("token",)}.get(
        operation, ()
    )


class Checker:
    """Checks exchanges against one contract and the emulator `state` (copied for each)."""

    def __init__(self, state: EmulatorState, contract: Contract) -> None:
        self.contract = contract
        self.verdicts = ContractCheck(contract)
        self.shadow = Shadow(state)

    async def check(self, request: ClientRequest, target: TargetAnswer) -> ExchangeCheck:
        matched = find_operation(self.contract, request.method, request.path)
        operation = matched.operation.operation_id if matched else ""
        notes = list(target.notes)
        if request.body is None:
            request_verdict: list[Violation] = []
            notes.append("request body too large to hold: passed through, not checked")
        else:
            request_verdict = self.verdicts.request(
                request.method,
                request.path,
                request.query,
                request.header_map,
                request.body,
            )
        response_verdict = self._response_verdict(operation, target)
        if operation == "createToken" and target.status == 200:
            self.shadow.learn(request, target)
        shadow: ShadowAnswer | None = None
        compared: list[Difference] = []
        try:
            shadow = await self.shadow.answer(request, target, operation)
        except NoShadow as why:
            notes.append(f"not compared with the emulator: {why}")
        if shadow is not None:
            compared = self._compare(operation, request, target, shadow)
        differences = self._fold(operation, request, compared, response_verdict, shadow)
        if shadow is not None:
            shadow = dataclasses.replace(shadow, body=shadow.body[:BODY_CAPTURE_BYTES])
        return ExchangeCheck(
            verdict="differences" if differences else "ok",
            operation=operation,
            differences=differences[:MOST_DIFFERENCES_KEPT],
            difference_count=len(differences),
            request=request_verdict,
            response=response_verdict,
            emulator=shadow,
            notes=notes,
        )

    def _response_verdict(self, operation: str, target: TargetAnswer) -> list[Violation]:
        body = target.json
        found = self.verdicts.response(
            operation,
            target.status,
            target.header_map,
            None if body is NOT_JSON else body,
            body is not NOT_JSON,
        )
        if target.body is None:  # not held: only the status and headers could be checked
            found = [v for v in found if not v.location.startswith("body")]
        return found

    def _compare(
        self,
        operation: str,
        request: ClientRequest,
        target: TargetAnswer,
        shadow: ShadowAnswer,
    ) -> list[Difference]:
        sent = request.json
        probe = Probe(
            name=request.describe(),
            operation=operation or UNKNOWN_OPERATION,
            method=request.method,
            path=request.path,
            query=tuple(request.query),
            json_body=None if sent is NOT_JSON else sent,
            checks=_meanings(operation, dict(request.query)),
        )
        described = request.describe()
        target_body = target.json
        target_answer = Answer(
            probe=probe,
            status=target.status,
            headers=target.header_map,
            body=None if target_body is NOT_JSON else target_body,
            sent_at=target.sent_at,
            received_at=target.received_at,
            environment=shadow.environment,
            requested_id=request.path.rsplit("/", 1)[-1] if operation == "getLink" else None,
        )
        shadow_headers = header_dict(shadow.headers)
        shadow_body = parse_json(shadow.body)
        emulator_answer = Answer(
            probe=probe,
            status=shadow.status,
            headers=shadow_headers,
            body=None if shadow_body is NOT_JSON else shadow_body,
            sent_at=shadow.sent_at,
            received_at=shadow.received_at,
            environment=shadow.environment,
            requested_id=shadow.requested_id,
        )
        shadow_media = shadow_headers.get("content-type", "").split(";")[0].strip().lower()
        return compare(
            self.contract,
            probe,
            Exchange(target_answer, target.media_type, described, ""),
            Exchange(emulator_answer, shadow_media, described, ""),
        )

    def _fold(
        self,
        operation: str,
        request: ClientRequest,
        compared: list[Difference],
        violations: list[Violation],
        shadow: ShadowAnswer | None,
    ) -> list[Difference]:
        covered: dict[int, list[Violation]] = {}
        alone: list[Violation] = []
        for violation in violations:
            for index, difference in enumerate(compared):
                if any(_covers(place, violation.location) for place in difference.places):
                    covered.setdefault(index, []).append(violation)
                    break
            else:
                alone.append(violation)
        found = []
        for index, difference in enumerate(compared):
            words = covered.get(index)
            if words:
                said = "the contract: " + "; ".join(f"{v.location}: {v.message}" for v in words)
                detail = f"{difference.detail}; {said}" if difference.detail else said
                difference = dataclasses.replace(difference, detail=detail)
            found.append(difference)
        if alone:
            emulator_verdict = self._emulator_verdict(operation, shadow)
            found += [
                self._contract_difference(operation, request, v, emulator_verdict) for v in alone
            ]
        return found

    def _emulator_verdict(
        self, operation: str, shadow: ShadowAnswer | None
    ) -> dict[tuple[str, str], Violation] | None:
        if shadow is None:
            return None
        body = parse_json(shadow.body)
        found = self.verdicts.response(
            operation,
            shadow.status,
            header_dict(shadow.headers),
            None if body is NOT_JSON else body,
            body is not NOT_JSON,
        )
        return {(v.kind, v.location): v for v in found}

    def _contract_difference(
        self,
        operation: str,
        request: ClientRequest,
        violation: Violation,
        emulator: dict[tuple[str, str], Violation] | None,
    ) -> Difference:
        """A place where the target's answer breaks the contract and the comparison saw no
        difference: the emulator breaks it the same way, or was not asked."""
        agrees: Agreement
        if emulator is None:
            agrees, said = "unknown", "not compared"
        elif (violation.kind, violation.location) in emulator:
            agrees, said = "neither", emulator[(violation.kind, violation.location)].message
        else:
            agrees, said = "emulator", "as the contract says"
        described = request.describe()
        return Difference(
            layer="conformance",
            location=f"{described}: {violation.location}",
            request=described,
            aspect=violation.location,
            kind=violation.kind,
            emulator=said,
            target=violation.message,
            contract=agrees,
            probe=described,
            operation=operation,
            cause=violation.location,
            detail=f"the contract: {violation.message}",
            places=(violation.location,),
        )
