"""Domain values: applications, workspaces, links and their analytics, and the create-link rules.

Nothing here knows about HTTP. Values are frozen; the live store builds new ones as visits arrive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Literal

from emulator import errors

Environment = Literal["sandbox", "live"]
WorkspaceKind = Literal["sandbox", "personal", "company"]

TITLE_MAX = 200
DESTINATION_MAX = 2048
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$"
# Whitespace and control characters spelled out: `\s` means different things to Python's `re` and
# to JSON Schema validators, and the contract must carry the very same pattern.
_NOT_URL_CHARS = r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
DESTINATION_PATTERN = rf"^https?://[^{_NOT_URL_CHARS}/?#]+(?:[/?#][^{_NOT_URL_CHARS}]*)?$"
_SLUG_RE = re.compile(SLUG_PATTERN)
_DESTINATION_RE = re.compile(DESTINATION_PATTERN)

SANDBOX_WORKSPACE_ID = "sandbox"
SANDBOX_RATE_LIMIT = 15
# Client ids, secrets and workspace ids travel in tokens, headers, logs and the inspector.
ID_MAX = 128
SECRET_MAX = 256
NAME_MAX = 200


@dataclass(frozen=True)
class Workspace:
    id: str
    kind: WorkspaceKind
    api_access: bool = True
    rate_limit_per_minute: int = 60
    link_quota: int = 1000


@dataclass(frozen=True)
class Application:
    client_id: str
    client_secret: str = field(repr=False)
    environment: Environment
    workspace_id: str
    name: str = ""
    rate_limit_per_minute: int | None = None


def check_application(app: Application) -> None:
    """422 naming the field unless the application's ids and secret are printable text without
    whitespace (its name may hold spaces), each within its length limit."""
    _check_text("clientId", app.client_id, ID_MAX)
    _check_text("clientSecret", app.client_secret, SECRET_MAX)
    _check_text("workspaceId", app.workspace_id, ID_MAX)
    _check_text("name", app.name, NAME_MAX, spaces=True, empty=True)


def check_identifier(name: str, value: object) -> None:
    """422 naming the field unless `value` is an id as `check_application` wants them."""
    _check_text(name, value, ID_MAX)


def _check_text(
    name: str, value: object, most: int, *, spaces: bool = False, empty: bool = False
) -> None:
    if not isinstance(value, str):
        raise errors.invalid_request(f"{name} must be a string.", name)
    if not (0 if empty else 1) <= len(value) <= most:
        raise errors.validation_failed(name, f"{name} must be 1 to {most} characters.")
    if not value.isprintable() or any(c.isspace() and not (spaces and c == " ") for c in value):
        what = "control characters" if spaces else "whitespace or control characters"
        raise errors.validation_failed(name, f"{name} must be printable text, with no {what}.")


@dataclass(frozen=True)
class Principal:
    """Who is calling: an application and the workspace it acts for."""

    application: Application
    workspace: Workspace
    limit_override: int | None = None

    @property
    def environment(self) -> Environment:
        return self.application.environment

    @cached_property
    def rate_key(self) -> str:
        """Sandbox apps are limited each on their own; live apps share their workspace's limit,
        unless the app was registered with a limit of its own."""
        app = self.application
        if app.environment == "sandbox" or app.rate_limit_per_minute is not None:
            return f"app:{app.client_id}"
        return f"workspace:{self.workspace.id}"

    @property
    def rate_limit(self) -> int:
        app = self.application
        if app.rate_limit_per_minute is not None:
            return app.rate_limit_per_minute
        if self.limit_override is not None:
            return self.limit_override
        if app.environment == "sandbox":
            return SANDBOX_RATE_LIMIT
        return self.workspace.rate_limit_per_minute


@dataclass(frozen=True)
class Count:
    """One row of a top list or a day of clicks: a label and its clicks."""

    label: str
    clicks: int


@dataclass(frozen=True)
class Devices:
    desktop: int = 0
    mobile: int = 0
    tablet: int = 0

    @property
    def total(self) -> int:
        return self.desktop + self.mobile + self.tablet


@dataclass(frozen=True)
class Analytics:
    total_clicks: int = 0
    unique_visitors: int = 0
    last_visited_at: datetime | None = None
    clicks_by_day: tuple[Count, ...] = ()
    top_countries: tuple[Count, ...] = ()
    top_referrers: tuple[Count, ...] = ()
    devices: Devices = Devices()


@dataclass(frozen=True)
class Verbatim:
    """Values recorded from the real API (by `8here-emulator snapshot`) where the emulator would
    derive others: a short URL on another host, a QR code encoded differently, `clicks` or
    `hasVisits` that disagree with the analytics. The emulator serves them as they are.

    A QR code stands for the URL it encodes, so a verbatim `qr_code_base64` comes with the
    verbatim `short_url` it was recorded with."""

    short_url: str | None = None
    qr_code_base64: str | None = None
    clicks: int | None = None
    has_visits: bool | None = None

    def __post_init__(self) -> None:
        if self.qr_code_base64 is not None and self.short_url is None:
            raise ValueError("a verbatim qrCodeBase64 needs the shortUrl it encodes")


@dataclass(frozen=True)
class Link:
    id: str
    title: str
    slug: str
    destination: str
    created_at: datetime
    updated_at: datetime
    analytics: Analytics = Analytics()
    verbatim: Verbatim | None = None

    @property
    def clicks(self) -> int:
        verbatim = self.verbatim
        if verbatim is not None and verbatim.clicks is not None:
            return verbatim.clicks
        return self.analytics.total_clicks

    @property
    def has_visits(self) -> bool:
        verbatim = self.verbatim
        if verbatim is not None and verbatim.has_visits is not None:
            return verbatim.has_visits
        return self.analytics.total_clicks > 0


@dataclass(frozen=True)
class NewLink:
    title: str
    destination: str
    slug: str | None = None


def parse_new_link(body: object) -> NewLink:
    """Validate a create-link body (already decoded JSON) into a NewLink, or raise ApiError.

    Wrong JSON types are 400 `invalid_request`; a missing field or a broken rule is 422.
    """
    if not isinstance(body, dict):
        raise errors.invalid_request("The request body must be a JSON object.")
    title = required_string(body, "title")
    destination = required_string(body, "destination")
    slug = body.get("slug")
    if slug is not None and not isinstance(slug, str):
        raise errors.invalid_request("slug must be a string.", "slug")

    if not 1 <= len(title) <= TITLE_MAX:
        raise errors.validation_failed("title", f"title must be 1 to {TITLE_MAX} characters.")
    if len(destination) > DESTINATION_MAX:
        raise errors.validation_failed(
            "destination", f"destination must be at most {DESTINATION_MAX} characters."
        )
    if not _DESTINATION_RE.fullmatch(destination):
        raise errors.validation_failed(
            "destination", "destination must be an absolute http or https URL."
        )
    if slug is not None and not _SLUG_RE.fullmatch(slug):
        raise errors.validation_failed(
            "slug",
            "slug must be 3 to 64 characters of a-z, 0-9 and '-', not starting or ending with '-'.",
        )
    return NewLink(title=title, destination=destination, slug=slug)


def required_string(body: dict[str, object], name: str) -> str:
    """A required string field of a JSON object body: 422 when absent, 400 when not a string."""
    if body.get(name) is None:
        raise errors.validation_failed(name, f"{name} is required.")
    value = body[name]
    if not isinstance(value, str):
        raise errors.invalid_request(f"{name} must be a string.", name)
    _require_unicode(name, value)
    return value


def _require_unicode(name: str, value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise errors.validation_failed(name, f"{name} must be valid Unicode text.") from None
