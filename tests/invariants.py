"""Rules every Link must keep, sample, generated or live. Import them from any test:

from invariants import assert_analytics_consistent, assert_link_valid, assert_wire_link_consistent
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from emulator.models import DESTINATION_MAX, DESTINATION_PATTERN, SLUG_PATTERN, TITLE_MAX, Link
from emulator.sample_set import link_from_json

TOP_MAX = 10
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def assert_link_valid(link: Link, *, not_after: datetime | None = None) -> None:
    """Field rules, timestamps, and consistent analytics; `not_after` bounds every instant."""
    assert 1 <= len(link.title) <= TITLE_MAX, link
    assert re.fullmatch(SLUG_PATTERN, link.slug), link.slug
    assert len(link.destination) <= DESTINATION_MAX, link.id
    assert re.fullmatch(DESTINATION_PATTERN, link.destination), link.destination
    _assert_instant(link.created_at)
    _assert_instant(link.updated_at)
    assert link.created_at <= link.updated_at, link.id
    if not_after is not None:
        assert link.updated_at < not_after, link.id
    assert_analytics_consistent(link, not_after=not_after)


def assert_analytics_consistent(link: Link, *, not_after: datetime | None = None) -> None:
    """The analytics of `link` agree with themselves and with its createdAt (SPEC "Link")."""
    a = link.analytics
    assert a.total_clicks >= 0 and link.clicks == a.total_clicks, link.id
    assert 0 <= a.unique_visitors <= a.total_clicks, link.id
    assert a.total_clicks == sum(day.clicks for day in a.clicks_by_day), link.id
    assert a.devices.total == a.total_clicks, link.id
    assert min(a.devices.desktop, a.devices.mobile, a.devices.tablet) >= 0, link.id

    days = [date.fromisoformat(day.label) for day in a.clicks_by_day]
    assert [d.isoformat() for d in days] == [day.label for day in a.clicks_by_day], link.id
    assert days == sorted(set(days)), f"{link.id}: clicksByDay not strictly ascending"
    assert all(day.clicks > 0 for day in a.clicks_by_day), link.id
    if days:
        assert days[0] >= link.created_at.date(), link.id

    if a.total_clicks == 0:
        assert a.last_visited_at is None, link.id
        assert not (a.clicks_by_day or a.top_countries or a.top_referrers), link.id
    else:
        assert a.last_visited_at is not None, link.id
        _assert_instant(a.last_visited_at)
        assert a.last_visited_at >= link.created_at, link.id
        assert a.last_visited_at.date() == days[-1], link.id
        if not_after is not None:
            assert a.last_visited_at < not_after, link.id
            assert days[-1] <= (not_after - timedelta(seconds=1)).date(), link.id

    for rows in (a.top_countries, a.top_referrers):
        assert len(rows) <= TOP_MAX, link.id
        assert all(row.clicks > 0 and row.label for row in rows), link.id
        assert len({row.label for row in rows}) == len(rows), link.id
        assert list(rows) == sorted(rows, key=lambda row: (-row.clicks, row.label)), link.id
        assert sum(row.clicks for row in rows) <= a.total_clicks, link.id
    assert all(_COUNTRY.fullmatch(row.label) for row in a.top_countries), link.id


def assert_wire_link_consistent(item: Mapping[str, Any]) -> None:
    """A detail response's Link (camelCase JSON): `clicks`, `hasVisits` and analytics agree."""
    analytics = item["analytics"]
    assert item["clicks"] == analytics["totalClicks"], item["id"]
    assert item["hasVisits"] is (item["clicks"] > 0), item["id"]
    for stamp in (item["createdAt"], item["updatedAt"], analytics["lastVisitedAt"]):
        assert stamp is None or re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp), stamp
    assert_link_valid(link_from_json(item))


def _assert_instant(moment: datetime) -> None:
    offset = moment.utcoffset()
    assert offset is not None and not offset, f"{moment!r} is not UTC"
    assert moment.microsecond == 0, f"{moment!r} is not whole seconds"
