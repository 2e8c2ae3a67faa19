"""Assertions about how a client under test behaved, judged from the emulator's request journal.

Each `check_*` returns None when the client behaved, or a message naming the offending requests;
each `assert_*` raises AssertionError with that message. They take the journal as the `emulator`
fixture gives it (`emulator.journal`) or as `GET /_emulator/requests?detail=1` returns it
(`response.json()["requests"]`), so they work against a container too.

By default a check also fails when the journal holds nothing to judge (no 429, no expired token,
no last page...), so a test cannot pass by never exercising the behaviour; pass
`require_evidence=False` for a blanket check of whatever happened.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ParamSpec
from urllib.parse import parse_qsl

from emulator.clock import format_timestamp, parse_timestamp
from emulator.paths import LINKS_PATH, TOKEN_PATH

DEFAULT_TOKEN_TTL_SECONDS = 3600


@dataclass(frozen=True)
class JournalRecord:
    """One request the emulator received, as `GET /_emulator/requests` shows it. `status` is 0
    where a fault sent no HTTP response; `fault` says which injected fault ran, if any."""

    sequence: int
    time: datetime
    method: str
    path: str
    query: str
    status: int
    client_id: str | None = None
    token_fingerprint: str | None = None
    retry_after: int | None = None
    pagination: Mapping[str, Any] | None = None
    request_id: str = ""
    error_code: str | None = None
    token_expires_at: datetime | None = None
    fault: Mapping[str, Any] | None = None
    latency_ms: float = 0.0  # the delay the emulator added (latency profile and fault)

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> JournalRecord:
        """From a journal entry; with `detail` it also reads the error code of a failure and the
        expiry of an issued token from the response body."""
        body = _json_body(entry)
        error = body.get("error")
        expires_at = body.get("expiresAt") if entry["path"] == TOKEN_PATH else None
        return cls(
            sequence=entry["sequence"],
            time=parse_timestamp(entry["time"]),
            method=entry["method"],
            path=entry["path"],
            query=entry.get("query") or "",
            status=entry["status"],
            client_id=entry.get("clientId"),
            token_fingerprint=entry.get("tokenFingerprint"),
            retry_after=entry.get("retryAfter"),
            pagination=entry.get("pagination"),
            request_id=entry.get("requestId") or "",
            error_code=error.get("code") if isinstance(error, dict) else None,
            token_expires_at=parse_timestamp(expires_at) if isinstance(expires_at, str) else None,
            fault=entry.get("fault"),
            latency_ms=entry.get("latencyMs") or 0.0,
        )

    @property
    def params(self) -> dict[str, Any]:
        """The query's parameters, typed as the contract gives them (`limit` and `offset`
        integers, `hasVisits` a boolean) where the value is one; other values as sent."""
        return {
            name: _typed(name, value)
            for name, value in parse_qsl(self.query, keep_blank_values=True)
        }

    @property
    def answered(self) -> bool:
        """Whether the client got the whole response: no fault cut the connection before it
        (status 0) or in its body (`truncated`)."""
        return self.status != 0 and (self.fault or {}).get("network") != "truncated"

    @property
    def is_token_exchange(self) -> bool:
        return self.method == "POST" and self.path == TOKEN_PATH

    @property
    def is_links_call(self) -> bool:
        return self.path == LINKS_PATH or self.path.startswith(LINKS_PATH + "/")

    @property
    def is_list(self) -> bool:
        return self.method == "GET" and self.path == LINKS_PATH

    def __str__(self) -> str:
        target = f"{self.path}?{self.query}" if self.query else self.path
        who = f" by {self.client_id}" if self.client_id else ""
        when = format_timestamp(self.time)
        return f"#{self.sequence} {self.method} {target} -> {self.status} at {when}{who}"


def _json_body(entry: Mapping[str, Any]) -> dict[str, Any]:
    text = (entry.get("response") or {}).get("body")
    if not text:
        return {}
    try:
        body = json.loads(text)
    except ValueError:  # truncated or not JSON
        return {}
    return body if isinstance(body, dict) else {}


# The list parameters that the contract types as other than strings.
PARAMETER_TYPES: dict[str, type] = {"limit": int, "offset": int, "hasVisits": bool}


def _typed(name: str, value: str) -> Any:
    kind = PARAMETER_TYPES.get(name)
    if kind is int and value.isascii() and value.isdigit():
        return int(value)
    if kind is bool and value in ("true", "false"):
        return value == "true"
    return value


Journal = Iterable[JournalRecord | Mapping[str, Any]]


@dataclass(frozen=True)
class _Issued:
    """A token the journal saw issued: by whom, where, and until when it is good."""

    client_id: str
    exchange: JournalRecord
    expires_at: datetime


class _Reading:
    """A journal in order, with who sent each request (a 401 names no client, but its token
    does) and the tokens issued."""

    def __init__(self, journal: Journal, ttl_seconds: int = DEFAULT_TOKEN_TTL_SECONDS) -> None:
        records = [
            r if isinstance(r, JournalRecord) else JournalRecord.from_json(r) for r in journal
        ]
        self.records = sorted(records, key=lambda r: r.sequence)
        self.tokens: dict[str, _Issued] = {}
        for r in self.records:
            if r.is_token_exchange and r.status == 200 and r.client_id and r.token_fingerprint:
                ttl = timedelta(seconds=ttl_seconds)
                expires = r.token_expires_at or r.time + ttl
                self.tokens[r.token_fingerprint] = _Issued(r.client_id, r, expires)

    def caller(self, record: JournalRecord) -> str | None:
        if record.client_id:
            return record.client_id
        issued = self.tokens.get(record.token_fingerprint or "")
        return issued.client_id if issued else None

    def calls(self, client_id: str | None) -> list[JournalRecord]:
        """Links calls whose caller is known, of `client_id` or of anyone."""
        return [
            r
            for r in self.records
            if r.is_links_call and self.caller(r) and client_id in (None, self.caller(r))
        ]

    def expired_uses(self, client_id: str | None) -> list[tuple[JournalRecord, _Issued]]:
        """Links calls that sent a token at or past its expiry (or were told it expired)."""
        uses = []
        for record in self.calls(client_id):
            issued = self.tokens.get(record.token_fingerprint or "")
            if issued is not None and (
                record.time >= issued.expires_at or record.error_code == "token_expired"
            ):
                uses.append((record, issued))
        return uses

    def exchanges(self, client_id: str | None) -> list[JournalRecord]:
        return [
            r
            for r in self.records
            if r.is_token_exchange
            and r.status == 200
            and r.answered
            and r.client_id
            and client_id in (None, r.client_id)
        ]


def _failure(title: str, lines: Iterable[str]) -> str:
    return title + "".join(f"\n  {line}" for line in lines)


def _no_evidence(what: str, hint: str, client_id: str | None) -> str:
    whose = f" from {client_id}" if client_id else ""
    return f"nothing to judge: the journal holds {what}{whose}; {hint}"


def check_retry_after_obeyed(
    journal: Journal, *, client_id: str | None = None, require_evidence: bool = True
) -> str | None:
    """After a 429 with `Retry-After: r` at time t, the same client sent no links request before
    t + r on the emulator's clock (judged to the whole second, so never a false alarm)."""
    reading = _Reading(journal)
    blocked: dict[str, tuple[JournalRecord, datetime]] = {}
    offences: list[str] = []
    seen_429 = False
    for record in reading.calls(client_id):
        caller = reading.caller(record)
        assert caller is not None
        if caller in blocked:
            refusal, until = blocked[caller]
            if record.time < until:
                offences.append(
                    f"{record}: #{refusal.sequence} answered 429 with Retry-After: "
                    f"{refusal.retry_after}, so not before {format_timestamp(until)}"
                )
        if record.status == 429 and record.retry_after is not None:
            seen_429 = True
            blocked[caller] = (record, record.time + timedelta(seconds=record.retry_after))
    if offences:
        return _failure("the client called again before Retry-After allowed:", offences)
    if require_evidence and not seen_429:
        return _no_evidence(
            "no 429 with Retry-After",
            "exhaust a rate window first, "
            "e.g. with emulator.register_application(rate_limit_per_minute=1)",
            client_id,
        )
    return None


def check_token_reused(
    journal: Journal,
    *,
    client_id: str | None = None,
    early_refresh_seconds: int = 300,
    ttl_seconds: int = DEFAULT_TOKEN_TTL_SECONDS,
    require_evidence: bool = True,
) -> str | None:
    """The client kept its token for later calls instead of exchanging credentials again while
    the token was good: a new exchange is fine once the previous token was rejected, or within
    `early_refresh_seconds` of its expiry."""
    reading = _Reading(journal, ttl_seconds)
    offences: list[str] = []
    by_client: dict[str, list[JournalRecord]] = {}
    for exchange in reading.exchanges(client_id):
        by_client.setdefault(exchange.client_id or "", []).append(exchange)
    for exchanges in by_client.values():
        for previous, current in itertools.pairwise(exchanges):
            fingerprint = previous.token_fingerprint or ""
            issued = reading.tokens.get(fingerprint)
            if issued is None:
                continue
            uses = [
                r
                for r in reading.records
                if r.token_fingerprint == fingerprint
                and r.is_links_call
                and previous.sequence < r.sequence < current.sequence
            ]
            if any(r.status == 401 for r in uses):
                continue
            refresh_from = issued.expires_at - timedelta(seconds=early_refresh_seconds)
            if current.time < refresh_from:
                used = ", ".join(f"#{r.sequence}" for r in uses) or "never used"
                offences.append(
                    f"{current}: the token from #{previous.sequence} was good until "
                    f"{format_timestamp(issued.expires_at)} and never rejected ({used})"
                )
    if offences:
        return _failure(
            "the client exchanged credentials while its token was still good:", offences
        )
    if require_evidence and len(reading.calls(client_id)) < 2:
        return _no_evidence(
            "fewer than two links calls", "make the client call the API at least twice", client_id
        )
    return None


def check_token_refreshed_after_expiry(
    journal: Journal,
    *,
    client_id: str | None = None,
    ttl_seconds: int = DEFAULT_TOKEN_TTL_SECONDS,
    require_evidence: bool = True,
) -> str | None:
    """Once its token expired, the client exchanged credentials again: it sent an expired token
    at most once (the 401 that told it) and did exchange afterwards."""
    reading = _Reading(journal, ttl_seconds)
    expired_uses: dict[str, list[JournalRecord]] = {}
    for record, _issued in reading.expired_uses(client_id):
        expired_uses.setdefault(record.token_fingerprint or "", []).append(record)
    offences: list[str] = []
    for fingerprint, uses in expired_uses.items():
        issued = reading.tokens[fingerprint]
        origin = f"the token from #{issued.exchange.sequence}"
        if len(uses) > 1:
            again = ", ".join(str(r) for r in uses[1:])
            offences.append(f"{again}: {origin} again after #{uses[0].sequence} was refused")
        later = [r for r in reading.exchanges(issued.client_id) if r.sequence > uses[0].sequence]
        if not later:
            offences.append(
                f"{uses[0]}: {origin} had expired at {format_timestamp(issued.expires_at)} "
                "and the client never exchanged credentials again"
            )
    if offences:
        return _failure("the client did not refresh its expired token:", offences)
    if require_evidence and not expired_uses and not _refreshed_on_time(reading, client_id):
        return _no_evidence(
            "no token that expired before the client's next call",
            "advance the clock past the token's expiry, e.g. emulator.clock.advance(3600)",
            client_id,
        )
    return None


def check_token_refreshed_before_expiry(
    journal: Journal,
    *,
    client_id: str | None = None,
    ttl_seconds: int = DEFAULT_TOKEN_TTL_SECONDS,
    require_evidence: bool = True,
) -> str | None:
    """The client renewed its token before it expired: it never sent a token at or after the
    token's `expiresAt` (on the emulator's clock), so no call was refused as `token_expired`."""
    reading = _Reading(journal, ttl_seconds)
    offences = [
        f"{record}: sent the token from #{issued.exchange.sequence}, which expired at "
        f"{format_timestamp(issued.expires_at)}; exchange credentials before then"
        for record, issued in reading.expired_uses(client_id)
    ]
    if offences:
        return _failure("the client used a token that had expired:", offences)
    if require_evidence and not _renewed_in_time(reading, client_id):
        return _no_evidence(
            "no call made after an earlier token's expiry",
            "advance the clock to near the token's expiry and call again, "
            "e.g. emulator.clock.advance(3600 - 30)",
            client_id,
        )
    return None


def _renewed_in_time(reading: _Reading, client_id: str | None) -> bool:
    """Whether a client made a call, with a newer token, at or after an older token's expiry."""
    first: dict[str, _Issued] = {}
    for exchange in reading.exchanges(client_id):
        issued = reading.tokens.get(exchange.token_fingerprint or "")
        if issued is not None:
            first.setdefault(issued.client_id, issued)
    for record in reading.calls(client_id):
        earliest = first.get(reading.caller(record) or "")
        if earliest is not None and record.time >= earliest.expires_at:
            return True
    return False


def _refreshed_on_time(reading: _Reading, client_id: str | None) -> bool:
    """Whether some client exchanged anew after its previous token expired, before using it."""
    latest: dict[str, _Issued] = {}
    for exchange in reading.exchanges(client_id):
        issued = reading.tokens.get(exchange.token_fingerprint or "")
        if issued is None:
            continue
        previous = latest.get(issued.client_id)
        if previous is not None and exchange.time >= previous.expires_at:
            return True
        latest[issued.client_id] = issued
    return False


def check_no_page_past_end(
    journal: Journal, *, client_id: str | None = None, require_evidence: bool = True
) -> str | None:
    """After a list response said `hasMore: false`, the client asked for no later page of the
    same listing (the same parameters but `offset` and `limit`)."""
    reading = _Reading(journal)
    ended: dict[tuple[Any, ...], JournalRecord] = {}
    offences: list[str] = []
    seen_end = False
    for record in reading.calls(client_id):
        if not record.is_list:
            continue
        params = record.params
        offset = _offset(params)
        listing = sorted((k, v) for k, v in params.items() if k not in ("offset", "limit"))
        key = (reading.caller(record), *listing)
        last = ended.get(key)
        if last is not None and offset is not None and offset > (_offset(last.params) or 0):
            total = (last.pagination or {}).get("total")
            offences.append(
                f"{record}: #{last.sequence} had answered hasMore: false (total {total})"
            )
        pagination = record.pagination
        if record.status != 200 or not pagination or not record.answered:
            continue
        if pagination.get("hasMore") is False:
            seen_end = True
            ended.setdefault(key, record)
        else:
            ended.pop(key, None)
    if offences:
        return _failure("the client asked for a page past the end of a listing:", offences)
    if require_evidence and not seen_end:
        return _no_evidence(
            "no list response with hasMore: false",
            "make the client read a listing to its end",
            client_id,
        )
    return None


def _offset(params: Mapping[str, Any]) -> int | None:
    offset = params.get("offset", 0)
    return offset if isinstance(offset, int) else None


P = ParamSpec("P")


def _asserting(check: Callable[P, str | None]) -> Callable[P, None]:
    def assertion(*args: P.args, **kwargs: P.kwargs) -> None:
        message = check(*args, **kwargs)
        if message is not None:
            raise AssertionError(message)

    assertion.__name__ = check.__name__.replace("check_", "assert_", 1)
    assertion.__qualname__ = assertion.__name__
    assertion.__doc__ = f"Raise AssertionError unless this holds: {check.__doc__}"
    return assertion


assert_retry_after_obeyed = _asserting(check_retry_after_obeyed)
assert_token_reused = _asserting(check_token_reused)
assert_token_refreshed_after_expiry = _asserting(check_token_refreshed_after_expiry)
assert_token_refreshed_before_expiry = _asserting(check_token_refreshed_before_expiry)
assert_no_page_past_end = _asserting(check_no_page_past_end)
