"""Domain values → the camelCase JSON of the wire."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

from emulator.auth import IssuedToken
from emulator.clock import format_timestamp
from emulator.models import Analytics, Count, Link, Workspace
from emulator.qr import qr_png_base64
from emulator.store import Page


def workspace(workspace: Workspace) -> dict[str, Any]:
    """A workspace as the control API shows it, and as a scenario's `workspaces` take it."""
    return {
        "id": workspace.id,
        "kind": workspace.kind,
        "apiAccess": workspace.api_access,
        "rateLimitPerMinute": workspace.rate_limit_per_minute,
        "linkQuota": workspace.link_quota,
    }


def short_url(base: str, slug: str) -> str:
    return f"{base.rstrip('/')}/{slug}"


def link_summary(link: Link, short_base: str) -> dict[str, Any]:
    verbatim = link.verbatim
    if verbatim is None or verbatim.short_url is None:
        url = short_url(short_base, link.slug)
        qr_code = qr_png_base64(url)
    else:  # recorded from the real API: served as it was
        url = verbatim.short_url
        qr_code = verbatim.qr_code_base64 or qr_png_base64(url)
    return {
        "id": link.id,
        "title": link.title,
        "slug": link.slug,
        "destination": link.destination,
        "shortUrl": url,
        "qrCodeBase64": qr_code,
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

    A page of 25 is then a join of 25 byte strings, not 25 dicts and QR lookups to encode; a
    detail is one lookup. Whole pages are kept too, by their query string, as the sample set never
    changes: a repeated list request parses nothing and joins nothing."""

    def __init__(
        self,
        short_base: str,
        capacity: int = 20_000,
        detail_capacity: int = 4096,
        page_bytes: int = 8 * 1024 * 1024,
        page_capacity: int = 1024,
    ) -> None:
        self._short_base = short_base
        self._capacity = capacity
        self._summaries: OrderedDict[str, bytes] = OrderedDict()
        self._detail_capacity = detail_capacity
        self._details: OrderedDict[str, bytes] = OrderedDict()
        self._page_budget = page_bytes  # bodies and query strings
        self._page_capacity = page_capacity
        self._page_bytes = 0
        self._pages: OrderedDict[bytes, tuple[bytes, dict[str, Any]]] = OrderedDict()
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

    def cached_detail(self, link_id: str) -> bytes | None:
        """The detail last rendered for this id, if kept (a sample link's id never changes
        link)."""
        with self._lock:
            cached = self._details.get(link_id)
            if cached is not None:
                self._details.move_to_end(link_id)
            return cached

    def detail(self, link: Link) -> bytes:
        with self._lock:
            cached = self._details.get(link.id)
            if cached is not None:
                self._details.move_to_end(link.id)
                return cached
        rendered = dumps(link_detail(link, self._short_base))
        with self._lock:
            self._details[link.id] = rendered
            if len(self._details) > self._detail_capacity:
                self._details.popitem(last=False)
        return rendered

    def page(self, value: Page) -> bytes:
        return page_from_items([self.summary(link) for link in value.items], value)

    def cached_page(self, key: bytes) -> tuple[bytes, dict[str, Any]] | None:
        """The body and pagination of the page last rendered for this query string, if kept."""
        with self._lock:
            found = self._pages.get(key)
            if found is not None:
                self._pages.move_to_end(key)
            return found

    def keep_page(self, key: bytes, value: Page) -> tuple[bytes, dict[str, Any]]:
        """Render `value` and keep it for `key`; the least recent pages go past the budgets."""
        kept = (self.page(value), pagination(value))
        with self._lock:
            if key not in self._pages:
                self._pages[key] = kept
                self._page_bytes += len(key) + len(kept[0])
                while len(self._pages) > 1 and (
                    self._page_bytes > self._page_budget or len(self._pages) > self._page_capacity
                ):
                    old_key, (body, _) = self._pages.popitem(last=False)
                    self._page_bytes -= len(old_key) + len(body)
        return kept


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
