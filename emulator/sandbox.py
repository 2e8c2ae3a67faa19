"""A large generated sandbox set for scale tests (the committed sample set is read by
`emulator.sample_set`, from the file `fixtures/generate_sandbox.py` writes with a seeded Faker).

`generate(n, seed)` builds up to a million links from small word lists and integer mixing,
without Faker: the same `n` and `seed` give the same links on every run and machine.
"""

from __future__ import annotations

import collections
import dataclasses
import gc
import itertools
import operator
import random
import sys
from array import array
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from emulator.models import Analytics, Count, Devices, Link

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_START = datetime(2019, 1, 1, tzinfo=UTC)
_END = datetime(2026, 11, 1, tzinfo=UTC)  # exclusive, as in the sample set
_LAST_DAY = date(2026, 10, 31)
_INSTANTS = 8192  # createdAt/updatedAt come from a shared pool: ties, and less memory
_VARIANTS = 4  # analytics variants per pool instant
_VISITED_OF_64 = 45  # ~70 % of links have visits

_SLUG_WORDS = (
    "launch", "spring", "summer", "sale", "promo", "news", "event", "docs", "blog", "shop",
    "guide", "webinar", "offer", "careers", "press", "report", "menu", "tickets", "survey", "demo",
    "beta", "jobs", "store", "deal", "tour", "expo", "talk", "recap", "faq", "wiki", "app", "go",
)  # fmt: skip
_ADJECTIVES = (
    "Launch", "launch", "Spring", "Summer", "Winter", "Autumn", "Big", "Final", "Early-bird",
    "Flash", "Weekly", "Annual", "Secret", "Free", "Nouvelle", "Été", "Große", "Neue", "Café",
    "東京", "新しい", "夏の", "Première", "Última", "🚀", "Zürich", "São Paulo", "Straße",
)  # fmt: skip
_NOUNS = (
    "page", "Page", "sale", "launch", "event", "newsletter", "webinar", "offer", "report", "menu",
    "tickets", "survey", "demo", "landing", "campaign", "promo", "guide", "recap", "collection",
    "boutique", "Angebote", "セール", "イベント", "活动", "ofertas", "🎉", "party", "release",
)  # fmt: skip
_HOSTS = (
    "8here.in", "example.com", "www.example.org", "shop.acme.io", "blog.acme.io", "github.com",
    "docs.python.org", "en.wikipedia.org", "www.youtube.com", "news.ycombinator.com", "forms.gle",
    "xn--bcher-kva.example", "localhost:8080", "192.0.2.10", "store.example.net", "acme.co.uk",
)  # fmt: skip
_PATHS = (
    "", "/", "/launch", "/sale?utm_source=8here", "/events/2025", "/blog/post-1", "/caf%C3%A9",
    "/a/b/c?x=1&y=2#top", "/LAUNCH", "/docs/3/", "/products/123", "/?q=%E2%9C%93", "/jobs",
    "/newsletter", "/p/launch-week", "/tickets#buy",
)  # fmt: skip
_COUNTRIES = ("US", "IN", "DE", "GB", "FR", "JP", "BR", "CA", "AU", "ES", "NL", "KR")
_REFERRERS = ("direct", "google.com", "t.co", "facebook.com", "linkedin.com", "reddit.com")


def generate(n: int, seed: int = 8) -> tuple[Link, ...]:
    """`n` deterministic sandbox links for scale tests (a million builds in a few seconds).

    Ids and slugs are unique; titles, destinations and timestamps come from shared pools, so
    every sort key has ties; about 70 % of the links have visits.

    Link `i` is drawn from `h = _mix(base + (i + 1) * _GOLDEN)`: its id is `h` in hex, and bit
    fields of `h` pick its title, slug word, destination, dates and analytics, as the plain
    per-link `_reference_link` spells out. Here the hashes are computed a chunk at a time
    (`_hashes`) and every field a column at a time (`_Chunk`), so little runs as Python bytecode
    per link; the analytics variants the links use are made first, together, before the links.
    """
    if n < 0 or seed < 0:
        raise ValueError("n and seed must be >= 0")
    pools = _Pools(seed)
    collecting = gc.isenabled()
    gc.disable()  # a million new objects would set off many full collections that free nothing
    try:
        chunks = [_Chunk(pools, start, min(start + _CHUNK, n)) for start in range(0, n, _CHUNK)]
        used = set().union(*(chunk.variants for chunk in chunks))
        variants = [pools.visited(key) if key in used else None for key in range(_NO_VISITS)]
        variants.append(Analytics())  # _NO_VISITS: the links without visits
        links: list[Link] = []
        chunks.reverse()
        while chunks:  # each chunk's columns are dropped once its links are made
            links += chunks.pop().links(pools, variants)
    finally:
        if collecting:
            gc.enable()
    return tuple(links)


_CHUNK = 1 << 16  # links per chunk: its hashes are one 2 MB integer
_WORD = "I" if array("I").itemsize == 4 else "L"  # a 4-byte array type code
_NO_VISITS = _INSTANTS * _VARIANTS  # the analytics variant number of a link without visits


class _Pools:
    """The per-seed pools every link draws from, and lookup tables over bit fields of `h`."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        titles = _title_pool(rng)
        destinations = [
            f"{'http' if k % 5 == 0 else 'https'}://{host}{path}"
            for k, (host, path) in enumerate(itertools.product(_HOSTS, _PATHS))
        ]
        span = int((_END - _START).total_seconds()) - 86400
        seconds = sorted(rng.randrange(span) for _ in range(_INSTANTS))
        self.seed = seed
        self.base = (seed * 0xD1B54A32D192ED03) & _MASK
        self.instants = [_START + timedelta(seconds=s) for s in seconds]
        # h & 0xFFFF -> title; (h >> 16) & 0xFFFF -> destination; (h >> 8) & 0xFF -> slug word
        self.title_of = [titles[v % len(titles)] for v in range(1 << 16)]
        self.destination_of = [destinations[v % len(destinations)] for v in range(1 << 16)]
        self.slug_word_of = [f"{_SLUG_WORDS[v & 31]}-" for v in range(256)]

    def visited(self, variant: int) -> Analytics:
        """Analytics variant `variant` (instant index * _VARIANTS + a 2-bit pick)."""
        return _visited(self.instants[variant // _VARIANTS], (self.seed << 20) | variant)


class _Chunk:
    """Links `start` to `stop - 1`: their hashes, then their fields a column at a time."""

    def __init__(self, pools: _Pools, start: int, stop: int) -> None:
        self.start, self.stop = start, stop
        self.hashes = hashes = _hashes(pools.base, start, stop)
        raw = hashes.tobytes() if sys.byteorder == "little" else _swapped(hashes)
        self.raw = raw  # each h in 8 little-endian bytes
        # Bit fields of each h, read from its little-endian bytes as 16- and 32-bit words.
        self.halves, words = array("H", raw), array(_WORD, raw)
        if sys.byteorder != "little":
            self.halves.byteswap()
            words.byteswap()
        # h >> 32: 13 bits instant, 13 bits updatedAt offset, 6 bits visited
        self.high = high = words[1::2]
        self.analytics = array(
            "i",
            [
                (v & 8191) * _VARIANTS + (b & (_VARIANTS - 1))
                if (v >> 26) < _VISITED_OF_64
                else _NO_VISITS
                for v, b in zip(high, raw[3::8], strict=True)
            ],
        )
        self.variants = set(self.analytics)
        self.variants.discard(_NO_VISITS)

    def links(self, pools: _Pools, variants: list[Analytics | None]) -> list[Link]:
        instants, high = pools.instants, self.high
        ids = _hex_ids(self.hashes)
        titles = map(pools.title_of.__getitem__, self.halves[0::4])
        slugs = map(
            operator.add,
            map(pools.slug_word_of.__getitem__, self.raw[1::8]),
            map(format, range(self.start, self.stop), itertools.repeat("x")),
        )
        destinations = map(pools.destination_of.__getitem__, self.halves[1::4])
        created = map(
            instants.__getitem__, map(operator.and_, high, itertools.repeat(_INSTANTS - 1))
        )
        updated = [
            instants[(v & 8191) + ((v >> 13) & 8191) % (_INSTANTS - (v & 8191))] for v in high
        ]
        analytics = map(variants.__getitem__, self.analytics)
        verbatim = itertools.repeat(None)  # generated links derive every field
        return _new_links(
            self.stop - self.start,
            (ids, titles, slugs, destinations, created, updated, analytics, verbatim),
        )


_LINK_FIELDS = tuple(field.name for field in dataclasses.fields(Link))


def _new_links(count: int, columns: tuple[Iterable[Any], ...]) -> list[Link]:
    """`Link(*row)` for each row of `columns`, set a field (a column) at a time.

    A frozen dataclass's `__init__` sets each field with `object.__setattr__`, in field order;
    this does the same from C loops (`map`), a third of the time of a million `__init__` calls.
    Link has no `__post_init__`; were one added, this falls back to calling `Link`.
    """
    if hasattr(Link, "__post_init__") or len(columns) != len(_LINK_FIELDS):
        return list(map(Link, *columns))
    links = list(map(object.__new__, itertools.repeat(Link, count)))
    for name, column in zip(_LINK_FIELDS, columns, strict=True):
        collections.deque(map(object.__setattr__, links, itertools.repeat(name), column), 0)
    return links


def _hashes(base: int, start: int, stop: int) -> array[int]:
    """`_mix((base + (i + 1) * _GOLDEN) & _MASK)` for i in range(start, stop), as array('Q').

    All of a chunk's values are mixed at once, as 128-bit lanes of one big integer: a lane holds
    a 64-bit value in its low half, so a lane's product with a 64-bit constant never carries into
    the next lane, and `& lanes` (the low half of every lane) reduces every lane mod 2**64 and
    clears what a right shift moved in from the lane above."""
    count = stop - start
    lanes = _repeat(_MASK, count)
    counters = array("Q", bytes(16 * count))
    counters[0::2] = array("Q", range(start + 1, stop + 1))
    x = (_from_words(counters) * _GOLDEN + _repeat(base, count)) & lanes
    x = ((x ^ (x >> 30)) & lanes) * 0xBF58476D1CE4E5B9 & lanes
    x = ((x ^ (x >> 27)) & lanes) * 0x94D049BB133111EB & lanes
    x = (x ^ (x >> 31)) & lanes
    words = array("Q", x.to_bytes(16 * count, "little"))
    if sys.byteorder != "little":
        words.byteswap()
    return words[0::2]


def _repeat(lane: int, count: int) -> int:
    """`lane` in each of `count` 128-bit lanes."""
    return int.from_bytes(lane.to_bytes(16, "little") * count, "little")


def _from_words(words: array[int]) -> int:
    """The integer whose little-endian 64-bit words are `words`."""
    if sys.byteorder == "little":
        return int.from_bytes(words.tobytes(), "little")
    return int.from_bytes(_swapped(words), "little")


def _swapped(words: array[int]) -> bytes:
    copy = array(words.typecode, words)
    copy.byteswap()
    return copy.tobytes()


def _hex_ids(hashes: array[int]) -> list[str]:
    """`f"lnk_{h:016x}"` for each h: one hex dump of the big-endian words, split."""
    big_endian = hashes.tobytes() if sys.byteorder == "big" else _swapped(hashes)
    if not big_endian:
        return []
    return ("lnk_" + big_endian.hex(" ", 8).replace(" ", " lnk_")).split(" ")


def _reference_link(pools: _Pools, i: int) -> Link:
    """Link `i`, one field at a time: what `_Chunk` computes for a whole chunk at once."""
    h = _mix((pools.base + (i + 1) * _GOLDEN) & _MASK)
    a = (h >> 32) & (_INSTANTS - 1)
    if (h >> 58) < _VISITED_OF_64:
        analytics = pools.visited(a * _VARIANTS + ((h >> 24) & (_VARIANTS - 1)))
    else:
        analytics = Analytics()
    return Link(
        f"lnk_{h:016x}",
        pools.title_of[h & 0xFFFF],
        f"{_SLUG_WORDS[(h >> 8) & 31]}-{i:x}",
        pools.destination_of[(h >> 16) & 0xFFFF],
        pools.instants[a],
        pools.instants[a + ((h >> 45) & 0x1FFF) % (_INSTANTS - a)],
        analytics,
    )


def _mix(x: int) -> int:
    """splitmix64's finalizer: a bijection on 64-bit integers, so distinct inputs, distinct ids."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _title_pool(rng: random.Random) -> list[str]:
    titles = [f"{adjective} {noun}" for adjective in _ADJECTIVES for noun in _NOUNS]
    for length in (120, 199, 200):
        words = [rng.choice(_NOUNS) for _ in range(length)]
        titles.append(" ".join(words)[:length].rstrip() or "long")
    titles += ["A", "字", "STRASSE sale", 'Tom & Jerry\'s "best" <b>deals</b>']
    return titles


def _visited(created: datetime, key: int) -> Analytics:
    """Small, consistent analytics for a link created at `created`."""
    rng = random.Random(key)
    total = rng.choice((1, 2, 7, 42, 100, 1000, 25000)) if rng.random() < 0.3 else 0
    total = total or rng.randint(1, 5000)
    first = created.date()
    last = min(first + timedelta(days=rng.randint(0, 400)), _LAST_DAY)
    span = (last - first).days
    picks = {last} | {first + timedelta(days=rng.randint(0, span)) for _ in range(2)}
    days = sorted(picks)[-total:]  # at most one day per click, always ending on `last`
    clicks = _split(total, len(days), rng)
    desktop, mobile = sorted(rng.randint(0, total) for _ in range(2))
    return Analytics(
        total_clicks=total,
        unique_visitors=rng.randint((total + 1) // 2, total),
        last_visited_at=_time_on(last, created, rng),
        clicks_by_day=tuple(Count(d.isoformat(), c) for d, c in zip(days, clicks, strict=True)),
        top_countries=(Count(rng.choice(_COUNTRIES), total - total // 3),),
        top_referrers=(Count(rng.choice(_REFERRERS), total - total // 4),),
        devices=Devices(desktop, mobile - desktop, total - mobile),
    )


def _time_on(day: date, created: datetime, rng: random.Random) -> datetime:
    """A whole second on `day`, not before `created`."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    earliest = max(start, created)
    room = int((start - earliest).total_seconds()) + 86399
    return earliest + timedelta(seconds=rng.randint(0, room))


def _split(total: int, parts: int, rng: random.Random) -> list[int]:
    cuts = sorted(rng.sample(range(1, total), parts - 1)) if parts > 1 else []
    bounds = [0, *cuts, total]
    return [b - a for a, b in itertools.pairwise(bounds)]
