"""LiveStore on its own: schema and migrations, durable files, exact creates, scoping, analytics,
and list queries that agree with the sandbox's reference implementation (SandboxStore) exactly.
"""

from __future__ import annotations

import hashlib
import random
import re
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from invariants import assert_link_valid

from emulator.errors import ApiError
from emulator.link_names import LinkNames, seed_secret
from emulator.live_store import MIGRATIONS, SCHEMA_VERSION, TOP_LIMIT, LiveStore, StoreError, Visit
from emulator.models import SLUG_PATTERN, Link, NewLink, Workspace
from emulator.store import SORT_KEYS, SORT_ORDERS, LinkQuery, SandboxStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
WS = Workspace("ws_a", "personal", link_quota=1_000_000)
OTHER = Workspace("ws_b", "company", link_quota=1_000_000)
INDEXES = {"links_by_created", "links_by_updated", "links_by_title", "links_by_clicks"}


SEED = 7
NAMES = LinkNames(seed_secret(SEED))


@pytest.fixture
def store() -> Iterator[LiveStore]:
    live = LiveStore.open(None, seed=SEED)
    try:
        yield live
    finally:
        live.close()


def _new(n: int, slug: str | None = None, title: str | None = None) -> NewLink:
    return NewLink(title or f"Link {n}", f"https://example.com/{n}", slug)


def _versions(path: Path) -> list[int]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT version FROM schema_version ORDER BY 1")]


def _v1_file(path: Path, rows: list[tuple[str, str, str, str, str]]) -> None:
    """A database as an emulator at schema version 1 left it: MIGRATIONS[0] and a version row."""
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0])
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.execute("INSERT INTO schema_version (version) VALUES (1)")
    stamp = int(T0.timestamp())
    for link_id, workspace_id, title, slug, destination in rows:
        db.execute(
            "INSERT INTO links (id, workspace_id, title, slug, destination, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (link_id, workspace_id, title, slug, destination, stamp, stamp),
        )
    db.commit()
    db.close()


# --- opening, schema, migrations -------------------------------------------------------------


def test_memory_store_has_the_current_schema_and_indexes(store: LiveStore) -> None:
    db = store._db
    assert db.execute("SELECT max(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert names >= INDEXES | {"visits_by_link"}


def test_file_store_is_wal_with_full_sync(tmp_path: Path) -> None:
    live = LiveStore.open(str(tmp_path / "live.db"))
    try:
        assert live._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert live._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        live.close()
    assert _versions(tmp_path / "live.db") == list(range(1, SCHEMA_VERSION + 1))


def test_reopening_a_current_file_runs_no_migration_again(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    for _ in range(3):
        LiveStore.open(str(path)).close()
    assert _versions(path) == list(range(1, SCHEMA_VERSION + 1))


def test_a_committed_create_is_visible_to_another_connection_at_once(tmp_path: Path) -> None:
    """Committed before create returns: a second reader (another process, in effect) sees it."""
    path = tmp_path / "live.db"
    live = LiveStore.open(str(path))
    try:
        link = live.create(WS, _new(1, "seen-elsewhere"), T0)
        with sqlite3.connect(path) as reader:
            row = reader.execute("SELECT id, slug FROM links").fetchall()
        assert row == [(link.id, "seen-elsewhere")]
    finally:
        live.close()


def test_file_store_keeps_links_and_visits_across_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "live.db")
    live = LiveStore.open(path)
    link = live.create(WS, _new(1, "kept"), T0)
    live.record_visits(link.id, [Visit(T0 + timedelta(hours=1), "DE", "t.co", "mobile", "v1")])
    live.close()
    again = LiveStore.open(path)
    try:
        got = again.get(WS.id, link.id)
        assert got is not None and got.slug == "kept" and got.clicks == 1
        assert got.analytics.top_countries[0].label == "DE"
        assert again.find_slug("kept") == (link.id, link.destination, link.created_at)
        second = again.create(WS, _new(2), T0)
        assert second.id != link.id, "ids continue after a restart"
    finally:
        again.close()


def test_a_version_1_file_is_upgraded_not_rejected(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _v1_file(
        path,
        [
            ("lnk_old0000000000001", WS.id, "Große STRASSE Café", "old-one", "https://Ex.COM/Été"),
            ("lnk_old0000000000002", OTHER.id, "Other workspace", "old-two", "https://b.example/"),
        ],
    )
    live = LiveStore.open(str(path))
    try:
        assert _versions(path) == list(range(1, SCHEMA_VERSION + 1))
        old = live.get(WS.id, "lnk_old0000000000001")
        assert old is not None and old.title == "Große STRASSE Café" and old.clicks == 0
        assert live.get(WS.id, "lnk_old0000000000002") is None, "still scoped after the upgrade"
        # casefold(), not SQL's ASCII lower(): "ß" folds to "ss", "É" to "é".
        for needle in ("grosse", "straße", "CAFÉ", "ex.com/été", "OLD-ONE"):
            page = live.query(WS.id, LinkQuery(q=needle))
            assert [link.id for link in page.items] == ["lnk_old0000000000001"], needle
        assert live.query(WS.id, LinkQuery(has_visits=False)).total == 1
        new = live.create(WS, _new(3, title="a new one"), T0)
        assert new.id not in {"lnk_old0000000000001", "lnk_old0000000000002"}
        with pytest.raises(ApiError) as taken:
            live.create(OTHER, _new(4, "old-one"), T0)
        assert taken.value.code == "slug_taken"
        live.record_visits(old.id, [Visit(T0)])
        assert live.query(WS.id, LinkQuery(has_visits=True)).items[0].id == old.id
        titles = [link.title for link in live.query(WS.id, LinkQuery(sort_by="title")).items]
        assert titles == ["Große STRASSE Café", "a new one"]  # "grosse…" > "a new…" casefolded
    finally:
        live.close()


def test_a_version_1_file_upgraded_twice_is_stable(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _v1_file(path, [("lnk_old0000000000001", WS.id, "Straße", "old-one", "https://a.example/")])
    LiveStore.open(str(path)).close()
    live = LiveStore.open(str(path))
    try:
        assert live.query(WS.id, LinkQuery(q="STRASSE")).total == 1
        assert _versions(path) == list(range(1, SCHEMA_VERSION + 1))
    finally:
        live.close()


def test_a_newer_schema_is_refused_with_a_message_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    LiveStore.open(str(path)).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 7,))
    with pytest.raises(StoreError) as refused:
        LiveStore.open(str(path))
    assert str(path) in str(refused.value) and "newer" in str(refused.value)


@pytest.mark.parametrize(
    "content",
    [b"not a database at all\n" * 100, b"SQLite format 3\x00" + b"\x00" * 90 + b"\xff" * 4000],
    ids=["text", "bad-header"],
)
def test_a_corrupt_file_is_a_store_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(content)
    with pytest.raises(StoreError) as refused:
        LiveStore.open(str(path))
    assert str(path) in str(refused.value)


DAMAGE = [
    pytest.param("whole-page", id="whole-page"),
    pytest.param("half-page", id="half-page"),
]


def damage_file(path: Path, how: str) -> None:
    """A real store file, then data bytes in its middle overwritten: header and schema intact.

    `whole-page` fills one page with a repeated hash; `half-page` writes random bytes from the
    middle of one page into the next (a torn write), so the pages' headers survive with garbage
    cells under them."""
    live = LiveStore.open(str(path))
    live._db.execute("PRAGMA synchronous=OFF")  # building a fixture: no fsync per create
    for n in range(2000):
        live.create(WS, _new(n, title=f"title {n} " + "x" * 100), T0)
    live.close()
    data = bytearray(path.read_bytes())
    if how == "whole-page":
        start = (len(data) // 2) // 4096 * 4096
        data[start : start + 4096] = hashlib.sha256(b"x").digest() * 128
    else:
        start = (len(data) // 2) // 4096 * 4096 + 2048
        data[start : start + 4096] = random.Random(0).randbytes(4096)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_file_is_refused_at_open_in_one_line(tmp_path: Path, how: str) -> None:
    """A valid header and schema over a garbled data page: only a check at open catches it
    (otherwise it is a 500 on some later list)."""
    path = tmp_path / "damaged.db"
    damage_file(path, how)
    with pytest.raises(StoreError) as refused:
        LiveStore.open(str(path)).close()
    assert str(path) in str(refused.value)
    assert "\n" not in str(refused.value), str(refused.value)


@pytest.mark.parametrize("kind", ["missing-directory", "directory"])
def test_an_unusable_path_is_a_store_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "no" / "such" / "dir" / "x.db" if kind == "missing-directory" else tmp_path
    with pytest.raises(StoreError) as refused:
        LiveStore.open(str(path))
    assert str(path) in str(refused.value)


# --- create ----------------------------------------------------------------------------------


def test_create_returns_the_stored_link(store: LiveStore) -> None:
    link = store.create(WS, NewLink("Hello", "https://example.com/x", "hello"), T0)
    assert link.slug == "hello" and link.created_at == link.updated_at == T0
    assert link.id.startswith("lnk_") and link.clicks == 0
    assert store.get(WS.id, link.id) == link
    assert store.count(WS.id) == 1 and store.count(OTHER.id) == 0


def test_create_truncates_to_whole_seconds(store: LiveStore) -> None:
    link = store.create(WS, _new(1), T0 + timedelta(microseconds=999_999))
    assert link.created_at == T0 and link.created_at.microsecond == 0
    assert store.get(WS.id, link.id) == link


def test_slugs_are_unique_across_workspaces(store: LiveStore) -> None:
    store.create(WS, _new(1, "shared-slug"), T0)
    with pytest.raises(ApiError) as same:
        store.create(WS, _new(2, "shared-slug"), T0)
    with pytest.raises(ApiError) as other:
        store.create(OTHER, _new(3, "shared-slug"), T0)
    for error in (same.value, other.value):
        assert (error.status, error.code, error.field) == (409, "slug_taken", "slug")
    assert same.value.body() == other.value.body(), "no hint of whose slug it is"
    assert WS.id not in str(other.value.body()) and store.count(OTHER.id) == 0


def test_generated_slugs_are_valid_and_unique(store: LiveStore) -> None:
    slugs = [store.create(WS if n % 2 else OTHER, _new(n), T0).slug for n in range(300)]
    assert len(set(slugs)) == 300
    assert all(re.fullmatch(SLUG_PATTERN, slug) for slug in slugs)


def test_a_generated_slug_steps_over_one_already_taken(store: LiveStore) -> None:
    # The candidate the store would generate for the second link, taken explicitly by the first.
    candidate = NAMES.slug(2)
    store.create(WS, _new(1, candidate), T0)
    second = store.create(OTHER, _new(2), T0)
    assert second.slug != candidate
    assert second.slug == NAMES.slug(2, attempt=1)


def test_quota_is_exact_and_per_workspace(store: LiveStore) -> None:
    small = Workspace("ws_small", "company", link_quota=3)
    for n in range(3):
        store.create(small, _new(n), T0)
    with pytest.raises(ApiError) as full:
        store.create(small, _new(9), T0)
    assert (full.value.status, full.value.code) == (403, "link_quota_exceeded")
    assert store.count(small.id) == 3
    store.create(WS, _new(10), T0)  # other workspaces are untouched


def test_zero_quota_refuses_the_first_create(store: LiveStore) -> None:
    with pytest.raises(ApiError) as full:
        store.create(Workspace("ws_zero", "personal", link_quota=0), _new(1), T0)
    assert full.value.code == "link_quota_exceeded"


def test_a_refused_create_changes_nothing(store: LiveStore) -> None:
    first = store.create(WS, _new(1, "taken"), T0)
    with pytest.raises(ApiError):
        store.create(WS, _new(2, "taken"), T0)
    with pytest.raises(ApiError):
        store.create(Workspace("ws_zero", "personal", link_quota=0), _new(3), T0)
    assert store.count(WS.id) == 1
    nxt = store.create(WS, _new(4), T0)
    assert nxt.id == NAMES.link_id(2), "no sequence gap"
    assert first.id == NAMES.link_id(1)


def test_clear_forgets_everything(store: LiveStore) -> None:
    link = store.create(WS, _new(1, "gone-soon"), T0)
    store.record_visits(link.id, [Visit(T0)])
    store.clear()
    assert store.count(WS.id) == 0 and store.find_slug("gone-soon") is None
    assert store.visit_count(link.id) == 0
    again = store.create(WS, _new(1, "gone-soon"), T0)
    assert again.id == link.id, "ids restart after a reset: deterministic runs"


def test_threads_creating_one_slug_get_exactly_one_link(tmp_path: Path) -> None:
    live = LiveStore.open(str(tmp_path / "race.db"))
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def attempt(n: int) -> None:
        barrier.wait(timeout=10)
        workspace = WS if n % 2 else OTHER
        try:
            live.create(workspace, _new(n, "contested"), T0)
            outcomes.append("created")
        except ApiError as error:
            outcomes.append(error.code)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    live.close()
    assert Counter(outcomes) == {"created": 1, "slug_taken": 7}


def test_threads_against_a_quota_get_exactly_the_quota(tmp_path: Path) -> None:
    live = LiveStore.open(str(tmp_path / "quota.db"))
    small = Workspace("ws_small", "company", link_quota=5)
    outcomes: list[str] = []
    barrier = threading.Barrier(16)

    def attempt(n: int) -> None:
        barrier.wait(timeout=10)
        try:
            live.create(small, _new(n), T0)
            outcomes.append("created")
        except ApiError as error:
            outcomes.append(error.code)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert Counter(outcomes) == {"created": 5, "link_quota_exceeded": 11}
    assert live.count(small.id) == 5
    live.close()


# --- scoping ---------------------------------------------------------------------------------


def test_get_and_query_are_bound_to_the_workspace(store: LiveStore) -> None:
    mine = store.create(WS, _new(1, "mine-slug", "Shared words"), T0)
    theirs = store.create(OTHER, _new(2, "their-slug", "Shared words"), T0)
    assert store.get(WS.id, theirs.id) is None and store.get(OTHER.id, mine.id) is None
    assert store.get("ws_nobody", mine.id) is None
    assert [link.id for link in store.query(WS.id, LinkQuery(q="shared")).items] == [mine.id]
    assert store.query(WS.id, LinkQuery(q="their-slug")).total == 0
    assert store.query("ws_nobody", LinkQuery()).total == 0
    # Short links are public: slugs resolve whatever the workspace.
    found = store.find_slug("their-slug")
    assert found is not None and found.link_id == theirs.id
    assert (found.destination, found.created_at) == (theirs.destination, theirs.created_at)


# --- visits and analytics --------------------------------------------------------------------


def test_analytics_of_no_visits(store: LiveStore) -> None:
    link = store.create(WS, _new(1), T0)
    got = store.get(WS.id, link.id)
    assert got is not None and got.analytics.last_visited_at is None and not got.has_visits
    assert_link_valid(got)


def test_top_lists_keep_ten_sorted_by_clicks_then_label(store: LiveStore) -> None:
    link = store.create(WS, _new(1), T0)
    countries = [f"C{chr(65 + n)}" for n in range(12)]
    visits = [Visit(T0, country, f"r{n % 3}.example") for n, country in enumerate(countries)]
    visits += [Visit(T0, "CL"), Visit(T0, "CL"), Visit(T0, "CB")]
    store.record_visits(link.id, visits)
    got = store.get(WS.id, link.id)
    assert got is not None
    top = [(row.label, row.clicks) for row in got.analytics.top_countries]
    assert len(top) == TOP_LIMIT
    assert top[:2] == [("CL", 3), ("CB", 2)]
    assert [label for label, _ in top[2:]] == ["CA", "CC", "CD", "CE", "CF", "CG", "CH", "CI"]
    assert_link_valid(got)


visit_strategy = st.builds(
    Visit,
    at=st.integers(0, 5 * 86400).map(lambda s: T0 + timedelta(seconds=s)),
    country=st.sampled_from(["US", "DE", "IN", "JP", "FR"]),
    referrer=st.sampled_from(["direct", "t.co", "google.com", "a.example"]),
    device=st.sampled_from(["desktop", "mobile", "tablet"]),
    visitor=st.sampled_from(["v1", "v2", "v3", "anonymous"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(st.lists(visit_strategy, min_size=1, max_size=8), max_size=4))
def test_analytics_match_a_model_of_the_visits(batches: list[list[Visit]]) -> None:
    live = LiveStore.open(None)
    try:
        link = live.create(WS, _new(1), T0)
        decoy = live.create(OTHER, _new(2), T0)
        live.record_visits(decoy.id, [Visit(T0, "ZZ", "decoy", "tablet", "dv")])
        for batch in batches:
            assert live.record_visits(link.id, batch) == len(batch)
        visits = [visit for batch in batches for visit in batch]
        got = live.get(WS.id, link.id)
        assert got is not None
        a = got.analytics
        assert a.total_clicks == len(visits) == live.visit_count(link.id)
        assert a.unique_visitors == len({v.visitor for v in visits})
        assert a.last_visited_at == (max(v.at for v in visits) if visits else None)
        days = Counter(v.at.date().isoformat() for v in visits)
        assert [(row.label, row.clicks) for row in a.clicks_by_day] == sorted(days.items())
        for rows, field in ((a.top_countries, "country"), (a.top_referrers, "referrer")):
            counted = Counter(getattr(v, field) for v in visits)
            expected = sorted(counted.items(), key=lambda item: (-item[1], item[0]))[:TOP_LIMIT]
            assert [(row.label, row.clicks) for row in rows] == expected
        devices = Counter(v.device for v in visits)
        assert (a.devices.desktop, a.devices.mobile, a.devices.tablet) == (
            devices["desktop"],
            devices["mobile"],
            devices["tablet"],
        )
        listed = live.query(WS.id, LinkQuery()).items
        assert [(item.id, item.clicks) for item in listed] == [(link.id, len(visits))]
        assert_link_valid(got)
    finally:
        live.close()


# --- list queries: the same answers as the sandbox's in-memory reference ---------------------

# Few letters, in both cases and with casefold traps, so titles tie and needles match often.
_LETTERS = "aAbBßSsİ\u0131éÉz \x00-"  # \u0131: dotless i
link_spec = st.tuples(
    st.text(alphabet=_LETTERS, min_size=1, max_size=6),  # title
    st.text(alphabet="abSs/é.", max_size=4),  # destination path
    st.integers(0, 3),  # createdAt: few distinct seconds, many ties
    st.integers(0, 3),  # visits
    st.booleans(),  # in the workspace under test, or a decoy one
)
query_strategy = st.builds(
    LinkQuery,
    q=st.none() | st.text(alphabet=_LETTERS + "/.", min_size=1, max_size=3),
    has_visits=st.sampled_from([None, True, False]),
    limit=st.integers(1, 7),
    offset=st.integers(0, 12),
    sort_by=st.sampled_from(SORT_KEYS),
    sort_order=st.sampled_from(SORT_ORDERS),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(link_spec, max_size=14), queries=st.lists(query_strategy, max_size=8))
def test_query_agrees_with_the_sandbox_reference(
    specs: list[tuple[str, str, int, int, bool]], queries: list[LinkQuery]
) -> None:
    live = LiveStore.open(None)
    try:
        mine: list[str] = []
        for n, (title, path, second, visits, here) in enumerate(specs):
            new = NewLink(title, f"https://h{n % 3}.example/{path}")
            link = live.create(WS if here else OTHER, new, T0 + timedelta(seconds=second))
            live.record_visits(link.id, [Visit(T0 + timedelta(days=1))] * visits)
            if here:
                mine.append(link.id)
        stored = [live.get(WS.id, link_id) for link_id in mine]
        reference = SandboxStore([link for link in stored if isinstance(link, Link)])
        for query in [*queries, LinkQuery(limit=100)]:
            got = live.query(WS.id, query)
            want = reference.query(query)
            assert [link.id for link in got.items] == [link.id for link in want.items], query
            assert [link.clicks for link in got.items] == [link.clicks for link in want.items]
            assert (got.total, got.has_more) == (want.total, want.has_more), query
    finally:
        live.close()


@pytest.mark.parametrize("sort_by", SORT_KEYS)
@pytest.mark.parametrize("sort_order", SORT_ORDERS)
def test_walking_every_page_yields_each_link_once(
    store: LiveStore, sort_by: str, sort_order: str
) -> None:
    for n in range(53):
        link = store.create(WS, _new(n, title=["b", "B", "a", "ä"][n % 4]), T0 + timedelta(n % 5))
        store.record_visits(link.id, [Visit(T0 + timedelta(days=9))] * (n % 3))
    seen: list[str] = []
    for offset in range(0, 60, 7):
        page = store.query(
            WS.id,
            LinkQuery(limit=7, offset=offset, sort_by=sort_by, sort_order=sort_order),  # type: ignore[arg-type]
        )
        assert page.total == 53 and page.has_more is (offset + 7 < 53)
        seen += [link.id for link in page.items]
    assert len(seen) == len(set(seen)) == 53


def test_an_offset_past_the_end_is_an_empty_page(store: LiveStore) -> None:
    store.create(WS, _new(1), T0)
    for offset in (1, 10**12, 2**63 + 5):
        page = store.query(WS.id, LinkQuery(offset=offset))
        assert page.items == [] and page.total == 1 and not page.has_more
