"""Findings grouped by cause, so that one cause seen in many requests is one row, not many.

An `Occurrence` is one finding: its kind, its cause (the group's name), where it was seen with the
request set aside (`location`, e.g. `header X-RateLimit-Remaining`), the operation, what it was
seen in (a probe name, a journal sequence) and a representative emulator/target/contract triple.
A `Grouping` folds occurrences into `Group`s by a key: the drift report groups by cause
(`by_cause`), a proxy by operation and location (`by_operation`). Groups keep first-seen order;
`count`, `first` and `last` are exact, and `keep` bounds what a long-running caller holds in each
group, `most_groups` how many groups (an occurrence of a group beyond it is only counted).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
Source = str | int


@dataclass(frozen=True)
class Occurrence(Generic[T]):
    kind: str
    cause: str
    location: str
    operation: str
    seen_in: Source
    emulator: str
    target: str
    contract: str
    item: T


Key = Callable[[Occurrence[T]], Hashable]


def by_cause(occurrence: Occurrence[T]) -> Hashable:
    """One group per cause: the same kind of difference, the same place once the request (and,
    for a body field, where in the body it sits) is set aside."""
    return (occurrence.kind, occurrence.cause)


def by_operation(occurrence: Occurrence[T]) -> Hashable:
    """One group per operation, kind and exact location."""
    return (occurrence.operation, occurrence.kind, occurrence.location)


@dataclass
class Group(Generic[T]):
    key: Hashable
    first: Occurrence[T]
    last: Occurrence[T]
    count: int = 0
    occurrences: list[Occurrence[T]] = field(default_factory=list)
    _seen_in: dict[Source, None] = field(default_factory=dict)
    _operations: dict[str, None] = field(default_factory=dict)
    _locations: dict[str, None] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.first.kind

    @property
    def cause(self) -> str:
        return self.first.cause

    @property
    def example(self) -> Occurrence[T]:
        """The representative occurrence: the first one seen."""
        return self.first

    @property
    def seen_in(self) -> list[Source]:
        """What the group was seen in (probes, journal sequences), first-seen order, distinct."""
        return list(self._seen_in)

    @property
    def operations(self) -> list[str]:
        return list(self._operations)

    @property
    def locations(self) -> list[str]:
        return list(self._locations)

    @property
    def items(self) -> list[T]:
        return [occurrence.item for occurrence in self.occurrences]

    def add(self, occurrence: Occurrence[T], keep: int | None) -> None:
        self.count += 1
        self.last = occurrence
        if keep is None or len(self.occurrences) < keep:
            self.occurrences.append(occurrence)
        if keep is None or len(self._seen_in) < keep:
            self._seen_in.setdefault(occurrence.seen_in, None)
        self._operations.setdefault(occurrence.operation, None)
        self._locations.setdefault(occurrence.location, None)


class Grouping(Generic[T]):
    """Occurrences folded into groups by `key`. With `keep`, each group holds at most that many
    occurrences and distinct sources (the count, first and last stay exact). With `most_groups`,
    an occurrence that would open one group too many is counted in `overflow` instead."""

    def __init__(
        self, key: Key[T] = by_cause, *, keep: int | None = None, most_groups: int | None = None
    ) -> None:
        if keep is not None and keep < 1:
            raise ValueError("keep must be at least 1")
        if most_groups is not None and most_groups < 1:
            raise ValueError("most_groups must be at least 1")
        self.key = key
        self.keep = keep
        self.most_groups = most_groups
        self.overflow = 0
        self._groups: dict[Hashable, Group[T]] = {}

    def add(self, occurrence: Occurrence[T]) -> Group[T] | None:
        """The occurrence's group; `None` when it would have opened one beyond `most_groups`."""
        key = self.key(occurrence)
        group = self._groups.get(key)
        if group is None:
            if self.most_groups is not None and len(self._groups) >= self.most_groups:
                self.overflow += 1
                return None
            group = self._groups[key] = Group(key, first=occurrence, last=occurrence)
        group.add(occurrence, self.keep)
        return group

    def extend(self, occurrences: Iterable[Occurrence[T]]) -> Grouping[T]:
        for occurrence in occurrences:
            self.add(occurrence)
        return self

    def groups(self) -> list[Group[T]]:
        """The groups in the order their first occurrence was added."""
        return list(self._groups.values())

    def clear(self) -> None:
        self._groups.clear()
        self.overflow = 0

    def __len__(self) -> int:
        return len(self._groups)


def group(occurrences: Iterable[Occurrence[T]], key: Key[T] = by_cause) -> list[Group[T]]:
    """Every occurrence, kept, under its group."""
    return Grouping(key).extend(occurrences).groups()
