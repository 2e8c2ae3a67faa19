"""The sample-set file (`sandbox_links.json`): read with every field checked, written canonically.

The file is `{"version": 1, "links": [record, ...]}`; other top-level keys (the generator's
`seed`) are for people and ignored. A record is a link's detail JSON without the fields the
emulator derives (`shortUrl` from the short base and the slug, `qrCodeBase64` from `shortUrl`,
`clicks` and `hasVisits` from the analytics). A record may carry any of those four all the same:
`8here-emulator snapshot` keeps the ones the real API answered differently, and the emulator
then serves them verbatim (see `models.Verbatim`).

`load_sample_set` refuses a malformed file with a `FixtureError` whose one-line message names
the file, the place (`links[3].analytics.devices.mobile`) and the problem, so `serve` can stop
at start instead of serving something it misread.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from emulator.clock import parse_timestamp
from emulator.models import Analytics, Count, Devices, Link, Verbatim
from emulator.registry import FixtureError

SAMPLE_SET_VERSION = 1
FILE_NAME = "sandbox_links.json"

RECORD_KEYS = ("id", "title", "slug", "destination", "createdAt", "updatedAt", "analytics")
VERBATIM_KEYS = ("shortUrl", "qrCodeBase64", "clicks", "hasVisits")
ANALYTICS_KEYS = (
    "totalClicks",
    "uniqueVisitors",
    "lastVisitedAt",
    "clicksByDay",
    "topCountries",
    "topReferrers",
    "devices",
)
_COUNT_LABELS = {"clicksByDay": "date", "topCountries": "country", "topReferrers": "referrer"}
_DEVICES = ("desktop", "mobile", "tablet")
# The wire's only timestamp form: the emulator writes every instant back this way, so a record in
# any other form would not be served as it was recorded.
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


class InvalidRecord(ValueError):
    """A sample-set value that is not what the emulator can serve; `str()` says where and why."""


def load_sample_set(path: Path) -> tuple[Link, ...]:
    """The links of a sample-set file, in file order; a `FixtureError` names what is wrong."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise FixtureError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise FixtureError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FixtureError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None
    try:
        return links_from_document(document)
    except InvalidRecord as exc:
        raise FixtureError(f"{path}: {exc}") from None


def links_from_document(document: Any) -> tuple[Link, ...]:
    """The links of a parsed sample-set document; `InvalidRecord` names the first problem."""
    if not isinstance(document, dict):
        raise InvalidRecord(f"expected a JSON object, got {_kind(document)}")
    if "version" not in document:
        raise InvalidRecord(f'no "version" (this emulator reads version {SAMPLE_SET_VERSION})')
    if document["version"] != SAMPLE_SET_VERSION:
        raise InvalidRecord(
            f"unsupported sample set version {document['version']!r} "
            f"(this emulator reads version {SAMPLE_SET_VERSION})"
        )
    items = document.get("links")
    if not isinstance(items, list):
        raise InvalidRecord(f'"links" must be a list of links, got {_kind(items)}')
    links: list[Link] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        where = f"links[{index}]"
        try:
            link = link_from_json(item, where)
        except InvalidRecord as exc:
            link_id = item.get("id") if isinstance(item, dict) else None
            if isinstance(link_id, str) and link_id:
                raise InvalidRecord(f"{exc} (link {link_id})") from None
            raise
        if link.id in seen:
            raise InvalidRecord(f"{where}: id {link.id!r} is also links[{seen[link.id]}]'s")
        seen[link.id] = index
        links.append(link)
    return tuple(links)


def link_from_json(item: Any, where: str = "link") -> Link:
    """A Link from a record, or from a detail response (whose derived fields all come verbatim)."""
    record = _object(item, where)
    for key in record:
        if key not in RECORD_KEYS and key not in VERBATIM_KEYS:
            raise InvalidRecord(f"{where}: unknown key {key!r}")
    _require_keys(record, RECORD_KEYS, where)
    link_id = _string(record, "id", where)
    if not link_id:
        raise InvalidRecord(f"{where}.id: must not be empty")
    return Link(
        id=link_id,
        title=_string(record, "title", where),
        slug=_string(record, "slug", where),
        destination=_string(record, "destination", where),
        created_at=_timestamp(record, "createdAt", where),
        updated_at=_timestamp(record, "updatedAt", where),
        analytics=analytics_from_json(record["analytics"], f"{where}.analytics"),
        verbatim=_verbatim(record, where),
    )


def analytics_from_json(item: Any, where: str = "analytics") -> Analytics:
    record = _object(item, where)
    for key in record:
        if key not in ANALYTICS_KEYS:
            raise InvalidRecord(f"{where}: unknown key {key!r}")
    _require_keys(record, ANALYTICS_KEYS, where)
    devices = _object(record["devices"], f"{where}.devices")
    _require_keys(devices, _DEVICES, f"{where}.devices")
    for key in devices:
        if key not in _DEVICES:
            raise InvalidRecord(f"{where}.devices: unknown key {key!r}")
    last = record["lastVisitedAt"]
    return Analytics(
        total_clicks=_count(record, "totalClicks", where),
        unique_visitors=_count(record, "uniqueVisitors", where),
        last_visited_at=None if last is None else _timestamp(record, "lastVisitedAt", where),
        clicks_by_day=_counts(record, "clicksByDay", where),
        top_countries=_counts(record, "topCountries", where),
        top_referrers=_counts(record, "topReferrers", where),
        devices=Devices(*(_count(devices, key, f"{where}.devices") for key in _DEVICES)),
    )


def render_sample_set(records: Iterable[Mapping[str, Any]]) -> bytes:
    """A sample-set file of `records`: sorted by id, keys sorted, one key a line, UTF-8.

    The same records give the same bytes, whatever order they came in, so a second snapshot of
    unchanged data is byte-identical and a changed one diffs small."""
    document = {"links": sorted(records, key=lambda record: record["id"]), "version": 1}
    text = json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: only \u escapes can carry it
        return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode("ascii")


def _verbatim(record: Mapping[str, Any], where: str) -> Verbatim | None:
    if not any(key in record for key in VERBATIM_KEYS):
        return None
    short_url = _string(record, "shortUrl", where) if "shortUrl" in record else None
    qr_code = _string(record, "qrCodeBase64", where) if "qrCodeBase64" in record else None
    if qr_code is not None and short_url is None:
        raise InvalidRecord(f"{where}: qrCodeBase64 without the shortUrl it encodes")
    clicks = _count(record, "clicks", where) if "clicks" in record else None
    has_visits = record.get("hasVisits")
    if has_visits is not None and not isinstance(has_visits, bool):
        raise InvalidRecord(f"{where}.hasVisits: expected true or false, got {_kind(has_visits)}")
    return Verbatim(short_url, qr_code, clicks, has_visits)


def _counts(record: Mapping[str, Any], key: str, where: str) -> tuple[Count, ...]:
    rows = record[key]
    if not isinstance(rows, list):
        raise InvalidRecord(f"{where}.{key}: expected a list, got {_kind(rows)}")
    label = _COUNT_LABELS[key]
    counts = []
    for index, row in enumerate(rows):
        here = f"{where}.{key}[{index}]"
        row = _object(row, here)
        _require_keys(row, (label, "clicks"), here)
        for name in row:
            if name not in (label, "clicks"):
                raise InvalidRecord(f"{here}: unknown key {name!r}")
        counts.append(Count(_string(row, label, here), _count(row, "clicks", here)))
    return tuple(counts)


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRecord(f"{where}: expected an object, got {_kind(value)}")
    return value


def _require_keys(record: Mapping[str, Any], keys: Iterable[str], where: str) -> None:
    for key in keys:
        if key not in record:
            raise InvalidRecord(f"{where}: no {key!r}")


def _string(record: Mapping[str, Any], key: str, where: str) -> str:
    value = record[key]
    if not isinstance(value, str):
        raise InvalidRecord(f"{where}.{key}: expected a string, got {_kind(value)}")
    return value


def _count(record: Mapping[str, Any], key: str, where: str) -> int:
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRecord(f"{where}.{key}: expected a whole number >= 0, got {_kind(value)}")
    return value


def _timestamp(record: Mapping[str, Any], key: str, where: str) -> datetime:
    value = _string(record, key, where)
    if _TIMESTAMP.fullmatch(value):
        try:
            return parse_timestamp(value)
        except ValueError:
            pass
    raise InvalidRecord(
        f"{where}.{key}: {value[:40]!r} is not a UTC timestamp like 2024-05-01T12:00:00Z"
    )


def _kind(value: Any) -> str:
    """A value's JSON type, with a short value where it helps."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, list):
        return "a list"
    return "an object"
