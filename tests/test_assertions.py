"""The client-behaviour assertions: on hand-written journals, and on a real emulator's journal
after a well-behaved and a badly behaved client."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.assertions import (
    LINKS_PATH,
    TOKEN_PATH,
    JournalRecord,
    assert_no_page_past_end,
    assert_retry_after_obeyed,
    assert_token_refreshed_after_expiry,
    assert_token_reused,
    check_no_page_past_end,
    check_retry_after_obeyed,
    check_token_refreshed_after_expiry,
    check_token_refreshed_before_expiry,
    check_token_reused,
)
from emulator.clock import format_timestamp

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Journal:
    """Builds journal entries in the wire's JSON form, numbered in order."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def add(
        self,
        method: str,
        path: str,
        status: int,
        at: float | timedelta,
        *,
        client: str | None = "sb_a",
        query: str = "",
        token: str | None = None,
        retry_after: int | None = None,
        pagination: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "sequence": len(self.entries) + 1,
            "requestId": f"req_{len(self.entries) + 1}",
            "time": format_timestamp(
                T0 + (at if isinstance(at, timedelta) else timedelta(seconds=at))
            ),
            "method": method,
            "path": path,
            "query": query,
            "status": status,
            "clientId": client,
            "tokenFingerprint": token,
            "retryAfter": retry_after,
            "pagination": pagination,
            "durationMs": 1.0,
        }
        if body is not None:
            entry["response"] = {"headers": [], "body": json.dumps(body)}
        self.entries.append(entry)
        return entry

    def exchange(
        self, at: float | timedelta, token: str, client: str = "sb_a", **extra: Any
    ) -> None:
        self.add("POST", TOKEN_PATH, 200, at, client=client, token=token, **extra)

    def call(self, at: float | timedelta, token: str, status: int = 200, **extra: Any) -> None:
        extra.setdefault("client", None if status == 401 else "sb_a")
        self.add("GET", LINKS_PATH, status, at, token=token, **extra)

    def page(self, at: float, offset: int, total: int, limit: int = 25, **extra: Any) -> None:
        pagination = {"total": total, "limit": limit, "offset": offset}
        pagination["hasMore"] = offset + limit < total
        query = f"limit={limit}&offset={offset}" + extra.pop("also", "")
        self.add("GET", LINKS_PATH, 200, at, query=query, pagination=pagination, **extra)


# -- records


def test_a_record_reads_the_error_code_and_the_token_expiry_from_a_detailed_entry():
    journal = Journal()
    journal.exchange(0, "tok_1", body={"accessToken": "***", "expiresAt": "2026-01-01T00:10:00Z"})
    journal.call(5, "tok_1", status=401, body={"error": {"code": "token_expired"}})
    exchange, refused = (JournalRecord.from_json(e) for e in journal.entries)

    assert exchange.token_expires_at == T0 + timedelta(minutes=10)
    assert refused.error_code == "token_expired"
    assert str(refused) == f"#2 GET {LINKS_PATH} -> 401 at 2026-01-01T00:00:05Z"


def test_a_record_survives_a_truncated_body():
    journal = Journal()
    entry = journal.add("GET", LINKS_PATH, 500, 0)
    entry["response"] = {"headers": [], "body": '{"error": {"co…(truncated)'}

    assert JournalRecord.from_json(entry).error_code is None


def test_assert_helpers_raise_the_check_message():
    journal = Journal()
    journal.exchange(0, "tok_1")
    journal.call(0, "tok_1", status=429, retry_after=30)
    journal.call(1, "tok_1")

    message = check_retry_after_obeyed(journal.entries)
    with pytest.raises(AssertionError) as failure:
        assert_retry_after_obeyed(journal.entries)

    assert message is not None
    assert str(failure.value) == message
    assert assert_retry_after_obeyed.__name__ == "assert_retry_after_obeyed"


# -- Retry-After


def test_waiting_out_retry_after_passes():
    journal = Journal()
    journal.exchange(0, "tok_1")
    journal.call(10, "tok_1", status=429, retry_after=30)
    journal.call(40, "tok_1")

    assert check_retry_after_obeyed(journal.entries) is None


def test_calling_before_retry_after_names_both_requests():
    journal = Journal()
    journal.exchange(0, "tok_1")
    journal.call(10, "tok_1", status=429, retry_after=30)
    journal.call(39, "tok_1", status=429, retry_after=1)
    journal.call(40, "tok_1")

    message = check_retry_after_obeyed(journal.entries)

    assert message is not None
    assert message.startswith("the client called again before Retry-After allowed:")
    assert "#3 GET" in message and "#2 answered 429 with Retry-After: 30" in message
    assert "not before 2026-01-01T00:00:40Z" in message
    assert "#4" not in message  # #3's own Retry-After: 1 allowed a call at 40


def test_another_client_may_call_during_someone_elses_wait():
    journal = Journal()
    journal.exchange(0, "tok_a", client="sb_a")
    journal.exchange(0, "tok_b", client="sb_b")
    journal.call(10, "tok_a", status=429, retry_after=30, client="sb_a")
    journal.call(11, "tok_b", client="sb_b")

    assert check_retry_after_obeyed(journal.entries) is None
    assert check_retry_after_obeyed(journal.entries, client_id="sb_b") is not None  # no 429


def test_a_journal_without_429_has_nothing_to_judge_unless_told_so():
    journal = Journal()
    journal.exchange(0, "tok_1")
    journal.call(1, "tok_1")

    message = check_retry_after_obeyed(journal.entries)

    assert message is not None and message.startswith("nothing to judge: the journal holds no 429")
    assert check_retry_after_obeyed(journal.entries, require_evidence=False) is None


@given(
    refused_at=st.integers(min_value=0, max_value=10**10),
    retry_after=st.integers(min_value=1, max_value=120),
    extra=st.integers(min_value=0, max_value=10**8),
)
def test_whole_second_times_never_raise_a_false_alarm(refused_at, retry_after, extra):
    """Times in microseconds: the journal shows them cut to the second."""
    refused = timedelta(microseconds=refused_at)
    journal = Journal()
    journal.exchange(0, "tok_1")
    journal.call(refused, "tok_1", status=429, retry_after=retry_after)
    journal.call(refused + timedelta(seconds=retry_after, microseconds=extra), "tok_1")

    assert check_retry_after_obeyed(journal.entries) is None


@given(
    refused_at=st.integers(min_value=0, max_value=10_000),
    retry_after=st.integers(min_value=2, max_value=120),
    early=st.floats(min_value=1, max_value=120),
)
def test_a_call_a_second_or_more_early_is_always_caught(refused_at, retry_after, early):
    early = min(early, retry_after)
    journal = Journal()
    journal.exchange(0, "tok_1")
    journal.call(refused_at, "tok_1", status=429, retry_after=retry_after)
    journal.call(refused_at + retry_after - math.ceil(early), "tok_1")

    assert check_retry_after_obeyed(journal.entries) is not None


# -- token reuse


def test_one_token_for_many_calls_passes():
    journal = Journal()
    journal.exchange(0, "tok_1")
    for second in range(1, 5):
        journal.call(second, "tok_1")

    assert check_token_reused(journal.entries) is None


def test_exchanging_per_call_names_each_needless_exchange():
    journal = Journal()
    for second, token in enumerate(["tok_1", "tok_2", "tok_3"]):
        journal.exchange(second, token)
        journal.call(second, token)

    message = check_token_reused(journal.entries)

    assert message is not None
    assert message.startswith("the client exchanged credentials while its token was still good:")
    assert f"#3 POST {TOKEN_PATH}" in message and f"#5 POST {TOKEN_PATH}" in message
    assert "the token from #1 was good until 2026-01-01T01:00:00Z and never rejected (#2)" in (
        message
    )


def test_a_new_exchange_after_a_rejection_or_near_expiry_is_fine():
    journal = Journal()
    journal.exchange(0, "tok_1")
    journal.call(1, "tok_1", status=401)  # say, revoked
    journal.exchange(2, "tok_2")
    journal.call(3, "tok_2")
    journal.exchange(3600 + 2 - 60, "tok_3")  # a minute before tok_2 expires
    journal.call(3600 + 2 - 60, "tok_3")

    assert check_token_reused(journal.entries) is None
    assert check_token_reused(journal.entries, early_refresh_seconds=30) is not None


def test_the_token_expiry_comes_from_the_response_when_the_journal_has_it():
    journal = Journal()
    journal.exchange(0, "tok_1", body={"expiresAt": "2026-01-01T00:05:00Z"})
    journal.call(1, "tok_1")
    journal.exchange(100, "tok_2")  # within 300 s of tok_1's expiry at 00:05:00
    journal.call(101, "tok_2")

    assert check_token_reused(journal.entries) is None


def test_a_single_call_cannot_show_reuse():
    journal = Journal()
    journal.exchange(0, "tok_1")
    journal.call(1, "tok_1")

    message = check_token_reused(journal.entries, client_id="sb_a")

    assert message == (
        "nothing to judge: the journal holds fewer than two links calls from sb_a; "
        "make the client call the API at least twice"
    )


# -- refresh after expiry


def test_refreshing_after_the_expiry_401_passes():
    journal = Journal()
    journal.exchange(0, "tok_1")
    journal.call(1, "tok_1")
    journal.call(3600, "tok_1", status=401)  # names no client: the token says whose it was
    journal.exchange(3600, "tok_2")
    journal.call(3600, "tok_2")

    assert check_token_refreshed_after_expiry(journal.entries) is None
    assert check_token_refreshed_after_expiry(journal.entries, client_id="sb_a") is None


def test_refreshing_before_using_an_expired_token_passes():
    journal = Journal()
    journal.exchange(0, "tok_1")
    journal.call(1, "tok_1")
    journal.exchange(4000, "tok_2")
    journal.call(4000, "tok_2")

    assert check_token_refreshed_after_expiry(journal.entries) is None


def test_sending_an_expired_token_again_is_named():
    journal = Journal()
    journal.exchange(0, "tok_1")
    journal.call(3600, "tok_1", status=401)
    journal.call(3601, "tok_1", status=401)
    journal.exchange(3602, "tok_2")

    message = check_token_refreshed_after_expiry(journal.entries)

    assert message is not None
    assert message.startswith("the client did not refresh its expired token:")
    assert f"#3 GET {LINKS_PATH} -> 401" in message
    assert "the token from #1 again after #2 was refused" in message


def test_never_exchanging_again_is_named():
    journal = Journal()
    journal.exchange(0, "tok_1", body={"expiresAt": "2026-01-01T00:01:00Z"})
    journal.call(60, "tok_1", status=401, body={"error": {"code": "token_expired"}})

    message = check_token_refreshed_after_expiry(journal.entries)

    assert message is not None
    assert (
        "the token from #1 had expired at 2026-01-01T00:01:00Z and the client never exchanged "
        "credentials again" in message
    )


def test_no_expiry_means_nothing_to_judge():
    journal = Journal()
    journal.exchange(0, "tok_1")
    journal.call(1, "tok_1")

    message = check_token_refreshed_after_expiry(journal.entries)

    assert message is not None and message.startswith("nothing to judge")
    assert "emulator.clock.advance(3600)" in message


# -- refresh before expiry


def test_renewing_before_the_expiry_passes():
    journal = Journal()
    journal.exchange(0, "tok_1")
    journal.call(1, "tok_1")
    journal.exchange(3570, "tok_2")  # 30 s before tok_1 expires
    journal.call(3600, "tok_2")

    assert check_token_refreshed_before_expiry(journal.entries) is None


def test_sending_a_token_at_its_expiry_is_named():
    journal = Journal()
    journal.exchange(0, "tok_1", body={"expiresAt": "2026-01-01T01:00:00Z"})
    journal.call(1, "tok_1")
    journal.call(3600, "tok_1", status=401, body={"error": {"code": "token_expired"}})
    journal.exchange(3600, "tok_2")
    journal.call(3600, "tok_2")

    message = check_token_refreshed_before_expiry(journal.entries)

    assert message == (
        "the client used a token that had expired:\n"
        f"  #3 GET {LINKS_PATH} -> 401 at 2026-01-01T01:00:00Z: sent the token from #1, which "
        "expired at 2026-01-01T01:00:00Z; exchange credentials before then"
    )
    assert check_token_refreshed_after_expiry(journal.entries) is None  # the reactive kind


def test_no_call_past_an_expiry_means_nothing_to_judge():
    journal = Journal()
    journal.exchange(0, "tok_1")
    journal.call(3599, "tok_1")

    message = check_token_refreshed_before_expiry(journal.entries)

    assert message is not None and message.startswith("nothing to judge")
    assert "emulator.clock.advance(3600 - 30)" in message
    assert check_token_refreshed_before_expiry(journal.entries, require_evidence=False) is None


def test_judging_one_client_leaves_the_others_alone():
    journal = Journal()
    journal.exchange(0, "tok_1")
    journal.exchange(0, "tok_b", client="sb_b")
    journal.call(3600, "tok_b", status=401, body={"error": {"code": "token_expired"}})
    journal.exchange(3590, "tok_2")
    journal.call(3600, "tok_2")

    assert check_token_refreshed_before_expiry(journal.entries, client_id="sb_a") is None
    assert check_token_refreshed_before_expiry(journal.entries, client_id="sb_b") is not None


# -- pages past the end


def test_stopping_at_has_more_false_passes():
    journal = Journal()
    for offset in (0, 25, 50):
        journal.page(offset, offset, total=60)

    assert check_no_page_past_end(journal.entries) is None


def test_asking_past_the_last_page_is_named():
    journal = Journal()
    for offset in (0, 25, 50, 75):
        journal.page(offset, offset, total=40)

    message = check_no_page_past_end(journal.entries)

    assert message is not None
    assert message.splitlines() == [
        "the client asked for a page past the end of a listing:",
        f"  #3 GET {LINKS_PATH}?limit=25&offset=50 -> 200 at 2026-01-01T00:00:50Z by sb_a: "
        "#2 had answered hasMore: false (total 40)",
        f"  #4 GET {LINKS_PATH}?limit=25&offset=75 -> 200 at 2026-01-01T00:01:15Z by sb_a: "
        "#2 had answered hasMore: false (total 40)",
    ]


def test_a_new_listing_or_a_new_pass_may_start_again():
    journal = Journal()
    journal.page(0, 0, total=10)
    journal.page(1, 0, total=10)  # the same listing, read again from the top
    journal.page(2, 25, total=30, also="&q=launch")  # another listing
    journal.page(3, 25, total=10, client="sb_b")  # someone else's

    assert check_no_page_past_end(journal.entries, client_id="sb_a") is None


def test_no_last_page_means_nothing_to_judge():
    journal = Journal()
    journal.page(0, 0, total=100)

    message = check_no_page_past_end(journal.entries)

    assert message is not None and "no list response with hasMore: false" in message


# -- on a real emulator


@pytest.fixture
def http(emulator):
    with httpx.Client(base_url=emulator.url) as client:
        yield client


def _token(http: httpx.Client, client_id: str, secret: str) -> dict[str, str]:
    body = {"clientId": client_id, "clientSecret": secret}
    response = http.post(TOKEN_PATH, json=body)
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['accessToken']}"}


def test_a_client_that_exchanges_per_call_fails_on_the_real_journal(emulator, http):
    creds = emulator.credentials
    for _ in range(3):
        headers = _token(http, creds.client_id, creds.client_secret)
        http.get(LINKS_PATH, params={"limit": 1}, headers=headers).raise_for_status()

    with pytest.raises(AssertionError) as failure:
        assert_token_reused(emulator.journal)

    assert f"#3 POST {TOKEN_PATH} -> 200" in str(failure.value)
    assert f"#5 POST {TOKEN_PATH} -> 200" in str(failure.value)


def test_a_client_that_hammers_after_429_fails_on_the_real_journal(emulator, http):
    emulator.clock.freeze()
    app = emulator.register_application(rate_limit_per_minute=1)
    headers = _token(http, app.client_id, app.client_secret)
    statuses = [http.get(LINKS_PATH, headers=headers).status_code for _ in range(3)]

    with pytest.raises(AssertionError) as failure:
        assert_retry_after_obeyed(emulator.journal)

    assert statuses == [200, 429, 429]
    assert f"#4 GET {LINKS_PATH} -> 429" in str(failure.value)
    assert "#3 answered 429 with Retry-After: 60" in str(failure.value)


def test_a_client_that_keeps_an_expired_token_fails_on_the_real_journal(emulator, http):
    creds = emulator.credentials
    headers = _token(http, creds.client_id, creds.client_secret)
    emulator.clock.advance(3600)
    statuses = [http.get(LINKS_PATH, headers=headers).status_code for _ in range(2)]

    with pytest.raises(AssertionError) as failure:
        assert_token_refreshed_after_expiry(emulator.journal)

    assert statuses == [401, 401]
    assert "the token from #1 again after #2 was refused" in str(failure.value)
    assert "never exchanged credentials again" in str(failure.value)


def test_a_client_that_reads_past_the_end_fails_on_the_real_journal(emulator, http):
    creds = emulator.credentials
    headers = _token(http, creds.client_id, creds.client_secret)
    for offset in (0, 10, 20):  # q=launch has fewer than 20 sample links
        params = {"q": "launch", "limit": 10, "offset": offset}
        http.get(LINKS_PATH, params=params, headers=headers).raise_for_status()

    with pytest.raises(AssertionError) as failure:
        assert_no_page_past_end(emulator.journal)

    assert "offset=20 -> 200" in str(failure.value)
    assert "#3 had answered hasMore: false" in str(failure.value)


def test_the_checks_read_the_journal_from_the_control_api_too(emulator, http):
    creds = emulator.credentials
    headers = _token(http, creds.client_id, creds.client_secret)
    http.get(LINKS_PATH, params={"limit": 1}, headers=headers).raise_for_status()
    emulator.clock.advance(3600)
    assert http.get(LINKS_PATH, headers=headers).status_code == 401

    entries = http.get("/_emulator/requests", params={"detail": 1}).json()["requests"]

    assert [JournalRecord.from_json(e) for e in entries] == emulator.journal
    assert "never exchanged credentials again" in (
        check_token_refreshed_after_expiry(entries) or ""
    )
