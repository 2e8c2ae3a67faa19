"""The differential layer: each probe to the target, then to the emulator, and the two answers
compared by status, error code and field, the headers that matter, JSON shape and meaning."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

from emulator.drift import properties
from emulator.drift.contract import Contract
from emulator.drift.model import Agreement, Difference, Skipped
from emulator.drift.probes import INVALID_TOKEN, Probe
from emulator.drift.properties import LABELS, RATE_HEADERS, Answer, Verdict
from emulator.drift.shapes import ShapeDiff, diff_shapes, render_path, shape_of
from emulator.drift.transport import Side, UnsafeRequest

COMPARED_HEADERS = ("X-Request-Id", *RATE_HEADERS, "WWW-Authenticate", "Location", "Retry-After")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass
class Exchange:
    answer: Answer
    media_type: str
    request: str
    curl: str


@dataclass
class SideState:
    """One side during the probes: what later probes need from its earlier answers."""

    side: Side
    context: dict[str, str] = field(default_factory=dict)
    counted: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.context.setdefault("client_id", self.side.client_id)
        self.context.setdefault("client_secret", self.side.client_secret)


class MissingPlaceholder(Exception):
    pass


def agreement(emulator_ok: bool | None, target_ok: bool | None) -> Agreement:
    if emulator_ok is None or target_ok is None:
        return "unknown"
    if emulator_ok and target_ok:
        return "both"
    if emulator_ok:
        return "emulator"
    return "target" if target_ok else "neither"


def _fill(value: Any, context: dict[str, str]) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            if match.group(1) not in context:
                raise MissingPlaceholder(match.group(1))
            return context[match.group(1)]

        return _PLACEHOLDER.sub(replace, value)
    if isinstance(value, dict):
        return {k: _fill(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, context) for v in value]
    return value


# In a reproducing command the credentials are shell variables, never the values themselves.
_CURL_CONTEXT = {"client_id": "$EIGHTHERE_CLIENT_ID", "client_secret": "$EIGHTHERE_CLIENT_SECRET"}


def _shell_double_quoted(text: str) -> str:
    """`text` in double quotes, with only the `$EIGHTHERE_…` variables left to expand."""
    escaped = "".join("\\" + c if c in '"\\`$' else c for c in text)
    for variable in _CURL_CONTEXT.values():
        escaped = escaped.replace("\\" + variable, variable)
    return f'"{escaped}"'


def curl_command(probe: Probe, url: str, headers: dict[str, str], context: dict[str, str]) -> str:
    parts = ["curl", "-X", probe.method]
    for name, value in headers.items():
        if name.lower() == "authorization" and value != f"Bearer {INVALID_TOKEN}":
            parts += ["-H", '"Authorization: Bearer $EIGHTHERE_TOKEN"']
        else:
            parts += ["-H", shlex.quote(f"{name}: {value}")]
    if probe.raw_body is not None:
        parts += ["--data-binary", shlex.quote(probe.raw_body.decode("utf-8", "replace"))]
    elif probe.json_body is not None:
        shown = _fill(probe.json_body, {**context, **_CURL_CONTEXT})
        parts += ["--data-binary", _shell_double_quoted(json.dumps(shown))]
    parts.append(shlex.quote(url))
    return " ".join(parts)


def send(state: SideState, probe: Probe) -> Exchange:
    side = state.side
    path = _fill(probe.path, state.context)
    body_json = _fill(probe.json_body, state.context)
    headers: dict[str, str] = {"Accept": "application/json"}
    if probe.auth == "token":
        headers["Authorization"] = f"Bearer {side.bearer()}"
    elif probe.auth == "invalid":
        headers["Authorization"] = f"Bearer {INVALID_TOKEN}"
    data: bytes | None = None
    if probe.raw_body is not None:
        data = probe.raw_body
    elif body_json is not None:
        data = json.dumps(body_json).encode()
    if data is not None:
        headers["Content-Type"] = probe.content_type or "application/json"
    response = side.session.request(
        probe.method, side.url(path), params=list(probe.query), headers=headers, data=data
    )
    sent_at = side.session.last_sent_at  # after any pacing wait, as the server saw it
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    requested_id = path.rsplit("/", 1)[-1] if probe.operation == "getLink" else None
    answer = Answer(
        probe=probe,
        status=response.status_code,
        headers={k.lower(): v for k, v in response.headers.items()},
        body=body,
        sent_at=sent_at,
        environment=side.environment,
        requested_id=requested_id,
    )
    sent_url = str(response.request.url)
    described = probe.method + " " + sent_url[len(side.base_url) :]
    curl = curl_command(probe, sent_url, headers, state.context)
    _learn(state, probe, answer)
    return Exchange(answer, media_type, described, curl)


def _learn(state: SideState, probe: Probe, answer: Answer) -> None:
    """Remember what later probes need from this side: a listed id and slug, a created id."""
    body = answer.body
    if probe.operation == "listLinks" and answer.status == 200 and isinstance(body, dict):
        data = body.get("data")
        if isinstance(data, list) and data and isinstance(data[0], dict):
            first = data[0]
            if isinstance(first.get("id"), str):
                state.context.setdefault("listed_id", first["id"])
            if isinstance(first.get("slug"), str):
                state.context.setdefault("listed_slug", first["slug"])
    created = isinstance(body, dict) and isinstance(body.get("id"), str)
    if probe.name == "create.valid" and answer.status == 201 and created:
        state.context["created_id"] = body["id"]
    if probe.counted and answer.status not in (401, 429):
        state.counted.append(answer)


def _error(body: Any) -> dict[str, Any]:
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _status_text(answer: Answer) -> str:
    code = _error(answer.body).get("code")
    return f"{answer.status} {code}" if code else str(answer.status)


class Comparison:
    """Compares one probe's two answers; every difference found is appended to `found`."""

    def __init__(
        self,
        contract: Contract,
        probe: Probe,
        target: Exchange,
        emulator: Exchange,
        found: list[Difference],
    ) -> None:
        self.contract = contract
        self.probe = probe
        self.target = target
        self.emulator = emulator
        self.found = found

    def add(
        self,
        aspect: str,
        kind: str,
        emulator: str,
        target: str,
        contract: Agreement,
        detail: str = "",
    ) -> None:
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
                detail=detail,
                curl=self.target.curl,
            )
        )

    def run(self) -> None:
        e, t = self.emulator.answer, self.target.answer
        if e.status != t.status:
            self.add("status", "status", _status_text(e), _status_text(t), self._status_agreement())
            return
        self.errors()
        self.headers()
        self.shapes()
        self.meanings()

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
            self.add("error.code", "error-code", str(e.get("code")), str(t.get("code")), verdict)
        if e.get("field") != t.get("field"):
            expected = self.probe.expect_field
            verdict = (
                agreement(e.get("field") == expected, t.get("field") == expected)
                if expected is not None
                else "both"
            )
            self.add(
                "error.field",
                "error-field",
                str(e.get("field", "absent")),
                str(t.get("field", "absent")),
                verdict,
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
            self.add(
                "header Content-Type",
                "header-value",
                self.emulator.media_type or "absent",
                self.target.media_type or "absent",
                verdict,
            )
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
            f"meaning {LABELS[key]}", "meaning", e.observed, t.observed, agreement(e.holds, t.holds)
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
            self.add(f"body {where}", diff.kind, diff.emulator, diff.target, verdict)

    def _shape_agreement(self, schema: Any, diff: ShapeDiff) -> Agreement | None:
        """Which side the contract takes; `None` for a difference it allows on both sides (the
        two sides simply hold different data, e.g. a null `lastVisitedAt` on one)."""
        contract = self.contract
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


def run_probes(
    probes: list[Probe],
    target: SideState,
    emulator: SideState,
    contract: Contract,
    *,
    allow_create: bool,
    on_probe: Callable[[Probe], None] | None = None,
) -> Iterator[Difference | Skipped | str]:
    """Sends every probe and yields differences, skipped probes and errors (strings), in order."""
    sent: list[Probe] = []
    for probe in probes:
        if on_probe is not None:
            on_probe(probe)
        if probe.writes and not allow_create:
            yield Skipped(probe.name, "a create on a live target: pass --allow-writes to send it")
            continue
        try:
            target_exchange = send(target, probe)
        except MissingPlaceholder as missing:
            yield Skipped(probe.name, f"needs a {missing} from an earlier answer of the target")
            continue
        except UnsafeRequest as exc:
            yield Skipped(probe.name, str(exc))
            continue
        except requests.RequestException as exc:
            yield f"{probe.name}: the target did not answer ({type(exc).__name__})"
            continue
        try:
            emulator_exchange = send(emulator, probe)
        except MissingPlaceholder as missing:
            yield Skipped(probe.name, f"needs a {missing} from an earlier answer of the emulator")
            continue
        except requests.RequestException as exc:
            yield f"{probe.name}: the emulator did not answer ({type(exc).__name__})"
            continue
        statuses = (target_exchange.answer.status, emulator_exchange.answer.status)
        if 429 in statuses and probe.expect_status != 429:
            yield Skipped(probe.name, "rate limited even after waiting Retry-After")
            continue
        found: list[Difference] = []
        Comparison(contract, probe, target_exchange, emulator_exchange, found).run()
        yield from found
        sent.append(probe)
    yield from _compare_decreases(target, emulator)


def _compare_decreases(target: SideState, emulator: SideState) -> Iterator[Difference]:
    t_verdicts = properties.remaining_decreases(target.counted)
    e_verdicts = properties.remaining_decreases(emulator.counted)
    for name in sorted(t_verdicts.keys() & e_verdicts.keys()):
        e, t = e_verdicts[name], t_verdicts[name]
        if e.holds != t.holds:
            yield Difference(
                layer="differential",
                location=f"{name}: meaning {LABELS['rate_decreases']}",
                request=name,
                aspect=f"meaning {LABELS['rate_decreases']}",
                kind="meaning",
                emulator=e.observed,
                target=t.observed,
                contract=agreement(e.holds, t.holds),
            )
