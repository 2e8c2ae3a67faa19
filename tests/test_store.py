"""SandboxStore.query against a naive reference: filter, sort by (key, id), slice.

The store answers from precomputed orders and a bulk text index (see emulator/store.py); the
reference below is the spec's rule written as plainly as possible. Both text-search ways (value by
value in planes, and the blob) are forced in turn, so each is compared on the same data.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator import sandbox
from emulator import store as store_module
from emulator.models import Analytics, Link
from emulator.sample_set import load_sample_set
from emulator.settings import default_fixtures_dir
from emulator.store import SORT_KEYS, SORT_ORDERS, LinkQuery, SandboxStore

SAMPLE = load_sample_set(default_fixtures_dir() / "sandbox_links.json")
T0 = datetime(2024, 1, 1, tzinfo=UTC)
# Characters whose casefold differs in length or shape, and the separators the blob must respect.
TRICKY = [
    "ß",
    "ẞ",
    "SS",
    "ss",
    "İ",
    "i̇",
    "ﬁ",
    "Σ",
    "ς",
    "\u03c3",
    "東京",
    "🚀",
    "\x00",
    "\n",
    "\ud800",
]


def reference(links: Sequence[Link], query: LinkQuery) -> tuple[list[Link], int]:
    """The spec's list rules, naively."""
    chosen = list(links)
    if query.q:
        needle = query.q.casefold()
        chosen = [
            link
            for link in chosen
            if needle in link.title.casefold()
            or needle in link.slug.casefold()
            or needle in link.destination.casefold()
        ]
    if query.has_visits is not None:
        chosen = [link for link in chosen if (link.clicks > 0) is query.has_visits]
    value = {
        "createdAt": lambda link: link.created_at,
        "updatedAt": lambda link: link.updated_at,
        "title": lambda link: link.title.casefold(),
        "clicks": lambda link: link.clicks,
    }[query.sort_by]
    chosen.sort(key=lambda link: (value(link), link.id), reverse=query.sort_order == "desc")
    return chosen[query.offset : query.offset + query.limit], len(chosen)


class PlanesStore(SandboxStore):
    """Every text field searched value by value (256-value planes)."""

    _PLANES_MAX_DISTINCT = 1 << 16
    _PLANES_MIN_SHARE = 1


class BlobStore(SandboxStore):
    """Every text field searched in the blob."""

    _PLANES_MAX_DISTINCT = 0


STORES = (SandboxStore, PlanesStore, BlobStore)


def assert_agrees(store: SandboxStore, links: Sequence[Link], query: LinkQuery) -> None:
    page = store.query(query)
    if links is GENERATED:  # the same few filters and orders, many pages: sort each once
        everything = _generated_reference(replace(query, limit=len(links), offset=0))
        want = everything[query.offset : query.offset + query.limit]
        total = len(everything)
    else:
        want, total = reference(links, query)
    assert page.total == total, query
    assert [link.id for link in page.items] == [link.id for link in want], query
    assert list(page.items) == want


# --- random small sets ------------------------------------------------------------------------

words = st.sampled_from(["Launch", "launch", "sale", "Straße", "STRASSE", "İstanbul", "ﬁle", "a"])
titles = st.one_of(
    words,
    st.lists(words, min_size=1, max_size=3).map(" ".join),
    st.sampled_from(TRICKY),
    st.text(min_size=1, max_size=12),
)
destinations = st.builds(
    "{}://{}{}".format,
    st.sampled_from(["http", "https"]),
    st.sampled_from(["example.com", "ШКОЛА.рф", "xn--bcher-kva.example", "Go.Dev"]),
    st.sampled_from(["", "/", "/Launch?x=ß", "/a\x00b", "/%C3%9F"]),
)
instants = st.integers(0, 6).map(lambda day: T0 + timedelta(days=day))


@st.composite
def link_sets(draw: st.DrawFn) -> list[Link]:
    count = draw(st.integers(0, 40))
    numbers = draw(st.lists(st.integers(0, 2**64 - 1), min_size=count, max_size=count, unique=True))
    shared = draw(st.lists(titles, min_size=1, max_size=4))  # repeated titles: ties, and planes
    links = []
    for position, number in enumerate(numbers):
        created = draw(instants)
        links.append(
            Link(
                id=f"lnk_{number:016x}",
                title=draw(st.one_of(st.sampled_from(shared), titles)),
                slug=draw(st.sampled_from(["go", "sale", "launch-ß", "x"])) + f"-{position}",
                destination=draw(destinations),
                created_at=created,
                updated_at=created + timedelta(hours=draw(st.integers(0, 3))),
                analytics=Analytics(total_clicks=draw(st.sampled_from([0, 0, 1, 2, 7]))),
            )
        )
    return links


def needles(links: Sequence[Link]) -> st.SearchStrategy[str | None]:
    """Pieces of the links' own fields (in other cases too), tricky characters, and noise."""
    fields = [text for link in links for text in (link.title, link.slug, link.destination)]
    pieces = st.nothing()
    if fields:
        pieces = st.tuples(st.sampled_from(fields), st.integers(0, 30), st.integers(1, 6)).map(
            lambda drawn: drawn[0][drawn[1] : drawn[1] + drawn[2]]
        )
    cased = pieces.flatmap(lambda piece: st.sampled_from([piece, piece.upper(), piece.lower()]))
    return st.one_of(
        st.none(),
        cased,
        st.sampled_from([*TRICKY, "a", "-", "://", "launch", "no such text"]),
        st.text(max_size=4),
    )


@st.composite
def queries(draw: st.DrawFn, links: Sequence[Link]) -> LinkQuery:
    return LinkQuery(
        q=draw(needles(links)),
        has_visits=draw(st.sampled_from([None, True, False])),
        limit=draw(st.integers(1, 12)),
        offset=draw(st.integers(0, len(links) + 2)),
        sort_by=draw(st.sampled_from(SORT_KEYS)),
        sort_order=draw(st.sampled_from(SORT_ORDERS)),
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), links=link_sets(), kind=st.sampled_from(STORES))
def test_random_sets_agree_with_the_reference(
    data: st.DataObject, links: list[Link], kind: type[SandboxStore]
) -> None:
    store = kind(links)
    assert len(store) == len(links)
    for _ in range(8):
        assert_agrees(store, links, data.draw(queries(links)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_sample_set_agrees_with_the_reference(data: st.DataObject) -> None:
    for _ in range(4):
        kind = data.draw(st.sampled_from(STORES))
        assert_agrees(_sample_store(kind), SAMPLE, data.draw(queries(SAMPLE)))


_SAMPLE_STORES: dict[type[SandboxStore], SandboxStore] = {}


def _sample_store(kind: type[SandboxStore]) -> SandboxStore:
    if kind not in _SAMPLE_STORES:
        _SAMPLE_STORES[kind] = kind(SAMPLE)
    return _SAMPLE_STORES[kind]


# --- a generated set: every sort key, order and offset -----------------------------------------

GENERATED = sandbox.generate(5000)


@functools.cache
def _generated_reference(query: LinkQuery) -> list[Link]:
    return reference(GENERATED, query)[0]


@pytest.fixture(scope="module")
def generated_store() -> SandboxStore:
    return SandboxStore(GENERATED)


@pytest.mark.parametrize("sort_by", SORT_KEYS)
@pytest.mark.parametrize("sort_order", SORT_ORDERS)
@pytest.mark.parametrize("has_visits", [None, True, False])
def test_generated_pages_agree_at_every_offset(
    generated_store: SandboxStore, sort_by: str, sort_order: str, has_visits: bool | None
) -> None:
    n = len(GENERATED)
    offsets = [0, 1, 24, 25, 99, n // 3, n // 2, 3499, n - 100, n - 25, n - 1, n, n + 7]
    for offset, limit in itertools.product(offsets, [1, 25, 100]):
        query = LinkQuery(
            has_visits=has_visits,
            limit=limit,
            offset=offset,
            sort_by=sort_by,  # type: ignore[arg-type]
            sort_order=sort_order,  # type: ignore[arg-type]
        )
        assert_agrees(generated_store, GENERATED, query)


GENERATED_NEEDLES = ["a", "launch", "LAUNCH", "ß", "ss", "東京", "-1f", "https", "🎉", "zz", "\x00"]


@pytest.mark.parametrize("kind", STORES)
def test_generated_searches_agree(kind: type[SandboxStore]) -> None:
    """PlanesStore has more than 256 distinct titles here: several planes, masked by high byte."""
    store = kind(GENERATED)
    n = len(GENERATED)
    for q, sort_by, sort_order in itertools.product(GENERATED_NEEDLES, SORT_KEYS, SORT_ORDERS):
        for has_visits, offset in itertools.product([None, True, False], [0, 37, n // 4, n]):
            query = LinkQuery(
                q=q,
                has_visits=has_visits,
                offset=offset,
                sort_by=sort_by,  # type: ignore[arg-type]
                sort_order=sort_order,  # type: ignore[arg-type]
            )
            assert_agrees(store, GENERATED, query)


@given(
    flags=st.lists(st.booleans(), max_size=2000).map(bytes),
    first=st.integers(0, 2100),
    count=st.integers(0, 120),
)
def test_select_finds_the_first_to_stop_ones(flags: bytes, first: int, count: int) -> None:
    ones = [at for at, flag in enumerate(flags) if flag]
    stop = min(first + count, len(ones))
    assert store_module._select(flags, first, stop) == ones[first:stop]


def test_lookups(generated_store: SandboxStore) -> None:
    assert len(generated_store) == len(GENERATED)
    for link in GENERATED[::97]:
        assert generated_store.get(link.id) is link
        assert generated_store.by_slug(link.slug) is link
    assert generated_store.get("lnk_0000000000000000") is None
    assert generated_store.by_slug("launch-page") is None


def test_an_empty_store_answers_empty_pages() -> None:
    store = SandboxStore([])
    for q in (None, "a"):
        page = store.query(LinkQuery(q=q))
        assert (list(page.items), page.total, page.has_more) == ([], 0, False)


def test_repeated_ids_keep_every_link() -> None:
    twin = GENERATED[1]
    links = [GENERATED[0], twin, GENERATED[2], twin]
    store = SandboxStore(links)
    page = store.query(LinkQuery(sort_order="asc"))
    assert page.total == 4
    assert sorted(link.id for link in page.items) == sorted(link.id for link in links)


def test_generate_is_its_per_link_definition() -> None:
    """The chunked, column-at-a-time generator gives what the plain per-link loop spells out,
    across chunk boundaries and for other seeds."""
    for seed in (8, 0, 123456789):
        pools = sandbox._Pools(seed)
        with mock.patch.object(sandbox, "_CHUNK", 1000):
            links = sandbox.generate(2500, seed)
        assert list(links) == [sandbox._reference_link(pools, i) for i in range(2500)], seed
    size = sandbox._CHUNK + 3
    links = sandbox.generate(size)
    pools = sandbox._Pools(8)
    for index in [0, sandbox._CHUNK - 1, sandbox._CHUNK, size - 1]:
        assert links[index] == sandbox._reference_link(pools, index), index
