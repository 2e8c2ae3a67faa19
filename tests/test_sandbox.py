from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from invariants import assert_analytics_consistent, assert_link_valid

from emulator.models import Count, Devices, Link
from emulator.sample_set import load_sample_set
from emulator.sandbox import generate

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SAMPLE = FIXTURES / "sandbox_links.json"
END = datetime(2026, 11, 1, tzinfo=UTC)
ID = re.compile(r"^lnk_[0-9a-f]{16}$")


@pytest.fixture(scope="module")
def links() -> tuple[Link, ...]:
    return load_sample_set(SAMPLE)


def _matches(link: Link, q: str) -> bool:
    needle = q.casefold()
    return any(needle in text.casefold() for text in (link.title, link.slug, link.destination))


def _has_ties(values: list[object]) -> bool:
    return len(set(values)) < len(values)


def test_generator_reproduces_the_committed_sample_set(tmp_path: Path) -> None:
    out = tmp_path / "sandbox_links.json"
    subprocess.run(
        [sys.executable, str(FIXTURES / "generate_sandbox.py"), "--out", str(out)],
        check=True,
        timeout=120,
    )
    assert out.read_bytes() == SAMPLE.read_bytes(), (
        "fixtures/sandbox_links.json differs from what fixtures/generate_sandbox.py writes: "
        "regenerate it (never hand-edit it)"
    )


def test_sample_set_is_large_and_unique(links: tuple[Link, ...]) -> None:
    assert len(links) >= 200
    assert all(ID.fullmatch(link.id) for link in links)
    assert len({link.id for link in links}) == len(links)
    assert len({link.slug for link in links}) == len(links)


def test_sample_set_has_visited_and_unvisited_links(links: tuple[Link, ...]) -> None:
    visited = sum(link.has_visits for link in links)
    assert 0.6 <= visited / len(links) <= 0.8
    assert max(link.clicks for link in links) >= 10_000


def test_sample_set_destinations_vary(links: tuple[Link, ...]) -> None:
    parts = [urlsplit(link.destination) for link in links]
    assert len({part.hostname for part in parts}) >= 10
    assert {part.scheme for part in parts} == {"http", "https"}
    assert max(len(link.destination) for link in links) == 2048


def test_sample_set_titles_vary(links: tuple[Link, ...]) -> None:
    titles = [link.title for link in links]
    assert max(len(title) for title in titles) == 200
    assert any(not title.isascii() and re.search("[À-ɏ]", title) for title in titles)  # accents
    assert any(re.search("[\u3040-\u30ff\u4e00-\u9fff]", title) for title in titles)  # CJK
    assert any(any(ord(char) >= 0x1F300 for char in title) for title in titles)  # emoji
    assert any(title.startswith(("Launch", "launch")) for title in titles)


def test_sample_set_ties_every_sort_key(links: tuple[Link, ...]) -> None:
    assert _has_ties([link.created_at for link in links])
    assert _has_ties([link.updated_at for link in links])
    assert _has_ties([link.clicks for link in links if link.has_visits])
    folded: dict[str, set[str]] = {}
    for link in links:
        folded.setdefault(link.title.casefold(), set()).add(link.title)
    assert any(len(spellings) > 1 for spellings in folded.values()), "no case-differing titles"
    assert _has_ties([link.title for link in links]), "no identical titles"


def test_sample_set_spreads_over_years(links: tuple[Link, ...]) -> None:
    years = Counter(link.created_at.year for link in links)
    assert len(years) >= 4
    assert any(link.created_at == link.updated_at for link in links)
    assert all(link.updated_at < END for link in links)


def test_seed_examples_are_interesting(links: tuple[Link, ...]) -> None:
    launch = [link for link in links if _matches(link, "launch")]
    assert sum(link.has_visits for link in launch) >= 5
    assert any(not link.has_visits for link in launch)
    assert "launch-page" not in {link.slug for link in links}


def test_every_sample_link_is_consistent(links: tuple[Link, ...]) -> None:
    for link in links:
        assert_link_valid(link, not_after=END)


def test_load_sample_set_reads_the_file_faithfully(links: tuple[Link, ...]) -> None:
    raw = json.loads(SAMPLE.read_text(encoding="utf-8"))["links"]
    first = next(item for item in raw if item["analytics"]["totalClicks"] > 0)
    link = next(link for link in links if link.id == first["id"])
    assert link.created_at.tzinfo is not None
    assert link.created_at.strftime("%Y-%m-%dT%H:%M:%SZ") == first["createdAt"]
    assert [(c.label, c.clicks) for c in link.analytics.top_countries] == [
        (row["country"], row["clicks"]) for row in first["analytics"]["topCountries"]
    ]


def test_load_sample_set_rejects_an_unknown_version(tmp_path: Path) -> None:
    path = tmp_path / "links.json"
    path.write_text(json.dumps({"version": 2, "links": []}), encoding="utf-8")
    with pytest.raises(ValueError, match="version"):
        load_sample_set(path)


def test_generate_is_deterministic_unique_and_consistent() -> None:
    generated = generate(5000)
    assert generated == generate(5000)
    assert generated[:100] == generate(100)
    assert generate(100, seed=9) != generate(100)
    assert len({link.id for link in generated}) == len(generated) == 5000
    assert len({link.slug for link in generated}) == 5000
    assert all(ID.fullmatch(link.id) for link in generated)
    assert 0.6 <= sum(link.has_visits for link in generated) / 5000 <= 0.8
    assert "launch-page" not in {link.slug for link in generated}
    for link in generated:
        assert_link_valid(link, not_after=END)


def test_generated_links_vary_like_the_sample_set() -> None:
    generated = generate(5000)
    assert _has_ties([link.created_at for link in generated])
    assert _has_ties([link.title.casefold() for link in generated])
    assert _has_ties([link.clicks for link in generated if link.has_visits])
    assert len({urlsplit(link.destination).hostname for link in generated}) >= 10
    assert sum(_matches(link, "launch") and link.has_visits for link in generated) >= 5
    assert any(len(link.title) == 200 for link in generated)


def test_generate_handles_edges() -> None:
    assert generate(0) == ()
    assert_analytics_consistent(generate(1)[0])
    with pytest.raises(ValueError):
        generate(-1)


@pytest.mark.parametrize(
    "change",
    [
        {"total_clicks": 1},
        {"unique_visitors": 10**9},
        {"last_visited_at": None},
        {"devices": Devices(1, 0, 0)},
        {"top_countries": (Count("US", 1), Count("DE", 2))},
        {"clicks_by_day": ()},
    ],
)
def test_the_invariants_catch_broken_analytics(
    links: tuple[Link, ...], change: dict[str, object]
) -> None:
    link = next(
        link for link in links if link.clicks > 100 and len(link.analytics.top_countries) > 1
    )
    broken = replace(link, analytics=replace(link.analytics, **change))
    with pytest.raises(AssertionError):
        assert_analytics_consistent(broken)
