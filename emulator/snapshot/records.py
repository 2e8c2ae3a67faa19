"""From the target's answers to sample-set records: the contract's shape, and derived fields.

`first_mismatch` finds the first place where an answer does not have the shape the contract
describes (a key it requires and the answer lacks, a key it does not know, a JSON type it does
not allow), so a snapshot stops before writing a set the emulator would misread.

`record_from_detail` keeps what the emulator cannot derive (the detail's own fields and
analytics), and of the fields it derives (`shortUrl`, `qrCodeBase64`, `clicks`, `hasVisits`)
only those where the target's value differs from the emulator's: those are served verbatim.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from emulator.drift.contract import ITEMS, Alternatives, Contract, Schema, json_type
from emulator.qr import qr_png_base64
from emulator.sample_set import RECORD_KEYS, VERBATIM_KEYS
from emulator.serialize import short_url

SUMMARY_KEYS = tuple(key for key in (*RECORD_KEYS, *VERBATIM_KEYS) if key != "analytics")


@dataclass(frozen=True)
class Mismatch:
    """Where an answer leaves the contract's shape (`$.data[3].title`), and how."""

    where: str
    problem: str

    def __str__(self) -> str:
        return f"{self.where} {self.problem}"


@dataclass(frozen=True)
class _Place:
    """What the contract allows at one place of a schema (computed once per place)."""

    alternatives: Alternatives
    types: frozenset[str]
    keys: tuple[str, ...]  # the keys it names, in the contract's order


class ShapeChecker:
    """Checks answers against one response schema of the contract."""

    def __init__(self, contract: Contract, schema: Schema) -> None:
        self._contract = contract
        self._schema = schema
        self._places: dict[tuple[str, ...], _Place | None] = {}

    def first_mismatch(self, value: Any) -> Mismatch | None:
        return self._walk(value, (), "$")

    def _place(self, path: tuple[str, ...]) -> _Place | None:
        if path not in self._places:
            alternatives = self._contract.at(self._schema, path)
            if not alternatives:  # the contract says nothing here
                self._places[path] = None
            else:
                keys = dict.fromkeys(
                    key
                    for conjuncts in alternatives
                    for schema in conjuncts
                    for key in (schema.get("properties") or {})
                )
                types = frozenset(Contract.allowed_types(alternatives))
                self._places[path] = _Place(alternatives, types, tuple(keys))
        return self._places[path]

    def _walk(self, value: Any, path: tuple[str, ...], where: str) -> Mismatch | None:
        place = self._place(path)
        if place is None:
            return None
        kind = json_type(value)
        if kind not in place.types:
            allowed = " or ".join(sorted(place.types))
            return Mismatch(where, f"is {kind}, where the contract has {allowed}")
        if isinstance(value, dict):
            return self._walk_object(value, place, path, where)
        if isinstance(value, list):
            for index, item in enumerate(value):
                found = self._walk(item, (*path, ITEMS), f"{where}[{index}]")
                if found is not None:
                    return found
        return None

    def _walk_object(
        self, value: dict[str, Any], place: _Place, path: tuple[str, ...], where: str
    ) -> Mismatch | None:
        unknown = [
            key
            for key in value
            if key not in place.keys and Contract.key_rule(place.alternatives, key) == "forbidden"
        ]
        for key in place.keys:
            if key in value:
                found = self._walk(value[key], (*path, key), f"{where}.{key}")
                if found is not None:
                    return found
            elif Contract.key_rule(place.alternatives, key) == "required":
                instead = ""
                if unknown:
                    names = ", ".join(repr(name) for name in unknown)
                    instead = f" (the answer has {names}, which the contract does not name)"
                return Mismatch(
                    f"{where}.{key}", f"is missing, and the contract requires it{instead}"
                )
        if unknown:
            return Mismatch(f"{where}.{unknown[0]}", "is not in the contract")
        return None


def record_from_detail(detail: Mapping[str, Any], short_base: str) -> dict[str, Any]:
    """The sample-set record of a detail answer: its own fields, and any derived field whose
    value the emulator would not derive (kept verbatim)."""
    record = {key: detail[key] for key in RECORD_KEYS}
    for key in derived_differences(detail, short_base):
        record[key] = detail[key]
    return record


def derived_differences(detail: Mapping[str, Any], short_base: str) -> list[str]:
    """Which of `shortUrl`, `qrCodeBase64`, `clicks` and `hasVisits` differ from what the
    emulator derives: `shortUrl` from the short base and slug, the QR code from `shortUrl`,
    `clicks` and `hasVisits` from the analytics' `totalClicks`. A QR code kept verbatim keeps its
    `shortUrl` too: it encodes that URL."""
    total = detail["analytics"]["totalClicks"]
    url = detail["shortUrl"]
    differ = {
        "shortUrl": url != short_url(short_base, detail["slug"]),
        "qrCodeBase64": detail["qrCodeBase64"] != qr_png_base64(url),
        "clicks": detail["clicks"] != total,
        "hasVisits": detail["hasVisits"] != (total > 0),
    }
    differ["shortUrl"] = differ["shortUrl"] or differ["qrCodeBase64"]
    return [key for key in VERBATIM_KEYS if differ[key]]


def summary_differences(listed: Mapping[str, Any], detail: Mapping[str, Any]) -> list[str]:
    """The list item's fields whose value differs from the detail's."""
    return [key for key in SUMMARY_KEYS if listed.get(key) != detail.get(key)]
