"""What the contract says of one request, and of one answer, apart from any other answer.

`check_request` names where a request breaks the contract (a path and method it does not have, a
parameter outside its rules, a body that is not the declared JSON, a missing bearer token);
`check_response` where an answer does (an undeclared status, a required header missing or
malformed, a Content-Type the contract does not declare, a body off its schema, and every field
the contract does not document, even where the schema lets extra properties through).

Each finding is a `Violation` at a place named the way the comparison names it (`status`,
`header X-RateLimit-Remaining`, `body $.data[*].clicks`), so a finding and a comparison's
difference at the same place can be known to be one fact. Messages describe types and rules,
never a string the client or the target sent (which may be a secret).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from emulator.drift.contract import ITEMS, Contract, Operation, Schema, json_type
from emulator.drift.shapes import render_path
from emulator.parsing import is_json_media

# A hostile or broken answer can break the schema everywhere; past this many, the rest is noise.
MAX_VIOLATIONS = 50
_INTEGER = re.compile(r"-?[0-9]{1,30}")


@dataclass(frozen=True)
class Violation:
    kind: str
    location: str
    message: str


@dataclass(frozen=True)
class Matched:
    operation: Operation
    path_params: dict[str, str]


def body_location(path: tuple[str, ...]) -> str:
    return "body " + render_path(path)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


@lru_cache(maxsize=64)
def _template(path: str) -> re.Pattern[str]:
    parts = re.split(r"(\{\w+\})", path)
    regex = "".join(
        f"(?P<{part[1:-1]}>[^/]+)" if part.startswith("{") else re.escape(part) for part in parts
    )
    return re.compile(regex)


def find_operation(contract: Contract, method: str, path: str) -> Matched | None:
    """The operation a request is for: its path template and method (fixed paths first)."""
    candidates = sorted(contract.operations.values(), key=lambda op: op.path.count("{"))
    for operation in candidates:
        if operation.method != method.upper():
            continue
        match = _template(operation.path).fullmatch(path)
        if match is not None:
            return Matched(operation, match.groupdict())
    return None


# -- schemas ----------------------------------------------------------------------------------


Rule = Callable[[Any, str], "str | None"]


class _Node:
    """The schemas that hold at one place, read into alternatives the first time a value
    reaches it (the contract's schema objects live as long as it does)."""

    __slots__ = ("_alternatives", "schemas")

    def __init__(self, schemas: tuple[Any, ...]) -> None:
        self.schemas = schemas
        self._alternatives: list[_Alternative] | None = None

    def alternatives(self, contract: Contract) -> list[_Alternative]:
        if self._alternatives is None:
            schemas = self.schemas
            combined = schemas[0] if len(schemas) == 1 else {"allOf": list(schemas)}
            self._alternatives = [_Alternative(c) for c in contract.alternatives(combined)]
        return self._alternatives


class _Alternative:
    """One alternative of a schema: what a value must be to fit it."""

    __slots__ = ("additional", "allowed", "closed", "items", "properties", "required", "rules")

    def __init__(self, conjuncts: list[Schema]) -> None:
        properties: dict[str, list[Any]] = {}
        for schema in conjuncts:
            for key, definition in (schema.get("properties") or {}).items():
                properties.setdefault(key, []).append(definition)
        self.properties = {key: _Node(tuple(found)) for key, found in properties.items()}
        required = {key for schema in conjuncts for key in schema.get("required") or ()}
        self.required = tuple(sorted(required))
        additional = [s.get("additionalProperties") for s in conjuncts]
        schemas = tuple(a for a in additional if isinstance(a, dict))
        self.additional = _Node(schemas) if schemas else None
        self.closed = any(a is False for a in additional)
        items = tuple(s["items"] for s in conjuncts if isinstance(s.get("items"), dict))
        self.items = _Node(items) if items else None
        self.allowed = frozenset(Contract.allowed_types([conjuncts]))
        self.rules = [rule for schema in conjuncts for rule in _rules(schema)]


class SchemaCheck:
    """Validates JSON values against the contract's schemas (its `$ref`, `allOf`, `oneOf` and
    `anyOf` as `Contract.alternatives` reads them: a value fits when it fits every schema of one
    alternative). Undocumented object keys are reported wherever they are. Keep one per
    contract: each schema is read once."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self._roots: dict[int, tuple[Any, _Node]] = {}

    def violations(
        self, schema: Any, value: Any, path: tuple[str, ...] = (), *, undocumented: bool = True
    ) -> list[Violation]:
        kept = self._roots.get(id(schema))
        if kept is None or kept[0] is not schema:
            kept = self._roots[id(schema)] = (schema, _Node((schema,)))
        found = _Found()
        self._check(kept[1], value, path, undocumented, found)
        return found.list()

    def _check(
        self, node: _Node, value: Any, path: tuple[str, ...], undocumented: bool, found: _Found
    ) -> None:
        alternatives = node.alternatives(self.contract)
        if len(alternatives) == 1:
            self._alternative(alternatives[0], value, path, undocumented, found)
            return
        if not alternatives:
            found.add(Violation("value", body_location(path), "the contract allows nothing here"))
            return
        best: _Found | None = None
        for alternative in alternatives:
            attempt = _Found()
            self._alternative(alternative, value, path, undocumented, attempt)
            if not attempt.items:
                return
            if best is None or attempt.rank(path) < best.rank(path):
                best = attempt
        assert best is not None
        found.extend(best.items.values())

    def _alternative(
        self,
        alternative: _Alternative,
        value: Any,
        path: tuple[str, ...],
        undocumented: bool,
        found: _Found,
    ) -> None:
        kind = json_type(value)
        allowed = alternative.allowed
        if kind not in allowed:
            nullable = value is None or allowed == {"null"}
            shown = " | ".join(sorted(allowed)) or "nothing"
            found.add(
                Violation(
                    "nullability" if nullable else "type",
                    body_location(path),
                    f"{kind} where the contract has {shown}",
                )
            )
            return
        for rule in alternative.rules:
            problem = rule(value, kind)
            if problem is not None:
                found.add(Violation("value", body_location(path), problem))
        if kind == "array":
            if alternative.items is not None:
                inner = (*path, ITEMS)
                for item in value:
                    if found.full:
                        return
                    self._check(alternative.items, item, inner, undocumented, found)
        elif kind == "object":
            self._object(alternative, value, path, undocumented, found)

    def _object(
        self,
        alternative: _Alternative,
        value: dict[str, Any],
        path: tuple[str, ...],
        undocumented: bool,
        found: _Found,
    ) -> None:
        for key in alternative.required:
            if key not in value:
                found.add(
                    Violation("missing-field", body_location((*path, key)), "required, absent")
                )
        properties = alternative.properties
        for key, item in value.items():
            if found.full:
                return
            node = properties.get(key)
            if node is None:
                if undocumented or alternative.closed:
                    extra = "not allowed there" if alternative.closed else "extra fields allowed"
                    found.add(
                        Violation(
                            "undocumented-field",
                            body_location((*path, str(key))),
                            f"not in the contract ({extra})",
                        )
                    )
                node = alternative.additional
                if node is None:
                    continue
            self._check(node, item, (*path, str(key)), undocumented, found)


class _Found:
    """Violations, one per kind and place (a field wrong in every item of a page is one)."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], Violation] = {}

    @property
    def full(self) -> bool:
        return len(self.items) >= MAX_VIOLATIONS

    def add(self, violation: Violation) -> None:
        if not self.full:
            self.items.setdefault((violation.kind, violation.location), violation)

    def extend(self, violations: Iterable[Violation]) -> None:
        for violation in violations:
            self.add(violation)

    def rank(self, path: tuple[str, ...]) -> tuple[int, int]:
        """Fewer is better; an alternative whose type does not even fit ranks last."""
        here = body_location(path)
        wrong_type = any(
            v.location == here and v.kind in ("type", "nullability") for v in self.items.values()
        )
        return (1 if wrong_type else 0, len(self.items))

    def list(self) -> list[Violation]:
        return list(self.items.values())


def _same_json(a: Any, b: Any) -> bool:
    return json_type(a) == json_type(b) and a == b


def _number(limit: Any) -> bool:
    return isinstance(limit, int | float) and not isinstance(limit, bool)


def _rules(schema: Schema) -> list[Rule]:
    """The schema's value rules (const, enum, lengths, pattern, range, item counts), each a
    function of a value and its JSON type that describes a breach without quoting a string."""
    rules: list[Rule] = []
    if "const" in schema:
        const = schema["const"]
        rules.append(
            lambda v, k: None if _same_json(v, const) else "not the one value the contract allows"
        )
    enum = schema.get("enum")
    if isinstance(enum, list):
        shown = "not one of: " + ", ".join(str(option) for option in enum[:8])
        rules.append(lambda v, k: None if any(_same_json(v, o) for o in enum) else shown)
    shortest, longest = schema.get("minLength"), schema.get("maxLength")
    if isinstance(shortest, int):
        too_short = f"shorter than {shortest} characters"
        rules.append(lambda v, k: too_short if k == "string" and len(v) < shortest else None)
    if isinstance(longest, int):
        too_long = f"longer than {longest} characters"
        rules.append(lambda v, k: too_long if k == "string" and len(v) > longest else None)
    pattern = _pattern(schema["pattern"]) if isinstance(schema.get("pattern"), str) else None
    if pattern is not None:
        search = pattern.search
        unmatched = "does not match the contract's pattern"
        rules.append(lambda v, k: unmatched if k == "string" and search(v) is None else None)
    for name, broken in (
        ("minimum", lambda value, limit: value < limit),
        ("maximum", lambda value, limit: value > limit),
        ("exclusiveMinimum", lambda value, limit: value <= limit),
        ("exclusiveMaximum", lambda value, limit: value >= limit),
    ):
        limit = schema.get(name)
        if _number(limit):
            rules.append(
                lambda v, k, name=name, limit=limit, broken=broken: (
                    f"{v} breaks {name} {limit}"
                    if k in ("integer", "number") and broken(v, limit)
                    else None
                )
            )
    most, fewest = schema.get("maxItems"), schema.get("minItems")
    if isinstance(most, int):
        rules.append(
            lambda v, k: (
                f"{len(v)} items, more than {most}" if k == "array" and len(v) > most else None
            )
        )
    if isinstance(fewest, int):
        rules.append(
            lambda v, k: (
                f"{len(v)} items, fewer than {fewest}" if k == "array" and len(v) < fewest else None
            )
        )
    return rules


@lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern[str] | None:
    try:
        return re.compile(text)
    except re.error:
        return None


# -- requests ---------------------------------------------------------------------------------


def _coerce(text: str, schema: Any, contract: Contract) -> Any:
    """A parameter's text as the JSON value its schema's type reads it as (left a string when
    it cannot be one: the schema check then names the type)."""
    types = Contract.allowed_types(contract.alternatives(schema))
    if "integer" in types and "string" not in types and _INTEGER.fullmatch(text):
        return int(text)
    if "boolean" in types and "string" not in types and text in ("true", "false"):
        return text == "true"
    return text


def _secured(contract: Contract, operation: Operation) -> bool:
    security = operation.definition.get("security")
    if security is None:
        security = contract.document.get("security")
    return bool(security) and all(bool(requirement) for requirement in security)


class ContractCheck:
    """The contract's verdict on requests and answers; keep one per contract."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self.schemas = SchemaCheck(contract)

    def request(
        self,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> list[Violation]:
        return check_request(self.contract, method, path, query, headers, body, self.schemas)

    def response(
        self,
        operation_id: str,
        status: int,
        headers: Mapping[str, str],
        body: Any,
        body_is_json: bool,
    ) -> list[Violation]:
        return check_response(
            self.contract, operation_id, status, headers, body, body_is_json, self.schemas
        )


def check_request(
    contract: Contract,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    checker: SchemaCheck | None = None,
) -> list[Violation]:
    """Where the request breaks the contract. `headers` have lower-case names."""
    matched = find_operation(contract, method, path)
    if matched is None:
        unknown = f"{method} {path} is not an operation of the contract"
        return [Violation("operation", "path", unknown)]
    operation, checker = matched.operation, checker or SchemaCheck(contract)
    found: list[Violation] = []
    given = dict(reversed(list(query)))  # the first of repeated parameters, as servers read it
    for parameter in operation.definition.get("parameters") or []:
        parameter = contract.deref(parameter)
        name, where = parameter.get("name"), parameter.get("in")
        schema = parameter.get("schema") or {}
        text = (
            given.get(name)
            if where == "query"
            else matched.path_params.get(name)
            if where == "path"
            else headers.get(str(name).lower())
            if where == "header"
            else None
        )
        location = f"{where} {name}"
        if text is None:
            if parameter.get("required"):
                found.append(Violation("parameter", location, "required, absent"))
            continue
        for violation in checker.violations(schema, _coerce(text, schema, contract)):
            found.append(Violation("parameter", location, violation.message))
    if _secured(contract, operation):
        scheme, _, credentials = headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            found.append(Violation("auth", "header Authorization", "no bearer token"))
    found += _check_request_body(contract, checker, operation, headers, body)
    return found


def _check_request_body(
    contract: Contract,
    checker: SchemaCheck,
    operation: Operation,
    headers: Mapping[str, str],
    body: bytes,
) -> list[Violation]:
    declared = contract.deref(operation.definition.get("requestBody"))
    if not isinstance(declared, dict):
        return []
    if not body:
        return [Violation("body", "body", "required, absent")] if declared.get("required") else []
    content = declared.get("content") or {}
    media = media_type(headers.get("content-type"))
    schema = next(
        (c.get("schema") for m, c in content.items() if is_json_media(m) and isinstance(c, dict)),
        None,
    )
    if media not in content and not (schema is not None and is_json_media(media)):
        listed = ", ".join(content) or "none"
        return [Violation("content-type", "header Content-Type", f"not one of: {listed}")]
    if schema is None:
        return []
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return [Violation("body", "body", "not JSON")]
    # The contract says unknown body fields are ignored: not worth a word in a request.
    return checker.violations(schema, value, undocumented=False)


# -- responses --------------------------------------------------------------------------------


def check_response(
    contract: Contract,
    operation_id: str,
    status: int,
    headers: Mapping[str, str],
    body: Any,
    body_is_json: bool,
    checker: SchemaCheck | None = None,
) -> list[Violation]:
    """Where the answer breaks the contract. `headers` have lower-case names; `body` is the
    parsed JSON when `body_is_json`."""
    if operation_id not in contract.operations:
        return []
    response = contract.response(operation_id, status)
    if response is None:
        listed = ", ".join(sorted(contract.declared_statuses(operation_id)))
        return [
            Violation("status", "status", f"{status} is not declared for {operation_id} ({listed})")
        ]
    checker = checker or SchemaCheck(contract)
    found: list[Violation] = []
    for name, definition in (response.get("headers") or {}).items():
        definition = contract.deref(definition)
        value = headers.get(name.lower())
        if value is None:
            if definition.get("required"):
                found.append(Violation("header-presence", f"header {name}", "required, absent"))
            continue
        schema = definition.get("schema") or {}
        for violation in checker.violations(schema, _coerce(value.strip(), schema, contract)):
            found.append(Violation("header-value", f"header {name}", violation.message))
    content = response.get("content") or {}
    if not content:
        return found
    media = media_type(headers.get("content-type"))
    if media not in content:
        shown = media or "absent"
        found.append(
            Violation(
                "header-value", "header Content-Type", f"{shown}, not one of: {', '.join(content)}"
            )
        )
    schema = contract.body_schema(operation_id, status)
    if schema is not None:
        if not body_is_json:
            found.append(Violation("body", "body", "not JSON"))
        else:
            found += checker.violations(schema, body)
    return found[:MAX_VIOLATIONS]
