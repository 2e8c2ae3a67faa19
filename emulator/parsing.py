"""Turning query strings and request bodies into domain values, or precise 4xx errors."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import cast

from starlette.requests import ClientDisconnect, Request

from emulator import errors
from emulator.store import SORT_KEYS, SORT_ORDERS, LinkQuery, SortKey, SortOrder

Q_MAX = 200
LIMIT_MAX = 100
_MAX_DIGITS = 12
_JSON_MEDIA = re.compile(r"application/(?:[\w.+-]+\+)?json", re.ASCII)
YAML_MEDIA = ("application/yaml", "application/x-yaml", "text/yaml")
# Control paths that take YAML as well as JSON. No page elsewhere can send either without a
# preflight: neither is one of the media types a "simple" request may declare.
YAML_PATHS = ("/_emulator/scenario",)


def parse_link_query(params: Mapping[str, str]) -> LinkQuery:
    q = params.get("q")
    if q is not None and len(q) > Q_MAX:
        raise errors.invalid_parameter("q", f"q must be at most {Q_MAX} characters.")
    has_visits_text = params.get("hasVisits")
    has_visits: bool | None = None
    if has_visits_text is not None:
        if has_visits_text not in ("true", "false"):
            raise errors.invalid_parameter("hasVisits", "hasVisits must be 'true' or 'false'.")
        has_visits = has_visits_text == "true"
    limit = _integer(params, "limit", default=25, low=1, high=LIMIT_MAX)
    offset = _integer(params, "offset", default=0, low=0, high=None)
    sort_by = params.get("sortBy", "createdAt")
    if sort_by not in SORT_KEYS:
        raise errors.invalid_parameter("sortBy", f"sortBy must be one of {', '.join(SORT_KEYS)}.")
    sort_order = params.get("sortOrder", "desc")
    if sort_order not in SORT_ORDERS:
        raise errors.invalid_parameter("sortOrder", "sortOrder must be 'asc' or 'desc'.")
    return LinkQuery(
        q=q or None,
        has_visits=has_visits,
        limit=limit,
        offset=offset,
        sort_by=cast(SortKey, sort_by),
        sort_order=cast(SortOrder, sort_order),
    )


def _integer(
    params: Mapping[str, str], name: str, *, default: int, low: int, high: int | None
) -> int:
    text = params.get(name)
    if text is None:
        return default
    bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
    if not (text.isascii() and text.isdigit()):
        raise errors.invalid_parameter(name, f"{name} must be an integer {bounds}.")
    # Offsets past any real page are legal; beyond a dozen digits they all mean "past the end".
    value = int(text) if len(text) <= _MAX_DIGITS else 10**_MAX_DIGITS
    if value < low or (high is not None and value > high):
        raise errors.invalid_parameter(name, f"{name} must be an integer {bounds}.")
    return value


def is_json_media(content_type: str) -> bool:
    """Whether a Content-Type declares JSON (`application/json`, `application/…+json`)."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    return _JSON_MEDIA.fullmatch(media_type) is not None


def is_yaml_media(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() in YAML_MEDIA


async def read_json_body(request: Request, max_bytes: int) -> object:
    """The decoded JSON body: 415 for another media type, 413 when too large, 400 when not JSON."""
    content_type = request.headers.get("content-type", "")
    if not is_json_media(content_type):
        raise errors.unsupported_media_type(content_type)
    raw = await read_body(request, max_bytes)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise errors.invalid_request("The request body is not valid JSON.") from None


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body: 413 when it is larger than `max_bytes`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise errors.payload_too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise errors.payload_too_large(max_bytes)
            chunks.append(chunk)
    except ClientDisconnect:  # gone, or timed out by the server (protocol.py) before the body came
        raise errors.request_timeout() from None
    return b"".join(chunks)
