"""Link queries and pages, and the read-only store of the sandbox sample set."""

from __future__ import annotations

import bisect
import contextlib
import gc
import hashlib
import itertools
import operator
import sys
import threading
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from emulator import errors
from emulator.models import Analytics, Link, NewLink

SortKey = Literal["createdAt", "updatedAt", "title", "clicks"]
SortOrder = Literal["asc", "desc"]
SORT_KEYS: tuple[SortKey, ...] = ("createdAt", "updatedAt", "title", "clicks")
SORT_ORDERS: tuple[SortOrder, ...] = ("asc", "desc")


@dataclass(frozen=True)
class LinkQuery:
    q: str | None = None
    has_visits: bool | None = None
    limit: int = 25
    offset: int = 0
    sort_by: SortKey = "createdAt"
    sort_order: SortOrder = "desc"


@dataclass(frozen=True)
class Page:
    items: Sequence[Link]
    total: int
    limit: int
    offset: int

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.items) < self.total


class SandboxStore:
    """The static sample set, indexed for every sort order, filter and search.

    Links are numbered by their position in `links`. For each sort key the store keeps, as
    `array('i')` of link numbers, the ascending order (ties on id) and the same order restricted
    to visited and to unvisited links; a descending page reads an ascending order from the other
    end. For `q`, each sort key has a `_TextIndex` over the links in that key's order: it answers
    with a flag per link, in that order, so the page is the `offset`-th to `offset + limit`-th
    set flag (found by counting, see `_select`) and `total` is the count of flags.

    Only what the default list needs (the createdAt order) is built up front: every other index
    is built on its first use and kept (about half a second each at a million links), so that a
    large generated set starts serving sooner.
    """

    # A text field with at most this many distinct values, each shared by this many links on
    # average, is searched value by value (see _TextIndex; at most 2**16); tests change them to
    # cover both ways.
    _PLANES_MAX_DISTINCT = 4096
    _PLANES_MIN_SHARE = 16

    def __init__(self, links: Sequence[Link]) -> None:
        self._links = links = tuple(links)
        self._lock = threading.RLock()
        self._built: dict[tuple[object, ...], Any] = {}
        with _collection_paused():
            ids = list(map(_ID, links))
            # Ascending by id, repeated ids in input order: the tie order of every sort key, and
            # what `get` bisects (no dict of a million ids to build).
            self._by_id = array("i", sorted(range(len(links)), key=ids.__getitem__))
            del ids
            self._order("createdAt", None)

    def _index(self, name: tuple[object, ...], build: Callable[[], Any]) -> Any:
        """The index called `name`, built by `build()` on first use."""
        index = self._built.get(name)
        if index is None:
            with self._lock:
                index = self._built.get(name)
                if index is None:
                    with _collection_paused():
                        index = self._built[name] = build()
        return index

    def _order(self, key: SortKey, has_visits: bool | None) -> array[int]:
        """Links in ascending (key, id) order, of those with or without visits if asked."""
        if has_visits is None:
            return self._index(("order", key), lambda: self._sort(key))
        return self._index(("order", key, has_visits), lambda: self._filter(key, has_visits))

    def _sort(self, key: SortKey) -> array[int]:
        links = self._links
        if key == "clicks":
            primary = self._clicks()
        elif key == "title":
            primary = _title_ranks(list(map(_TITLE, links)))
        else:
            primary = _ranks(list(map(_CREATED if key == "createdAt" else _UPDATED, links)))
        # Stable: sorting the id order by the key leaves ties in id order.
        return array("i", sorted(self._by_id, key=primary.__getitem__))

    def _clicks(self) -> list[int]:
        """Each link's `clicks`: its analytics' total, or the verbatim value it was given."""

        def build() -> list[int]:
            links = self._links
            clicks = list(map(_TOTAL_CLICKS, map(_ANALYTICS, links)))
            for at in self._verbatim():
                clicks[at] = links[at].clicks
            return clicks

        return self._index(("clicks",), build)

    def _visited(self, key: SortKey) -> bytes:
        """1 for each link with visits, 0 for the others, in the key's ascending order."""
        order = self._order(key, None)
        visited = self._index(("visited",), self._visited_flags)
        return self._index(("visited", key), lambda: bytes(map(visited.__getitem__, order)))

    def _visited_flags(self) -> bytes:
        links = self._links
        flags = bytearray(map(operator.lt, itertools.repeat(0), self._clicks()))
        for at in self._verbatim():  # a verbatim hasVisits may disagree with the clicks
            flags[at] = links[at].has_visits
        return bytes(flags)

    def _verbatim(self) -> list[int]:
        """Where the links with verbatim values are (a snapshot's; none in a generated set)."""
        links = self._links

        def build() -> list[int]:
            return list(itertools.compress(range(len(links)), map(_VERBATIM, links)))

        return self._index(("verbatim",), build)

    def _filter(self, key: SortKey, has_visits: bool) -> array[int]:
        order, visited = self._order(key, None), self._visited(key)
        unvisited = visited.count(0)
        if key == "clicks" and not visited.count(0, unvisited):
            # The unvisited (no clicks) come first, unless a verbatim hasVisits disagrees.
            return order[unvisited:] if has_visits else order[:unvisited]
        chosen = visited if has_visits else visited.translate(_FLIP)
        return array("i", itertools.compress(order, chosen))

    def _text(self, key: SortKey) -> _TextIndex:
        """The text index over the links in the key's ascending order."""

        def columns() -> _TextColumns:
            return _TextColumns(
                tuple(list(map(get, self._links)) for get in (_TITLE, _SLUG, _DESTINATION)),
                planes_max_distinct=self._PLANES_MAX_DISTINCT,
                planes_min_share=self._PLANES_MIN_SHARE,
            )

        order = self._order(key, None)
        return self._index(("text", key), lambda: self._index(("text",), columns).index(order))

    def _slugs(self) -> dict[str, Link]:
        links = self._links
        return self._index(("slugs",), lambda: dict(zip(map(_SLUG, links), links, strict=True)))

    def __len__(self) -> int:
        """How many distinct ids (the links, as ids are unique)."""
        return self._index(("len",), lambda: len(set(map(_ID, self._links))))

    def get(self, link_id: str) -> Link | None:
        """The link with this id (the last of the input's, were the id repeated)."""
        links, by_id = self._links, self._by_id
        at = bisect.bisect_right(by_id, link_id, key=lambda index: links[index].id) - 1
        if at >= 0 and links[by_id[at]].id == link_id:
            return links[by_id[at]]
        return None

    def by_slug(self, slug: str) -> Link | None:
        return self._slugs().get(slug)

    def has_slug(self, slug: str) -> bool:
        return slug in self._slugs()

    def query(self, query: LinkQuery) -> Page:
        limit, offset, key = query.limit, query.offset, query.sort_by
        if query.q:
            flags = self._text(key).matches(query.q)  # in the key's ascending order
            if query.has_visits is not None:
                visited = self._index(
                    ("visited bits", key), lambda: int.from_bytes(self._visited(key), "little")
                )
                flags &= visited if query.has_visits else ~visited
            found = flags.to_bytes(len(self._links), "little")
            total = flags.bit_count()
        else:
            ordered = self._order(key, query.has_visits)
            total = len(ordered)
        # The page as ascending positions [first, stop) among the `total` links.
        start = min(offset, total)
        if query.sort_order == "asc":
            first, stop = start, min(start + limit, total)
        else:
            stop = total - start
            first = max(stop - limit, 0)
        if query.q:
            order = self._order(key, None)
            picked: Sequence[int] = [order[at] for at in _select(found, first, stop)]
        else:
            picked = ordered[first:stop] if first < stop else ()
        if query.sort_order == "desc":
            picked = picked[::-1]
        return Page(
            items=list(map(self._links.__getitem__, picked)),
            total=total,
            limit=limit,
            offset=offset,
        )

    def preview_create(self, new: NewLink, now: datetime) -> Link:
        """What a sandbox create answers: a well-formed link that is never stored."""
        if new.slug is not None and new.slug in self._slugs():
            raise errors.slug_taken(new.slug)
        seed = f"{new.title}\n{new.destination}\n{new.slug}\n{now.isoformat()}"
        digest = hashlib.sha256(seed.encode("utf-8", "surrogatepass")).hexdigest()
        slug = new.slug or self._generated_slug(digest)
        return Link(
            id="lnk_" + digest[:16],
            title=new.title,
            slug=slug,
            destination=new.destination,
            created_at=now,
            updated_at=now,
            analytics=Analytics(),
        )

    def _generated_slug(self, digest: str) -> str:
        for start in range(0, len(digest) - 8):
            candidate = digest[start : start + 8]
            if candidate not in self._slugs():
                return candidate
        raise AssertionError("a 64-hex digest always yields a free 8-character slug")


_ID = operator.attrgetter("id")
_TITLE = operator.attrgetter("title")
_SLUG = operator.attrgetter("slug")
_DESTINATION = operator.attrgetter("destination")
_CREATED = operator.attrgetter("created_at")
_UPDATED = operator.attrgetter("updated_at")
_ANALYTICS = operator.attrgetter("analytics")
_TOTAL_CLICKS = operator.attrgetter("total_clicks")
_VERBATIM = operator.attrgetter("verbatim")
_FLIP = bytes.maketrans(b"\x00\x01", b"\x01\x00")


def _ranks(values: list[Any]) -> list[int]:
    """Each value's rank among the distinct values (equal values, equal ranks)."""
    distinct = sorted(set(values))
    rank = dict(zip(distinct, range(len(distinct)), strict=True))
    return list(map(rank.__getitem__, values))


def _title_ranks(titles: list[str]) -> list[int]:
    """Each title's rank by `str.casefold()`, folding each distinct title once."""
    folded = {title: title.casefold() for title in dict.fromkeys(titles)}
    ordered = sorted(set(folded.values()))
    rank = dict(zip(ordered, range(len(ordered)), strict=True))
    rank_of_title = {title: rank[fold] for title, fold in folded.items()}
    return list(map(rank_of_title.__getitem__, titles))


def _select(flags: bytes, first: int, stop: int) -> list[int]:
    """Where the `first`-th to `stop - 1`-th ones of `flags` (0 or 1 each) are.

    A binary search for the `first`-th one by counting ones (`bytes.count`, a C loop) over
    halving ranges, about two passes over `flags` in all, then `find` for the next ones."""
    if first >= stop:
        return []
    low, high, skip = 0, len(flags), first  # the wanted one is in [low, high), after `skip` ones
    while high - low > 256:
        middle = (low + high) // 2
        ones = flags.count(1, low, middle)
        if ones > skip:
            high = middle
        else:
            skip -= ones
            low = middle
    at = flags.find(1, low)
    for _ in range(skip):
        at = flags.find(1, at + 1)
    found = [at]
    for _ in range(stop - first - 1):
        at = flags.find(1, at + 1)
        found.append(at)
    return found


class _TextIndex:
    """`q` over title, slug and destination: which links hold `q.casefold()` in a casefolded field.

    Built by `_TextColumns.index` for the links in some order, it answers with an int whose byte
    `i` is 1 when the `i`-th link in that order matches (so `&` filters it, `bit_count()` counts
    it), computed with bulk bytes and int operations: no Python code runs per link. A field is
    searched in one of two ways:

    - Value by value, when its values repeat (the generated set's titles and destinations):
      the needle is looked for in each distinct value, then `bytes.translate` maps each link's
      value number to 0 or 1, 256 values (a plane) at a time.
    - In a blob, otherwise (slugs): the casefolded values in UTF-8, each ended by 0xFE, a byte
      UTF-8 never uses. `replace` turns each occurrence of the needle (also UTF-8, so it matches
      whole characters only, and never spans two values) into 0xFF, `translate` deletes every
      other byte but 0xFE, and what is left reads, value by value, "0xFF... 0xFE" (a match) or
      "0xFE" (none), which a `replace` and a `translate` turn into one flag byte per value.
    """

    def __init__(self, planes: list[_Planes], blob_columns: list[list[str]]) -> None:
        self._planes = planes
        self._fields = len(blob_columns)
        self._blob = _blob(blob_columns) if blob_columns else b""

    def matches(self, q: str) -> int:
        needle = q.casefold()
        found = 0
        for planes in self._planes:
            found |= planes.matches(needle)
        if self._fields:
            found |= self._blob_matches(needle.encode("utf-8", "surrogatepass"))
        return found

    def _blob_matches(self, needle: bytes) -> int:
        if needle not in self._blob:
            return 0
        if len(needle) == 1:  # one pass: the needle's byte to 0xFF, 0xFE kept, the rest deleted
            table = bytes(range(256)).replace(needle, b"\xff")
            marks = self._blob.translate(table, _ALL_BUT_MARKS.replace(needle, b""))
        else:
            marks = self._blob.replace(needle, b"\xff").translate(None, _ALL_BUT_MARKS)
        # Each value now reads 0xFE (no match) or one or more 0xFF then 0xFE (a match).
        flags = marks.replace(b"\xff\xfe", b"\x01").translate(_END_TO_ZERO, b"\xff")
        fields = self._fields
        if fields == 1:
            return int.from_bytes(flags, "little")
        found = 0
        for field in range(fields):  # values are stored link by link, field by field
            found |= int.from_bytes(flags[field::fields], "little")
        return found


class _TextColumns:
    """Title, slug and destination of every link, in link order, ready to be put in any order
    for a `_TextIndex`: a field with few distinct values as their casefolded values and each
    link's value number (`array('H')`), any other field as each link's casefolded value."""

    def __init__(
        self, columns: tuple[list[str], ...], planes_max_distinct: int, planes_min_share: int
    ) -> None:
        n = len(columns[0])
        most = min(planes_max_distinct, n // planes_min_share)
        self._numbered: list[tuple[list[str], array[int]]] = []
        self._folded: list[list[str]] = []
        for column in columns:
            distinct = _few_distinct(column, most)
            if distinct is None:
                self._folded.append(list(map(str.casefold, column)))
            else:
                number = dict(zip(distinct, range(len(distinct)), strict=True))
                numbers = array("H", map(number.__getitem__, column))  # most is at most 2**16
                self._numbered.append(([value.casefold() for value in distinct], numbers))

    def index(self, order: array[int]) -> _TextIndex:
        """A `_TextIndex` over the links in `order`."""
        planes = [
            _Planes(folded, array("H", map(numbers.__getitem__, order)))
            for folded, numbers in self._numbered
        ]
        return _TextIndex(planes, [list(map(column.__getitem__, order)) for column in self._folded])


@contextlib.contextmanager
def _collection_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: building indexes over a million links makes many
    objects and no cycles, and each full collection would walk every link for nothing."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _few_distinct(column: list[str], most: int) -> list[str] | None:
    """The distinct values of `column`, or None when there are more than `most`."""
    if most < 1 or len(dict.fromkeys(column[: 4 * most + 1])) > most:  # a prefix rules most out
        return None
    distinct = list(dict.fromkeys(column))
    return distinct if len(distinct) <= most else None


_ALL_BUT_MARKS = bytes(range(0xFE))
_NEWLINE_TO_END = bytes.maketrans(b"\n", b"\xfe")
_END_TO_ZERO = bytes.maketrans(b"\xfe", b"\x00")


def _blob(columns: list[list[str]]) -> bytes:
    """Each link's values of `columns` in turn, in UTF-8, each followed by 0xFE."""
    values = (
        columns[0]
        if len(columns) == 1
        else list(itertools.chain.from_iterable(zip(*columns, strict=True)))
    )
    text = "\n".join(values)
    if values and text.count("\n") == len(values) - 1:  # no value holds a newline: one encode
        return text.encode("utf-8", "surrogatepass").translate(_NEWLINE_TO_END) + b"\xfe"
    return b"".join(value.encode("utf-8", "surrogatepass") + b"\xfe" for value in values)


class _Planes:
    """One field's distinct values, casefolded, and each link's value number as bytes."""

    def __init__(self, folded: list[str], numbers: array[int]) -> None:
        self._folded = folded
        if sys.byteorder != "little":
            numbers.byteswap()
        raw = numbers.tobytes()
        self._low = raw[0::2]
        self._high: list[int] | None = None
        if len(folded) > 256:
            high = raw[1::2]
            planes = (len(folded) + 255) // 256
            self._high = [
                int.from_bytes(high.translate(_one_at(plane)), "little") for plane in range(planes)
            ]

    def matches(self, needle: str) -> int:
        hits = [needle in value for value in self._folded]
        found = 0
        for plane in range(0, len(hits), 256):
            part = hits[plane : plane + 256]
            if not any(part):
                continue
            table = bytes(part).ljust(256, b"\x00")
            bits = int.from_bytes(self._low.translate(table), "little")
            if self._high is not None:
                bits &= self._high[plane // 256]
            found |= bits
        return found


def _one_at(byte: int) -> bytes:
    """A translate table mapping `byte` to 1 and every other byte to 0."""
    return bytes(byte) + b"\x01" + bytes(255 - byte)
