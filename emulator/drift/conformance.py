"""The conformance layer: schemathesis (4.x, its Python API) fuzzes the target with the contract.

Each operation gets `max_examples` positive and `max_examples` negative cases from
`operation.as_strategy(...)`, sent through the paced session and validated with all of
schemathesis's checks (status codes, content types, headers, schemas, negative data rejection,
positive data acceptance, and `ignored_auth`, which sends its own no-auth and bad-auth requests;
it runs once per operation to keep within the rate limit). Hypothesis runs without shrinking,
so a failure costs no extra requests. A failing case is replayed on the emulator, whose answer
says whether the contract sides with it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from emulator.drift.model import Difference, Skipped
from emulator.drift.transport import Side, TargetRateLimited, UnsafeRequest

TOKEN_OPERATION = "createToken"
CREATE_OPERATION = "createLink"
MODES = ("positive", "negative")
# Schema keywords whose failure is about an object's keys.
KEY_KEYWORDS = ("required", "additionalProperties")
_MESSAGE_LIMIT = 800


@dataclass
class ConformanceRun:
    differences: list[Difference] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cases: int = 0
    refused: int = 0
    operations: list[str] = field(default_factory=list)


def operation_ids(contract_path: Path) -> list[str]:
    import schemathesis

    schema = schemathesis.openapi.from_path(contract_path)
    ids = []
    for result in schema.get_all_operations():
        try:
            operation = result.ok()
        except Exception:  # reported by `run_conformance`
            continue
        ids.append(str(operation.definition.raw.get("operationId") or operation.label))
    return ids


def planned_requests(operations: list[str], max_examples: int, allow_create: bool) -> int:
    """An upper bound of the requests this layer sends: every case, plus the two probes of the
    auth check for each operation that needs a token."""
    included = [op for op in operations if allow_create or op != CREATE_OPERATION]
    secured = [op for op in included if op != TOKEN_OPERATION]
    return len(included) * len(MODES) * max_examples + 2 * len(secured)


def _register_auth(schema: Any, target: Side) -> None:
    """Cases carry the target's token the way schemathesis expects (so a negative case that
    drops it is known to be one); `Side.bearer` caches and refreshes it."""

    @schema.auth(refresh_interval=None, retry_on=[]).skip_for(operation_id=TOKEN_OPERATION)
    class TargetToken:
        def get(self, case: Any, ctx: Any) -> str:
            return target.bearer()

        def set(self, case: Any, data: str, ctx: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def _has_auth(case: Any) -> bool:
    return any(name.lower() == "authorization" for name in (case.headers or {}))


def _curl(case: Any, base_url: str) -> str:
    command: str = case.as_curl_command(base_url=base_url)
    return command.replace(
        "-H 'Authorization: [Filtered]'", '-H "Authorization: Bearer $EIGHTHERE_TOKEN"'
    )


def _request_text(case: Any) -> str:
    query = "&".join(f"{k}={v}" for k, v in (case.query or {}).items())
    text = f"{case.method} {case.formatted_path}" + (f"?{query}" if query else "")
    return text if len(text) <= 160 else text[:157] + "..."


def _failures(exc: BaseException) -> list[Any]:
    if isinstance(exc, BaseExceptionGroup):
        return list(exc.exceptions)
    return [exc]


class Examiner:
    """Sends and validates cases for one operation; remembers the first case of each failure."""

    def __init__(
        self, run: ConformanceRun, target: Side, emulator: Side | None, operation_id: str
    ) -> None:
        self.run = run
        self.target = target
        self.emulator = emulator
        self.operation_id = operation_id
        self.seen: set[str] = set()
        self.auth_checked = False
        self.sent = 0

    def __call__(self, case: Any) -> None:
        from schemathesis import checks
        from schemathesis.errors import SerializationNotPossible

        try:
            response = case.call(base_url=self.target.base_url, session=self.target.session)
        except (UnsafeRequest, SerializationNotPossible):
            self.run.refused += 1
            return
        except requests.RequestException as exc:
            self._record_network(case, exc)
            return
        self.sent += 1
        self.run.cases += 1
        # The auth check resends the request twice; once per operation is proof enough.
        check_auth = (
            self.operation_id != TOKEN_OPERATION
            and 200 <= response.status_code < 300
            and not self.auth_checked
        )
        excluded = [] if check_auth else [checks.ignored_auth]
        self.auth_checked |= check_auth
        for failure in _validate(case, response, self.target, excluded):
            self._record(case, response, excluded, failure)

    def _record(self, case: Any, response: Any, excluded: list[Any], failure: Any) -> None:
        title = str(
            getattr(type(failure), "kind_title", None)
            or getattr(failure, "title", "")
            or type(failure).__name__
        )
        key = f"{getattr(failure, 'code', '')} {title}"
        if key in self.seen:
            return
        self.seen.add(key)
        emulator_answer, verdict = self._replay(case, excluded, type(failure))
        kind, cause = _kind_and_cause(failure, title)
        message = str(getattr(failure, "message", "") or failure)
        if len(message) > _MESSAGE_LIMIT:
            message = message[:_MESSAGE_LIMIT] + " …"
        checks = getattr(failure, "checks", ()) or ("check",)
        self.run.differences.append(
            Difference(
                layer="conformance",
                location=f"conformance {self.operation_id}: {title}",
                request=_request_text(case),
                aspect=str(checks[0]),
                kind=kind,
                emulator=emulator_answer,
                target=f"{response.status_code}: {getattr(failure, 'title', title)}",
                contract=verdict,
                probe=f"conformance {self.operation_id}",
                operation=self.operation_id,
                cause=cause,
                detail=message,
                curl=_curl(case, self.target.base_url),
            )
        )

    def _replay(self, case: Any, excluded: list[Any], failure_type: type) -> tuple[str, Any]:
        """The emulator's answer to the same case, and so which side the contract agrees with."""
        emulator = self.emulator
        if emulator is None:
            return "not replayed", "unknown"
        headers = {"Authorization": f"Bearer {emulator.bearer()}"} if _has_auth(case) else None
        try:
            response = case.call(
                base_url=emulator.base_url, session=emulator.session, headers=headers
            )
        except (requests.RequestException, UnsafeRequest) as exc:
            return f"not replayed ({type(exc).__name__})", "unknown"
        failures = _validate(case, response, emulator, excluded)
        if any(type(f) is failure_type for f in failures):
            return f"{response.status_code}: fails the same check", "neither"
        return f"{response.status_code}: passes this check", "emulator"

    def _record_network(self, case: Any, exc: requests.RequestException) -> None:
        key = f"network {type(exc).__name__}"
        if key in self.seen:
            return
        self.seen.add(key)
        self.run.differences.append(
            Difference(
                layer="conformance",
                location=f"conformance {self.operation_id}: Network error",
                request=_request_text(case),
                aspect="not_a_server_error",
                kind="network",
                emulator="not replayed",
                target=f"no answer ({type(exc).__name__})",
                contract="unknown",
                probe=f"conformance {self.operation_id}",
                operation=self.operation_id,
                cause="conformance: Network error",
                detail=str(exc)[:_MESSAGE_LIMIT],
                curl=_curl(case, self.target.base_url),
            )
        )


def _kind_and_cause(failure: Any, title: str) -> tuple[str, str]:
    """The failure's group in the report. Where a failure names what the differential layer
    compares (a missing header, a field's type, a missing, unexpected or renamed key), it gets that
    layer's kind and cause (`header X-RateLimit-Remaining`, `body $..clicks`), so that both
    layers' findings of one drift are one row; any other failure is grouped by its title."""
    missing_headers = getattr(failure, "missing_headers", None)
    if isinstance(missing_headers, list) and missing_headers:
        return "header-presence", "header " + ", ".join(str(name) for name in missing_headers)
    body = _body_cause(failure)
    if body is not None:
        return body
    return str(getattr(failure, "code", "") or "conformance"), f"conformance: {title}"


def _body_cause(failure: Any) -> tuple[str, str] | None:
    schema_path = list(getattr(failure, "schema_path", None) or [])
    keyword = schema_path[-1] if schema_path else None
    instance = getattr(failure, "instance", None)
    if keyword == "type":
        instance_path = list(getattr(failure, "instance_path", None) or [])
        if instance_path and isinstance(instance_path[-1], str):
            kind = "nullability" if instance is None else "type"
            return kind, f"body $..{instance_path[-1]}"
        return None
    schema = getattr(failure, "schema", None) if keyword in KEY_KEYWORDS else None
    if not isinstance(schema, dict) or not isinstance(instance, dict):
        return None
    declared = schema.get("properties") or {}
    missing = [key for key in schema.get("required") or [] if key not in instance]
    unexpected = [key for key in instance if key not in declared]
    if schema.get("additionalProperties") is not False:
        unexpected = []
    if len(missing) == 1 and len(unexpected) == 1:
        return "renamed", f"body $..{missing[0]} → {unexpected[0]}"
    if keyword == "required" and len(missing) == 1:
        return "missing-on-target", f"body $..{missing[0]}"
    if keyword == "additionalProperties" and len(unexpected) == 1:
        return "missing-on-emulator", f"body $..{unexpected[0]}"
    return None


def _validate(case: Any, response: Any, side: Side, excluded: list[Any]) -> list[Any]:
    """schemathesis's checks on one answer; checks that send requests of their own (the auth
    check) send them through `side`'s session."""
    from schemathesis.errors import FailureGroup

    try:
        case.validate_response(
            response,
            excluded_checks=excluded,
            transport_kwargs={"base_url": side.base_url, "session": side.session},
        )
    except (FailureGroup, AssertionError) as exc:
        return _failures(exc)
    return []


def _batch(examiner: Examiner, strategy: Any, max_examples: int, seed: int) -> Callable[[], None]:
    """A Hypothesis test that feeds `max_examples` cases to `examiner`: no shrinking and no
    example database, so every case is one request and a run sends no more than planned."""
    import hypothesis
    from hypothesis import HealthCheck, Phase, Verbosity, given

    @hypothesis.seed(seed)
    @hypothesis.settings(
        max_examples=max_examples,
        phases=[Phase.explicit, Phase.generate],
        database=None,
        deadline=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
    )
    @given(case=strategy)
    def examine(case: Any) -> None:
        examiner(case)

    return examine  # type: ignore[no-any-return]


def run_conformance(
    contract_path: Path,
    target: Side,
    emulator: Side | None,
    *,
    max_examples: int,
    seed: int,
    allow_create: bool,
    on_unused: Callable[[int], None] | None = None,
) -> ConformanceRun:
    """Fuzz the target. `on_unused(n)` is told of planned requests that will not be sent (a batch
    that ran out of distinct cases, an auth check that never found a 2xx answer)."""
    import schemathesis
    from schemathesis import GenerationMode

    run = ConformanceRun()
    schema = schemathesis.openapi.from_path(contract_path)
    _register_auth(schema, target)
    for result in schema.get_all_operations():
        try:
            operation = result.ok()
        except Exception as exc:  # an operation schemathesis cannot load
            run.errors.append(f"conformance: an operation could not be loaded: {exc}")
            continue
        operation_id = str(operation.definition.raw.get("operationId") or operation.label)
        if operation_id == CREATE_OPERATION and not allow_create:
            run.skipped.append(
                Skipped(
                    f"conformance {operation_id}", "a create on a live target: pass --allow-writes"
                )
            )
            continue
        run.operations.append(operation_id)
        examiner = Examiner(run, target, emulator, operation_id)
        for mode in MODES:
            strategy = operation.as_strategy(generation_mode=GenerationMode(mode))
            before = examiner.sent
            # A seed per operation and mode keeps each batch reproducible on its own.
            batch_seed = seed ^ zlib.crc32(f"{operation_id}/{mode}".encode())

            examine = _batch(examiner, strategy, max_examples, batch_seed)
            try:
                examine()
            except TargetRateLimited:
                raise
            except Exception as exc:
                run.errors.append(
                    f"conformance {operation_id} ({mode}): {type(exc).__name__}: {exc}"[:400]
                )
            if on_unused is not None:
                on_unused(max(0, max_examples - (examiner.sent - before)))
        if on_unused is not None and operation_id != TOKEN_OPERATION and not examiner.auth_checked:
            on_unused(2)
    return run
