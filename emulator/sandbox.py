"""The sandbox data: the committed sample set, and a large generated set for scale tests.

`load_sample_set` reads `fixtures/sandbox_links.json` (written once by
`fixtures/generate_sandbox.py` with a seeded Faker). `generate(n, seed)` builds up to a million
links from small word lists and integer mixing, without Faker: the same `n` and `seed` give the
same links on every run and machine.
"""

from __future__ import annotations

import gc
import itertools
import json
import random
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from emulator.clock import parse_timestamp
from emulator.models import Analytics, Count, Devices, Link

SAMPLE_SET_VERSION = 1


def load_sample_set(path: Path) -> tuple[Link, ...]:
    """The links of a sample-set file, in file order."""
    document = json.loads(path.read_text(encoding="utf-8"))
    if document.get("version") != SAMPLE_SET_VERSION:
        raise ValueError(f"{path}: unsupported sample set version {document.get('version')!r}")
    return tuple(link_from_json(item) for item in document["links"])


def link_from_json(item: Mapping[str, Any]) -> Link:
    """A Link from its camelCase JSON form (the sample-set file, or a detail response)."""
    return Link(
        id=item["id"],
        title=item["title"],
        slug=item["slug"],
        destination=item["destination"],
        created_at=parse_timestamp(item["createdAt"]),
        updated_at=parse_timestamp(item["updatedAt"]),
        analytics=analytics_from_json(item["analytics"]),
    )


def analytics_from_json(item: Mapping[str, Any]) -> Analytics:
    last = item["lastVisitedAt"]
    devices = item["devices"]
    return Analytics(
        total_clicks=item["totalClicks"],
        unique_visitors=item["uniqueVisitors"],
        last_visited_at=None if last is None else parse_timestamp(last),
        clicks_by_day=_counts(item["clicksByDay"], "date"),
        top_countries=_counts(item["topCountries"], "country"),
        top_referrers=_counts(item["topReferrers"], "referrer"),
        devices=Devices(devices["desktop"], devices["mobile"], devices["tablet"]),
    )


def _counts(rows: list[Mapping[str, Any]], key: str) -> tuple[Count, ...]:
    return tuple(Count(row[key], row["clicks"]) for row in rows)


# --- generate(n, seed) ------------------------------------------------------------------------

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
    """
    if n < 0 or seed < 0:
        raise ValueError("n and seed must be >= 0")
    rng = random.Random(seed)
    titles = _title_pool(rng)
    destinations = [
        f"{'http' if k % 5 == 0 else 'https'}://{host}{path}"
        for k, (host, path) in enumerate(itertools.product(_HOSTS, _PATHS))
    ]
    span = int((_END - _START).total_seconds()) - 86400
    seconds = sorted(rng.randrange(span) for _ in range(_INSTANTS))
    instants = [_START + timedelta(seconds=s) for s in seconds]
    cache: dict[int, Analytics] = {}
    empty = Analytics()
    n_titles, n_destinations = len(titles), len(destinations)
    base = (seed * 0xD1B54A32D192ED03) & _MASK
    links: list[Link] = []
    append, mix, words = links.append, _mix, _SLUG_WORDS  # locals: this loop runs a million times
    collecting = gc.isenabled()
    gc.disable()  # a million new objects would set off many full collections that free nothing
    try:
        for i in range(n):
            h = mix((base + (i + 1) * _GOLDEN) & _MASK)
            a = (h >> 32) & (_INSTANTS - 1)
            if (h >> 58) < _VISITED_OF_64:
                key = a * _VARIANTS + ((h >> 24) & (_VARIANTS - 1))
                analytics = cache.get(key)
                if analytics is None:
                    analytics = cache[key] = _visited(instants[a], (seed << 20) | key)
            else:
                analytics = empty
            append(
                Link(
                    f"lnk_{h:016x}",
                    titles[(h & 0xFFFF) % n_titles],
                    f"{words[(h >> 8) & 31]}-{i:x}",
                    destinations[((h >> 16) & 0xFFFF) % n_destinations],
                    instants[a],
                    instants[a + ((h >> 45) & 0x1FFF) % (_INSTANTS - a)],
                    analytics,
                )
            )
    finally:
        if collecting:
            gc.enable()
    return tuple(links)


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
