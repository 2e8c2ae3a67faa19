"""Meaning, not values: properties of one side's answer that the contract promises.

The two sides hold different data against the real API, so a sort is checked by asking "is this
page sorted by the requested key?" on each side, a filter by "does every item match?", the page
size by "is it the documented default?". A property that holds on one side and not on the other
is a difference; one that cannot be evaluated (a renamed field, say) is left to the shape diff.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from emulator.drift.probes import Probe

DEFAULT_LIMIT = 25
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
# A server clock may be off by this much and still be taken to mean epoch seconds.
CLOCK_SKEW_SECONDS = 60
RESET_HORIZON_SECONDS = 86_400


@dataclass(frozen=True)
class Verdict:
    holds: bool | None
    observed: str


UNKNOWN = Verdict(None, "cannot be evaluated")


@dataclass(frozen=True)
class Answer:
    """What one side answered to one probe, as the properties see it."""

    probe: Probe
    status: int
    headers: Mapping[str, str]
    body: Any
    sent_at: float
    environment: str
    # When the answer came back: the server's moment lies between `sent_at` and this.
    received_at: float = 0.0
    requested_id: str | None = None


Property = Callable[[Answer], Verdict]

LABELS = {
    "page": "page consistency",
    "default_page_size": "default page size",
    "sorted": "sort order",
    "filter_q": "q filter",
    "filter_has_visits": "hasVisits filter",
    "past_end": "empty page past the end",
    "detail_id": "detail of the requested id",
    "created": "created link",
    "token": "token",
    "rate_limit": "X-RateLimit-Limit",
    "rate_remaining": "X-RateLimit-Remaining",
    "rate_reset": "X-RateLimit-Reset",
    "rate_decreases": "X-RateLimit-Remaining decreases",
}


def _page(answer: Answer) -> tuple[list[Any], Mapping[str, Any]] | None:
    body = answer.body
    if not isinstance(body, dict):
        return None
    data, pagination = body.get("data"), body.get("pagination")
    if not isinstance(data, list) or not isinstance(pagination, dict):
        return None
    return data, pagination


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def page(answer: Answer) -> Verdict:
    parsed = _page(answer)
    if parsed is None or answer.status != 200:
        return UNKNOWN
    data, pagination = parsed
    query = answer.probe.query_dict
    total, limit, offset = (_int(pagination.get(k)) for k in ("total", "limit", "offset"))
    has_more = pagination.get("hasMore")
    if total is None or limit is None or offset is None or not isinstance(has_more, bool):
        return UNKNOWN
    problems = []
    if "limit" in query and limit != int(query["limit"]):
        problems.append(f"pagination.limit={limit} for limit={query['limit']}")
    wanted_offset = int(query.get("offset", "0"))
    if offset != wanted_offset:
        problems.append(f"pagination.offset={offset} for offset={wanted_offset}")
    expected_items = max(0, min(limit, total - offset))
    if len(data) != expected_items:
        problems.append(
            f"{len(data)} items where limit {limit}, offset {offset} and total "
            f"{total} give {expected_items}"
        )
    if has_more != (offset + len(data) < total):
        problems.append(
            f"hasMore={str(has_more).lower()} with {offset + len(data)} of {total} seen"
        )
    if problems:
        return Verdict(False, "; ".join(problems))
    return Verdict(True, f"{len(data)} items, limit {limit}, offset {offset}, total {total}")


def default_page_size(answer: Answer) -> Verdict:
    parsed = _page(answer)
    if parsed is None or answer.status != 200:
        return UNKNOWN
    data, pagination = parsed
    limit, total = _int(pagination.get("limit")), _int(pagination.get("total"))
    if limit is None or total is None:
        return UNKNOWN
    observed = f"pagination.limit={limit}, {len(data)} items of {total}"
    holds = limit == DEFAULT_LIMIT and len(data) == min(DEFAULT_LIMIT, total)
    return Verdict(holds, observed + ("" if holds else f" (documented default {DEFAULT_LIMIT})"))


def _timestamp(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


SORT_VALUE: dict[str, Callable[[Any], Any]] = {
    "createdAt": _timestamp,
    "updatedAt": _timestamp,
    "title": lambda v: v.casefold() if isinstance(v, str) else None,
    "clicks": lambda v: v if isinstance(v, int | float) and not isinstance(v, bool) else None,
}


def sorted_page(answer: Answer) -> Verdict:
    parsed = _page(answer)
    if parsed is None or answer.status != 200:
        return UNKNOWN
    data, _ = parsed
    query = answer.probe.query_dict
    key, order = query.get("sortBy", "createdAt"), query.get("sortOrder", "desc")
    value = SORT_VALUE.get(key)
    if value is None:
        return UNKNOWN
    values = [value(item.get(key)) if isinstance(item, dict) else None for item in data]
    if any(v is None for v in values):
        return UNKNOWN
    for index in range(len(values) - 1):
        first, second = values[index], values[index + 1]
        if (first > second) if order == "asc" else (first < second):
            a, b = data[index].get(key), data[index + 1].get(key)
            return Verdict(
                False,
                f"not sorted by {key} {order}: item {index} has {a!r}, item {index + 1} has {b!r}",
            )
    return Verdict(True, f"{len(values)} items sorted by {key} {order}")


def filter_q(answer: Answer) -> Verdict:
    parsed = _page(answer)
    if parsed is None or answer.status != 200:
        return UNKNOWN
    data, _ = parsed
    needle = answer.probe.query_dict["q"].casefold()
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            return UNKNOWN
        fields = [item.get(k) for k in ("title", "slug", "destination")]
        if not all(isinstance(f, str) for f in fields):
            return UNKNOWN
        if not any(needle in f.casefold() for f in fields if isinstance(f, str)):
            return Verdict(False, f"item {index} ({item.get('id')!r}) does not contain {needle!r}")
    return Verdict(True, f"all {len(data)} items contain {needle!r}")


def filter_has_visits(answer: Answer) -> Verdict:
    parsed = _page(answer)
    if parsed is None or answer.status != 200:
        return UNKNOWN
    data, _ = parsed
    wanted = answer.probe.query_dict["hasVisits"] == "true"
    for index, item in enumerate(data):
        clicks = _int(item.get("clicks")) if isinstance(item, dict) else None
        if clicks is None:
            return UNKNOWN
        if (clicks > 0) != wanted or item.get("hasVisits") not in (wanted, None):
            return Verdict(
                False, f"item {index} has clicks={clicks}, hasVisits={item.get('hasVisits')!r}"
            )
    return Verdict(True, f"all {len(data)} items have hasVisits={str(wanted).lower()}")


def past_end(answer: Answer) -> Verdict:
    parsed = _page(answer)
    if parsed is None or answer.status != 200:
        return UNKNOWN
    data, pagination = parsed
    holds = data == [] and pagination.get("hasMore") is False
    return Verdict(holds, f"{len(data)} items, hasMore={pagination.get('hasMore')!r}")


def detail_id(answer: Answer) -> Verdict:
    body = answer.body
    if answer.status != 200 or not isinstance(body, dict) or "id" not in body:
        return UNKNOWN
    holds = body["id"] == answer.requested_id
    return Verdict(holds, f"id {body['id']!r} for requested {answer.requested_id!r}")


def created(answer: Answer) -> Verdict:
    body = answer.body
    if answer.status != 201 or not isinstance(body, dict):
        return UNKNOWN
    sent = answer.probe.json_body or {}
    persisted = answer.environment == "live"
    problems = []
    if body.get("persisted") is not persisted:
        problems.append(f"persisted={body.get('persisted')!r} in {answer.environment}")
    # A value of the wrong type is the shape diff's to report, not a second finding here.
    for key in ("title", "destination"):
        if isinstance(body.get(key), str) and body[key] != sent.get(key):
            problems.append(f"{key} {body[key]!r} is not the one sent")
    clicks = _int(body.get("clicks"))
    if clicks is not None and clicks != 0:
        problems.append(f"clicks={clicks} on a new link")
    if problems:
        return Verdict(False, "; ".join(problems))
    return Verdict(True, f"persisted={str(persisted).lower()}, fields as sent, no clicks")


def token(answer: Answer) -> Verdict:
    body = answer.body
    if answer.status != 200 or not isinstance(body, dict):
        return UNKNOWN
    problems = []
    if body.get("tokenType") != "Bearer":
        problems.append(f"tokenType={body.get('tokenType')!r}")
    expires = _int(body.get("expiresIn"))
    if expires is None or expires <= 0:
        problems.append(f"expiresIn={body.get('expiresIn')!r}")
    if body.get("environment") not in ("sandbox", "live"):
        problems.append(f"environment={body.get('environment')!r}")
    if problems:
        return Verdict(False, "; ".join(problems))
    return Verdict(True, f"Bearer, expires in {expires} s, {body.get('environment')}")


PROPERTIES: dict[str, Property] = {
    "page": page,
    "default_page_size": default_page_size,
    "sorted": sorted_page,
    "filter_q": filter_q,
    "filter_has_visits": filter_has_visits,
    "past_end": past_end,
    "detail_id": detail_id,
    "created": created,
    "token": token,
}


# -- rate-limit headers ---------------------------------------------------------------------------


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name.lower())
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isascii() and value.isdigit() else None


def rate_limit_headers(answer: Answer) -> dict[str, Verdict]:
    """The meaning of each rate-limit header that is present on this answer."""
    headers = answer.headers
    verdicts: dict[str, Verdict] = {}
    limit = _header_int(headers, "X-RateLimit-Limit")
    raw = {name: headers.get(name.lower()) for name in RATE_HEADERS}
    if raw["X-RateLimit-Limit"] is not None:
        holds = limit is not None and limit >= 1
        verdicts["rate_limit"] = Verdict(
            holds, f"{raw['X-RateLimit-Limit']!r}" + ("" if holds else " is not a positive integer")
        )
    if raw["X-RateLimit-Remaining"] is not None:
        remaining = _header_int(headers, "X-RateLimit-Remaining")
        if remaining is None:
            verdicts["rate_remaining"] = Verdict(
                False, f"{raw['X-RateLimit-Remaining']!r} is not a whole number"
            )
        elif limit is not None:
            holds = 0 <= remaining <= limit
            verdicts["rate_remaining"] = Verdict(
                holds, f"{remaining} of {limit}" + ("" if holds else ": more than the limit")
            )
    if raw["X-RateLimit-Reset"] is not None:
        reset = _header_int(headers, "X-RateLimit-Reset")
        sent = answer.sent_at
        if reset is None:
            verdicts["rate_reset"] = Verdict(
                False, f"{raw['X-RateLimit-Reset']!r} is not epoch seconds"
            )
        else:
            ahead = reset - sent
            holds = -CLOCK_SKEW_SECONDS <= ahead <= RESET_HORIZON_SECONDS
            observed = (
                f"epoch {reset}, {math.floor(ahead)} s after the request"
                if holds
                else f"{reset} is not an epoch time ahead of the request (epoch "
                f"{math.floor(sent)}); seconds-until-reset?"
            )
            verdicts["rate_reset"] = Verdict(holds, observed)
    return verdicts


def remaining_decreases(answers: Sequence[Answer]) -> dict[str, Verdict]:
    """For consecutive counted answers: Remaining must drop unless the window freed a request
    (the earlier answer's Reset has passed). Keyed by the later probe's name.

    The server may have handled the later request as late as its answer came back, so that
    moment, not the sending, decides whether the Reset could have passed: on a slow or distant
    target a request can take longer than the second of slack."""
    verdicts: dict[str, Verdict] = {}
    previous: tuple[Answer, int, int, int] | None = None
    for answer in answers:
        limit = _header_int(answer.headers, "X-RateLimit-Limit")
        remaining = _header_int(answer.headers, "X-RateLimit-Remaining")
        reset = _header_int(answer.headers, "X-RateLimit-Reset")
        if limit is None or remaining is None or reset is None:
            previous = None
            continue
        if previous is not None:
            before, before_limit, before_remaining, before_reset = previous
            freed = max(answer.sent_at, answer.received_at) >= before_reset - 1
            if before_limit == limit and remaining >= before_remaining and not freed:
                verdicts[answer.probe.name] = Verdict(
                    False,
                    f"Remaining {before_remaining} after {before.probe.name}, then {remaining}, "
                    f"before that window's Reset {before_reset}",
                )
            else:
                verdicts[answer.probe.name] = Verdict(True, f"{before_remaining} then {remaining}")
        previous = (answer, limit, remaining, reset)
    return verdicts
