"""Visits to short links: what a browser's request says about its visitor, and bulk requests."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from emulator import errors, fields
from emulator.clock import parse_timestamp
from emulator.live_store import DEVICES, Visit

DEFAULT_COUNTRY = "US"
COUNTRY_HEADERS = ("cf-ipcountry", "x-country", "x-appengine-country")
MAX_BULK_VISITS = 100_000
_COUNTRY = re.compile(r"[A-Z]{2}")


def device_of(user_agent: str) -> str:
    if "iPad" in user_agent or "Tablet" in user_agent:
        return "tablet"
    if "Android" in user_agent:
        return "mobile" if "Mobile" in user_agent else "tablet"
    if "Mobi" in user_agent or "iPhone" in user_agent:
        return "mobile"
    return "desktop"


def referrer_of(referer: str) -> str:
    try:
        host = urlsplit(referer).hostname
    except ValueError:
        host = None
    return host or "direct"


def country_of(headers: Mapping[str, str]) -> str:
    for name in COUNTRY_HEADERS:
        value = headers.get(name, "").strip().upper()
        if _COUNTRY.fullmatch(value):
            return value
    return DEFAULT_COUNTRY


def visit_from_request(headers: Mapping[str, str], client_host: str, at: datetime) -> Visit:
    user_agent = headers.get("user-agent", "")
    visitor = hashlib.sha256(f"{client_host}|{user_agent}".encode()).hexdigest()[:16]
    return Visit(
        at=at,
        country=country_of(headers),
        referrer=referrer_of(headers.get("referer", "")),
        device=device_of(user_agent),
        visitor=visitor,
    )


@dataclass(frozen=True)
class BulkVisits:
    slug: str
    count: int
    template: Visit

    def visits(self, first_visitor: int) -> list[Visit]:
        """The visits, each its own visitor unless the request named one."""
        template = self.template
        if template.visitor:
            return [template] * self.count
        at, country, referrer, device = (
            template.at,
            template.country,
            template.referrer,
            template.device,
        )
        return [
            Visit(at, country, referrer, device, f"visitor-{first_visitor + i}")
            for i in range(self.count)
        ]


def parse_bulk_visits(body: object, now: datetime) -> BulkVisits:
    """`{"slug", "count"?, "country"?, "referrer"?, "device"?, "at"?, "visitor"?}`.

    Without `visitor`, each visit is a new visitor (`first_visitor` numbers them on)."""
    if not isinstance(body, dict):
        raise errors.invalid_request("The request body must be a JSON object.")
    slug = body.get("slug")
    if not isinstance(slug, str) or not slug:
        raise errors.validation_failed("slug", "slug is required and must be a string.")
    count = fields.whole(body, "count", 1, MAX_BULK_VISITS) or 1
    country = fields.text(body, "country") or DEFAULT_COUNTRY
    if not _COUNTRY.fullmatch(country):
        raise errors.validation_failed("country", "country must be two capital letters.")
    referrer = fields.text(body, "referrer") or "direct"
    device = fields.text(body, "device") or "desktop"
    if device not in DEVICES:
        raise errors.validation_failed("device", "device must be desktop, mobile or tablet.")
    at_text = fields.text(body, "at")
    try:
        at = parse_timestamp(at_text) if at_text else now
    except ValueError:
        raise errors.validation_failed("at", "at must be an ISO 8601 instant.") from None
    visitor = fields.text(body, "visitor")
    return BulkVisits(slug, count, Visit(at, country, referrer, device, visitor or ""))
