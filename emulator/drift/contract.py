"""Reading the contract for the drift check: what it says about a response, a header or a field.

It answers "which side does the contract agree with?": the declared statuses of an operation,
whether a header is required, and what JSON types and keys the schema allows at a path.
Schemas are walked as alternatives of conjuncts (`oneOf`/`anyOf` give alternatives; `$ref`
with siblings and `allOf` give conjuncts), which covers every construct the contract uses.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

Schema = Mapping[str, Any]
Alternatives = list[list[Schema]]
KeyRule = Literal["required", "optional", "forbidden", "unknown"]
HeaderRule = Literal["required", "optional", "undeclared"]

ITEMS = "[]"
ALL_TYPES = frozenset({"null", "boolean", "integer", "number", "string", "array", "object"})
_MAX_DEPTH = 32


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    path: str
    definition: Schema


class Contract:
    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self.operations: dict[str, Operation] = {}
        for path, item in (document.get("paths") or {}).items():
            for method, definition in item.items():
                if isinstance(definition, dict) and "operationId" in definition:
                    op_id = definition["operationId"]
                    self.operations[op_id] = Operation(op_id, method.upper(), path, definition)

    @classmethod
    def load(cls, path: Path) -> Contract:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict) or "paths" not in document:
            raise ValueError(f"{path} is not an OpenAPI document")
        return cls(document)

    # -- references ---------------------------------------------------------------------------

    def deref(self, node: Any) -> Any:
        for _ in range(_MAX_DEPTH):
            if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
                return node
            ref: str = node["$ref"]
            if not ref.startswith("#/"):
                return {}
            target: Any = self.document
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part, {}) if isinstance(target, dict) else {}
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            if siblings:
                return {"allOf": [target, siblings]}
            node = target
        return node

    # -- responses and headers ----------------------------------------------------------------

    def declared_statuses(self, operation_id: str) -> set[str]:
        op = self.operations.get(operation_id)
        return set((op.definition.get("responses") or {}).keys()) if op else set()

    def declares_status(self, operation_id: str, status: int) -> bool:
        declared = self.declared_statuses(operation_id)
        return (
            str(status) in declared or f"{str(status)[0]}XX" in declared or ("default" in declared)
        )

    def response(self, operation_id: str, status: int) -> Mapping[str, Any] | None:
        op = self.operations.get(operation_id)
        if op is None:
            return None
        responses = op.definition.get("responses") or {}
        for key in (str(status), f"{str(status)[0]}XX", "default"):
            if key in responses:
                resolved = self.deref(responses[key])
                return resolved if isinstance(resolved, dict) else None
        return None

    def body_schema(self, operation_id: str, status: int) -> Schema | None:
        response = self.response(operation_id, status)
        if response is None:
            return None
        for media, content in (response.get("content") or {}).items():
            if "json" in media and isinstance(content, dict) and "schema" in content:
                schema: Schema = content["schema"]
                return schema
        return None

    def media_types(self, operation_id: str, status: int) -> set[str]:
        response = self.response(operation_id, status)
        return set((response or {}).get("content") or {})

    def header_rule(self, operation_id: str, status: int, name: str) -> HeaderRule:
        response = self.response(operation_id, status)
        for header, definition in ((response or {}).get("headers") or {}).items():
            if header.lower() == name.lower():
                resolved = self.deref(definition)
                required = isinstance(resolved, dict) and resolved.get("required", False)
                return "required" if required else "optional"
        return "undeclared"

    def parameter_default(self, operation_id: str, name: str) -> Any:
        op = self.operations.get(operation_id)
        for parameter in (op.definition.get("parameters") or []) if op else []:
            parameter = self.deref(parameter)
            if parameter.get("name") == name:
                return self.deref(parameter.get("schema") or {}).get("default")
        return None

    # -- schemas ------------------------------------------------------------------------------

    def alternatives(self, schema: Any, depth: int = 0) -> Alternatives:
        """The schema as alternatives, each a list of schemas that must all hold."""
        if depth > _MAX_DEPTH:
            return [[{}]]
        schema = self.deref(schema)
        if not isinstance(schema, dict):
            return [[{}]] if schema is not False else []
        base = {k: v for k, v in schema.items() if k not in ("allOf", "oneOf", "anyOf")}
        result: Alternatives = [[base]]
        for part in schema.get("allOf") or []:
            result = [
                a + b for a, b in itertools.product(result, self.alternatives(part, depth + 1))
            ]
        choices = list(schema.get("oneOf") or []) + list(schema.get("anyOf") or [])
        if choices:
            options = [alt for choice in choices for alt in self.alternatives(choice, depth + 1)]
            result = [a + b for a, b in itertools.product(result, options)]
        return result

    def at(self, schema: Schema | None, path: Iterable[str]) -> Alternatives | None:
        """The alternatives that apply at `path` (keys, and `[]` for array items); `None` when the
        contract has no schema there."""
        if schema is None:
            return None
        current = self.alternatives(schema)
        for token in path:
            following: Alternatives = []
            for conjuncts in current:
                following.extend(self._step(conjuncts, token))
            current = following
        return current

    def _step(self, conjuncts: list[Schema], token: str) -> Alternatives:
        if token == ITEMS:
            parts = [c["items"] for c in conjuncts if isinstance(c.get("items"), dict)]
        else:
            parts = [
                c["properties"][token] for c in conjuncts if token in (c.get("properties") or {})
            ]
            if not parts:
                if any(c.get("additionalProperties") is False for c in conjuncts):
                    return []
                parts = [
                    c["additionalProperties"]
                    for c in conjuncts
                    if isinstance(c.get("additionalProperties"), dict)
                ]
        if not parts:
            return [[{}]]
        result: Alternatives = [[]]
        for part in parts:
            result = [a + b for a, b in itertools.product(result, self.alternatives(part))]
        return result

    @staticmethod
    def allowed_types(alternatives: Alternatives) -> set[str]:
        allowed: set[str] = set()
        for conjuncts in alternatives:
            types = set(ALL_TYPES)
            for schema in conjuncts:
                types &= _types_of(schema)
            allowed |= types
        if "number" in allowed:
            allowed.add("integer")
        return allowed

    @staticmethod
    def key_rule(alternatives: Alternatives | None, key: str) -> KeyRule:
        if not alternatives:
            return "unknown"
        rules: set[str] = set()
        for conjuncts in alternatives:
            if any(key in (c.get("required") or []) for c in conjuncts):
                rules.add("required")
            elif any(key in (c.get("properties") or {}) for c in conjuncts):
                rules.add("optional")
            elif any(c.get("additionalProperties") is False for c in conjuncts):
                rules.add("forbidden")
            else:
                rules.add("optional")
        if len(rules) == 1:
            (rule,) = rules
            return rule  # type: ignore[return-value]
        return "optional"

    @staticmethod
    def enum_at(alternatives: Alternatives | None) -> set[Any] | None:
        """Values an `enum`/`const` allows at a place, or `None` when any is allowed."""
        if not alternatives:
            return None
        values: set[Any] = set()
        for conjuncts in alternatives:
            allowed: set[Any] | None = None
            for schema in conjuncts:
                own = set(schema["enum"]) if "enum" in schema else None
                if "const" in schema:
                    own = {schema["const"]}
                if own is not None:
                    allowed = own if allowed is None else allowed & own
            if allowed is None:
                return None
            values |= allowed
        return values


def _types_of(schema: Schema) -> set[str]:
    if "const" in schema:
        return {json_type(schema["const"])}
    if "enum" in schema:
        return {json_type(value) for value in schema["enum"]}
    declared = schema.get("type")
    if declared is None:
        return set(ALL_TYPES)
    names = {declared} if isinstance(declared, str) else set(declared)
    if schema.get("nullable") is True:
        names.add("null")
    if "number" in names:
        names.add("integer")
    return names


_JSON_TYPES: dict[type, str] = {
    type(None): "null",
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def json_type(value: Any) -> str:
    exact = _JSON_TYPES.get(type(value))  # the usual case, decoded JSON, in one lookup
    if exact is not None:
        return exact
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
