"""Domain values → the camelCase JSON of the wire."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

from emulator.auth import IssuedToken
from emulator.clock import format_timestamp
from emulator.models import Analytics, Count, Link
from emulator.qr import qr_png_base64
from emulator.store import Page


def short_url(base: str, slug: str) -> str:
    return f"{base.rstrip('/')}/{slug}"


def link_summary(link: Link, short_base: str) -> dict[str, Any]:
    url = short_url(short_base, link.slug)
    return {
        "id": link.id,
        "title": link.title,
        "slug": link.slug,
        "destination": link.destination,
        "shortUrl": url,
        "qrCodeBase64": qr_png_base64(url),
        "clicks": link.clicks,
        "hasVisits": link.has_visits,
        "createdAt": format_timestamp(link.created_at),
        "updatedAt": format_timestamp(link.updated_at),
    }


def link_detail(link: Link, short_base: str) -> dict[str, Any]:
    return {**link_summary(link, short_base), "analytics": analytics(link.analytics)}


def analytics(value: Analytics) -> dict[str, Any]:
    last = value.last_visited_at
    return {
        "totalClicks": value.total_clicks,
        "uniqueVisitors": value.unique_visitors,
        "lastVisitedAt": format_timestamp(last) if last is not None else None,
        "clicksByDay": _counts(value.clicks_by_day, "date"),
        "topCountries": _counts(value.top_countries, "country"),
        "topReferrers": _counts(value.top_referrers, "referrer"),
        "devices": {
            "desktop": value.devices.desktop,
            "mobile": value.devices.mobile,
            "tablet": value.devices.tablet,
        },
    }


def _counts(rows: tuple[Count, ...], label: str) -> list[dict[str, Any]]:
    return [{label: row.label, "clicks": row.clicks} for row in rows]


def pagination(value: Page) -> dict[str, Any]:
    return {
        "total": value.total,
        "limit": value.limit,
        "offset": value.offset,
        "hasMore": value.has_more,
    }


def page(value: Page, short_base: str) -> dict[str, Any]:
    return {
        "data": [link_summary(link, short_base) for link in value.items],
        "pagination": pagination(value),
    }


def page_from_items(items: list[bytes], value: Page) -> bytes:
    """The bytes of `dumps(page(...))`, from list items already rendered."""
    return b'{"data":[' + b",".join(items) + b'],"pagination":' + dumps(pagination(value)) + b"}"


class RenderedLinks:
    """The JSON of immutable links (the sample set), rendered once each, least recent dropped.

    A page of 25 is then a join of 25 byte strings, not 25 dicts and QR lookups to encode."""

    def __init__(self, short_base: str, capacity: int = 20_000) -> None:
        self._short_base = short_base
        self._capacity = capacity
        self._summaries: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def summary(self, link: Link) -> bytes:
        with self._lock:
            cached = self._summaries.get(link.id)
            if cached is not None:
                self._summaries.move_to_end(link.id)
                return cached
        rendered = dumps(link_summary(link, self._short_base))
        with self._lock:
            self._summaries[link.id] = rendered
            if len(self._summaries) > self._capacity:
                self._summaries.popitem(last=False)
        return rendered

    def page(self, value: Page) -> bytes:
        return page_from_items([self.summary(link) for link in value.items], value)


def token(issued: IssuedToken) -> dict[str, Any]:
    return {
        "accessToken": issued.access_token,
        "tokenType": "Bearer",
        "expiresIn": issued.expires_in,
        "expiresAt": format_timestamp(issued.expires_at),
        "environment": issued.application.environment,
    }


def dumps(value: object) -> bytes:
    """Compact UTF-8 JSON; the same value always gives the same bytes."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: only \u escapes can carry it
        return json.dumps(value, separators=(",", ":")).encode("ascii")
