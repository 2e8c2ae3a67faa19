"""Live links in SQLite (standard library), scoped by workspace, durable when given a file."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from emulator import errors
from emulator.link_names import LinkNames, random_secret, seed_secret
from emulator.models import Analytics, Count, Devices, Link, NewLink, Workspace
from emulator.store import LinkQuery, Page

TOP_LIMIT = 10
DEVICES = ("desktop", "mobile", "tablet")

# Each step upgrades the schema by one version; a file at an older version is walked forward.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE links (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        workspace_id TEXT NOT NULL,
        title TEXT NOT NULL,
        slug TEXT NOT NULL UNIQUE,
        destination TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    """,
    """
    ALTER TABLE links ADD COLUMN title_key TEXT NOT NULL DEFAULT '';
    ALTER TABLE links ADD COLUMN destination_key TEXT NOT NULL DEFAULT '';
    ALTER TABLE links ADD COLUMN clicks INTEGER NOT NULL DEFAULT 0;
    UPDATE links SET title_key = lower(title), destination_key = lower(destination);
    CREATE TABLE visits (
        link_id TEXT NOT NULL,
        at INTEGER NOT NULL,
        country TEXT NOT NULL,
        referrer TEXT NOT NULL,
        device TEXT NOT NULL,
        visitor TEXT NOT NULL
    );
    CREATE INDEX visits_by_link ON visits (link_id, at);
    CREATE INDEX links_by_created ON links (workspace_id, created_at, id);
    CREATE INDEX links_by_updated ON links (workspace_id, updated_at, id);
    CREATE INDEX links_by_title ON links (workspace_id, title_key, id);
    CREATE INDEX links_by_clicks ON links (workspace_id, clicks, id);
    """,
    # `clicks` in every sort index: a hasVisits filter is decided from the index, and the rows an
    # OFFSET skips are never read from the table.
    """
    DROP INDEX links_by_created;
    CREATE INDEX links_by_created ON links (workspace_id, created_at, id, clicks);
    DROP INDEX links_by_updated;
    CREATE INDEX links_by_updated ON links (workspace_id, updated_at, id, clicks);
    DROP INDEX links_by_title;
    CREATE INDEX links_by_title ON links (workspace_id, title_key, id, clicks);
    """,
    # The secret live ids and slugs derive from (link_names.py), one row; and a covering index
    # for `q`, so that a search reads its own workspace's entries and no table row.
    """
    CREATE TABLE store_secret (
        only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
        secret BLOB NOT NULL
    );
    CREATE INDEX links_by_text ON links (workspace_id, title_key, slug, destination_key, clicks);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_ORDER_COLUMN = {
    "createdAt": "created_at",
    "updatedAt": "updated_at",
    "title": "title_key",
    "clicks": "clicks",
}
_LINK_COLUMNS = "id, title, slug, destination, created_at, updated_at, clicks"


class ShortLink(NamedTuple):
    """What resolving a live short link needs."""

    link_id: str
    destination: str
    created_at: datetime


class StoreError(RuntimeError):
    """The database cannot be opened, read or upgraded; the message says which file and why."""


@dataclass(frozen=True)
class Visit:
    at: datetime
    country: str = "US"
    referrer: str = "direct"
    device: str = "desktop"
    visitor: str = "anonymous"


@dataclass(frozen=True)
class VisitCount:
    """A link's visits of one day, country, referrer and device: how many, and when the last of
    them came. `visitor` names one who came more than once; without it each is a visitor of
    their own."""

    at: datetime
    count: int
    country: str
    referrer: str
    device: str
    visitor: str | None = None


@dataclass(frozen=True)
class StoredLink:
    """A live link as stored, with its visits counted (for a scenario's export)."""

    workspace_id: str
    link: Link
    visits: tuple[VisitCount, ...]


# Attempts at a free id or slug: a clash is already about one in a trillion.
_NAME_ATTEMPTS = 1000


def _never(slug: str) -> bool:
    return False


class LiveStore:
    def __init__(self, connection: sqlite3.Connection, label: str) -> None:
        self._db = connection
        self._label = label
        self._lock = threading.Lock()
        self._names = LinkNames(b"")

    @classmethod
    def open(cls, path: str | None, *, seed: int | None = None) -> LiveStore:
        """The store in the file `path` (created or upgraded), or in memory. Ids and slugs derive
        from `seed` when given, else from the store's own random secret (kept in the file)."""
        label = path or ":memory:"
        try:
            connection = sqlite3.connect(label, check_same_thread=False, isolation_level=None)
            if path is not None:
                # A damaged page would otherwise pass the start and fail some later list.
                verdict = connection.execute("PRAGMA quick_check").fetchone()[0]
                if verdict != "ok":
                    connection.close()
                    # quick_check's rows hold several lines ("*** in database main ***\n…").
                    detail = "; ".join(
                        line for line in verdict.splitlines() if not line.startswith("***")
                    )
                    raise StoreError(f"the live database {label} is damaged: {detail}")
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=FULL")
            store = cls(connection, label)
            store._migrate()
            secret = seed_secret(seed) if seed is not None else store._stored_secret()
            store._names = LinkNames(secret)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot use the live database {label}: {exc}") from exc
        return store

    def _migrate(self) -> None:
        db = self._db
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT max(version) FROM schema_version").fetchone()
        current = row[0] or 0
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"the live database {self._label} has schema version {current}, newer than "
                f"this emulator's {SCHEMA_VERSION}"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            db.executescript(
                "BEGIN;"
                + MIGRATIONS[version - 1]
                + f"INSERT INTO schema_version (version) VALUES ({version}); COMMIT;"
            )
        if current < 2 <= SCHEMA_VERSION:
            self._refold_keys()

    def _stored_secret(self) -> bytes:
        self._db.execute(
            "INSERT OR IGNORE INTO store_secret (only_row, secret) VALUES (1, ?)",
            (random_secret(),),
        )
        return bytes(self._db.execute("SELECT secret FROM store_secret").fetchone()[0])

    def _refold_keys(self) -> None:
        """SQL's lower() is ASCII-only; rows from an older file get Python's casefold()."""
        rows = self._db.execute("SELECT seq, title, destination FROM links").fetchall()
        with self._transaction():
            self._db.executemany(
                "UPDATE links SET title_key = ?, destination_key = ? WHERE seq = ?",
                [(title.casefold(), dest.casefold(), seq) for seq, title, dest in rows],
            )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def copy_in_memory(self) -> LiveStore:
        """A copy of every link and visit in a new in-memory database (SQLite's backup)."""
        connection = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        with self._lock:
            self._db.backup(connection)
        copy = LiveStore(connection, f"copy of {self._label}")
        copy._names = self._names
        return copy

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def clear(self) -> None:
        with self.replacing():
            pass

    @contextmanager
    def replacing(self) -> Iterator[Batch]:
        """Empty the store and fill it anew (through the batch) in one transaction: a reader
        sees the old links or the new ones, never a mix, and the old ones stay when the block
        raises."""
        with self._lock, self._transaction():
            self._db.execute("DELETE FROM visits")
            self._db.execute("DELETE FROM links")
            self._db.execute("DELETE FROM sqlite_sequence WHERE name = 'links'")
            yield Batch(self)

    def count(self, workspace_id: str) -> int:
        with self._lock:
            return self._count(workspace_id)

    def total(self) -> int:
        """Live links in every workspace."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM links").fetchone()[0])

    def _count(self, workspace_id: str) -> int:
        row = self._db.execute(
            "SELECT count(*) FROM links WHERE workspace_id = ?", (workspace_id,)
        ).fetchone()
        return int(row[0])

    def create(
        self,
        workspace: Workspace,
        new: NewLink,
        now: datetime,
        reserved: Callable[[str], bool] = _never,
    ) -> Link:
        """Store a link, committed before this returns; its slug unique across every workspace
        and not one that `reserved` says is taken elsewhere (the sample set's)."""
        with self._lock, self._transaction():
            if self._count(workspace.id) >= workspace.link_quota:
                raise errors.link_quota_exceeded(workspace.link_quota)
            return self._insert(workspace.id, new, now, reserved)

    def _insert(
        self,
        workspace_id: str,
        new: NewLink,
        now: datetime,
        reserved: Callable[[str], bool],
        link_id: str | None = None,
        reserved_ids: Callable[[str], bool] = _never,
    ) -> Link:
        """Insert a link (inside a transaction, holding the lock): its id as given or derived
        (and not one of `reserved_ids`), its slug checked as `create` says."""
        if new.slug is not None and (reserved(new.slug) or self._slug_exists(new.slug)):
            raise errors.slug_taken(new.slug)
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'links'")
        last = row.fetchone()
        seq = (last[0] if last else 0) + 1
        link_id = link_id or self._free_name(
            self._names.link_id, seq, lambda i: reserved_ids(i) or self._id_exists(i)
        )
        slug = new.slug or self._free_name(
            self._names.slug, seq, lambda s: reserved(s) or self._slug_exists(s)
        )
        stamp = int(now.timestamp())
        self._db.execute(
            "INSERT INTO links (seq, id, workspace_id, title, slug, destination, created_at,"
            " updated_at, title_key, destination_key, clicks)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
            (
                seq,
                link_id,
                workspace_id,
                new.title,
                slug,
                new.destination,
                stamp,
                stamp,
                new.title.casefold(),
                new.destination.casefold(),
            ),
        )
        moment = _from_epoch(stamp)
        return Link(link_id, new.title, slug, new.destination, moment, moment, Analytics())

    def _slug_exists(self, slug: str) -> bool:
        return (
            self._db.execute("SELECT 1 FROM links WHERE slug = ?", (slug,)).fetchone() is not None
        )

    def _id_exists(self, link_id: str) -> bool:
        return (
            self._db.execute("SELECT 1 FROM links WHERE id = ?", (link_id,)).fetchone() is not None
        )

    @staticmethod
    def _free_name(name: Callable[[int, int], str], seq: int, taken: Callable[[str], bool]) -> str:
        for attempt in range(_NAME_ATTEMPTS):
            candidate = name(seq, attempt)
            if not taken(candidate):
                return candidate
        raise RuntimeError(f"no free name for link {seq} after {_NAME_ATTEMPTS} attempts")

    def query(self, workspace_id: str, query: LinkQuery) -> Page:
        where = ["workspace_id = ?"]
        args: list[object] = [workspace_id]
        if query.has_visits is not None:
            where.append("clicks > 0" if query.has_visits else "clicks = 0")
        if query.q:
            needle = query.q.casefold()
            where.append(
                "(instr(title_key, ?) > 0 OR instr(slug, ?) > 0 OR instr(destination_key, ?) > 0)"
            )
            args += [needle, needle, needle]
        condition = " AND ".join(where)
        direction = "ASC" if query.sort_order == "asc" else "DESC"
        column = _ORDER_COLUMN[query.sort_by]
        with self._lock:
            # A search reads every entry of the workspace anyway: those of the covering text
            # index, in a row, and no table row (nor any other workspace's).
            scan = "links INDEXED BY links_by_text" if query.q else "links"
            total = int(
                self._db.execute(f"SELECT count(*) FROM {scan} WHERE {condition}", args).fetchone()[
                    0
                ]
            )
            rows: list[tuple[object, ...]] = []
            if query.offset < total:
                # Walk the sort index while the page lies near its start; deeper into a search,
                # scan the workspace and sort the matches.
                walk = not query.q or (query.offset + query.limit) * 8 < total
                rows = self._db.execute(
                    f"SELECT {_LINK_COLUMNS} FROM {'links' if walk else scan} WHERE {condition}"
                    f" ORDER BY {column} {direction}, id {direction} LIMIT ? OFFSET ?",
                    [*args, query.limit, query.offset],
                ).fetchall()
        return Page([_summary(row) for row in rows], total, query.limit, query.offset)

    def get(self, workspace_id: str, link_id: str) -> Link | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_LINK_COLUMNS} FROM links WHERE id = ? AND workspace_id = ?",
                (link_id, workspace_id),
            ).fetchone()
            if row is None:
                return None
            return _summary(row, self._analytics(link_id))

    def find_slug(self, slug: str) -> ShortLink | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, destination, created_at FROM links WHERE slug = ?", (slug,)
            ).fetchone()
        return ShortLink(row[0], row[1], _from_epoch(row[2])) if row else None

    def visit_count(self, link_id: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM visits WHERE link_id = ?", (link_id,))
            return int(row.fetchone()[0])

    def record_visits(self, link_id: str, visits: Iterable[Visit]) -> int:
        with self._lock, self._transaction():
            return self._record_visits(link_id, visits)

    def _record_visits(self, link_id: str, visits: Iterable[Visit]) -> int:
        rows = [
            (link_id, int(v.at.timestamp()), v.country, v.referrer, v.device, v.visitor)
            for v in visits
        ]
        self._db.executemany(
            "INSERT INTO visits (link_id, at, country, referrer, device, visitor)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        self._db.execute("UPDATE links SET clicks = clicks + ? WHERE id = ?", (len(rows), link_id))
        return len(rows)

    def stored_links(self) -> list[StoredLink]:
        """Every live link in the order they were made, with its visits counted by day,
        country, referrer and device. A visitor who came more than once keeps a name of their
        own (`repeat-1`, `repeat-2`… in each link), so that `uniqueVisitors` can be rebuilt;
        `at` is the last visit of each count, so that `lastVisitedAt` can."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, workspace_id, title, slug, destination, created_at FROM links"
                " ORDER BY seq"
            ).fetchall()
            counted = self._db.execute(
                "WITH repeat AS (SELECT link_id, visitor FROM visits"
                "  GROUP BY link_id, visitor HAVING count(*) > 1)"
                " SELECT v.link_id, date(v.at, 'unixepoch') AS day, v.country, v.referrer,"
                "  v.device, r.visitor AS who, count(*), max(v.at)"
                " FROM visits AS v LEFT JOIN repeat AS r"
                "  ON r.link_id = v.link_id AND r.visitor = v.visitor"
                " GROUP BY v.link_id, day, v.country, v.referrer, v.device, who"
                " ORDER BY v.link_id, day, max(v.at), v.country, v.referrer, v.device, who"
            ).fetchall()
        visits: dict[str, list[VisitCount]] = {}
        names: dict[str, dict[str, str]] = {}  # by link: each repeat visitor's new name
        for link_id, _day, country, referrer, device, who, count, last in counted:
            visitor = None
            if who is not None:
                named = names.setdefault(link_id, {})
                visitor = named.setdefault(who, f"repeat-{len(named) + 1}")
            visits.setdefault(link_id, []).append(
                VisitCount(_from_epoch(last), count, country, referrer, device, visitor)
            )
        return [
            StoredLink(
                str(workspace_id),
                Link(
                    str(link_id),
                    str(title),
                    str(slug),
                    str(destination),
                    _from_epoch(created),
                    _from_epoch(created),
                ),
                tuple(visits.get(link_id, ())),
            )
            for link_id, workspace_id, title, slug, destination, created in rows
        ]

    def _analytics(self, link_id: str) -> Analytics:
        db = self._db
        total, unique, last = db.execute(
            "SELECT count(*), count(DISTINCT visitor), max(at) FROM visits WHERE link_id = ?",
            (link_id,),
        ).fetchone()
        if not total:
            return Analytics()
        by_day = db.execute(
            "SELECT date(at, 'unixepoch') AS day, count(*) FROM visits WHERE link_id = ?"
            " GROUP BY day ORDER BY day",
            (link_id,),
        ).fetchall()
        devices = dict(
            db.execute(
                "SELECT device, count(*) FROM visits WHERE link_id = ? GROUP BY device",
                (link_id,),
            ).fetchall()
        )
        return Analytics(
            total_clicks=total,
            unique_visitors=unique,
            last_visited_at=_from_epoch(last),
            clicks_by_day=_counts(by_day),
            top_countries=self._top(link_id, "country"),
            top_referrers=self._top(link_id, "referrer"),
            devices=Devices(**{name: devices.get(name, 0) for name in DEVICES}),
        )

    def _top(self, link_id: str, column: str) -> tuple[Count, ...]:
        rows = self._db.execute(
            f"SELECT {column}, count(*) AS n FROM visits WHERE link_id = ?"
            f" GROUP BY {column} ORDER BY n DESC, {column} ASC LIMIT {TOP_LIMIT}",
            (link_id,),
        ).fetchall()
        return _counts(rows)


class Batch:
    """Links and visits added inside `LiveStore.replacing()`."""

    def __init__(self, store: LiveStore) -> None:
        self._store = store

    def add_link(
        self,
        workspace_id: str,
        new: NewLink,
        created_at: datetime,
        *,
        link_id: str | None = None,
        reserved: Callable[[str], bool] = _never,
        reserved_ids: Callable[[str], bool] = _never,
    ) -> Link:
        """Store a link, over any quota (a scenario says what is there, the quota what may be
        added); its id and slug as given, or derived as `create` derives them."""
        return self._store._insert(workspace_id, new, created_at, reserved, link_id, reserved_ids)

    def add_visits(self, link_id: str, visits: Iterable[Visit]) -> int:
        return self._store._record_visits(link_id, visits)

    def visit_count(self, link_id: str) -> int:
        row = self._store._db.execute("SELECT clicks FROM links WHERE id = ?", (link_id,))
        return int(row.fetchone()[0])


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK when the block raises."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def _from_epoch(stamp: int) -> datetime:
    return datetime.fromtimestamp(stamp, UTC)


def _counts(rows: Iterable[tuple[str, int]]) -> tuple[Count, ...]:
    return tuple(Count(label, clicks) for label, clicks in rows)


def _summary(row: tuple[object, ...], analytics: Analytics | None = None) -> Link:
    link_id, title, slug, destination, created, updated, clicks = row
    return Link(
        id=str(link_id),
        title=str(title),
        slug=str(slug),
        destination=str(destination),
        created_at=_from_epoch(int(created)),  # type: ignore[call-overload]
        updated_at=_from_epoch(int(updated)),  # type: ignore[call-overload]
        analytics=analytics or Analytics(total_clicks=int(clicks)),  # type: ignore[call-overload]
    )
