"""JSON shapes: key sets, types, nullability and array item shapes, never values.

`shape_of` folds every value at a place into one `Shape` (all items of an array share one), and
`diff_shapes` lists where two shapes disagree. A key only the emulator has and a key only the
target has, in the same object and with the same types, are one renamed key when nothing else
there could pair with either.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from emulator.drift.contract import ITEMS, json_type

DiffKind = Literal["missing-on-target", "missing-on-emulator", "renamed", "type", "nullability"]


@dataclass
class Shape:
    types: set[str] = field(default_factory=set)
    keys: dict[str, Shape] = field(default_factory=dict)
    items: Shape | None = None

    def add(self, value: Any) -> Shape:
        self.types.add(json_type(value))
        if isinstance(value, dict):
            keys = self.keys
            for key, item in value.items():
                shape = keys.get(key)
                if shape is None:  # (not setdefault: a page's items would each build a Shape)
                    shape = keys[str(key)] = Shape()
                shape.add(item)
        elif isinstance(value, list) and value:
            if self.items is None:
                self.items = Shape()
            for item in value:
                self.items.add(item)
        return self


def shape_of(value: Any) -> Shape:
    return Shape().add(value)


@dataclass(frozen=True)
class ShapeDiff:
    path: tuple[str, ...]
    kind: DiffKind
    emulator_types: frozenset[str]
    target_types: frozenset[str]
    # For `renamed`: the key the target has where the emulator has the last key of `path`.
    renamed_to: str | None = None

    @property
    def emulator(self) -> str:
        if self.renamed_to is not None:
            return f"{self.path[-1]}: {_describe(self.emulator_types)}"
        return _describe(self.emulator_types)

    @property
    def target(self) -> str:
        if self.renamed_to is not None:
            return f"{self.renamed_to}: {_describe(self.target_types)}"
        return _describe(self.target_types)


def _describe(types: frozenset[str]) -> str:
    return " | ".join(sorted(types)) if types else "absent"


def render_path(path: tuple[str, ...]) -> str:
    text = "$"
    for token in path:
        text += "[*]" if token == ITEMS else f".{token}"
    return text


def _only_nullability(emulator: set[str], target: set[str]) -> bool:
    """The sides differ in whether the value can be null, not in what it is otherwise."""
    if "null" not in emulator ^ target:
        return False
    e, t = emulator - {"null"}, target - {"null"}
    return e == t or not e or not t


def _renames(emulator: Shape, target: Shape) -> dict[str, str]:
    """Keys of `emulator` that `target` has under another name: the only key missing on the
    target with its types, paired with the only key missing on the emulator with the same types."""
    only_emulator = [k for k in emulator.keys if k not in target.keys]
    only_target = [k for k in target.keys if k not in emulator.keys]

    def by_types(keys: list[str], shape: Shape) -> dict[frozenset[str], list[str]]:
        found: dict[frozenset[str], list[str]] = {}
        for key in keys:
            found.setdefault(frozenset(shape.keys[key].types), []).append(key)
        return found

    mine, theirs = by_types(only_emulator, emulator), by_types(only_target, target)
    return {
        keys[0]: theirs[types][0]
        for types, keys in mine.items()
        if len(keys) == 1 and len(theirs.get(types, ())) == 1
    }


def diff_shapes(emulator: Shape, target: Shape, path: tuple[str, ...] = ()) -> Iterator[ShapeDiff]:
    if emulator.types != target.types:
        nullable = _only_nullability(emulator.types, target.types)
        kind: DiffKind = "nullability" if nullable else "type"
        yield ShapeDiff(path, kind, frozenset(emulator.types), frozenset(target.types))
    if "object" in emulator.types and "object" in target.types:
        renames = _renames(emulator, target)
        renamed_to = set(renames.values())
        for key in sorted(emulator.keys.keys() | target.keys.keys()):
            here = (*path, key)
            if key in renames:
                yield ShapeDiff(
                    here,
                    "renamed",
                    frozenset(emulator.keys[key].types),
                    frozenset(target.keys[renames[key]].types),
                    renamed_to=renames[key],
                )
                # Inside a renamed object or array, differences still count (under the old name).
                yield from diff_shapes(emulator.keys[key], target.keys[renames[key]], here)
            elif key in renamed_to:
                continue
            elif key not in target.keys:
                yield ShapeDiff(
                    here, "missing-on-target", frozenset(emulator.keys[key].types), frozenset()
                )
            elif key not in emulator.keys:
                yield ShapeDiff(
                    here, "missing-on-emulator", frozenset(), frozenset(target.keys[key].types)
                )
            else:
                yield from diff_shapes(emulator.keys[key], target.keys[key], here)
    if emulator.items is not None and target.items is not None:
        yield from diff_shapes(emulator.items, target.items, (*path, ITEMS))
