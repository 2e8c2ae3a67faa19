"""List latency on a 100,000-link live workspace: `python benchmarks/bench_live_list.py`.

Not collected by pytest. It builds a live SQLite file (WAL, as `serve --db` makes it) holding one
workspace of N links (default 100,000) and a decoy workspace, with visits on about a third of the
links, then times:

1. `LiveStore.query` for every sortBy x sortOrder, with no filter, hasVisits=true/false, a common
   `q` and a rare `q`, at offsets 0, 10,000 and 50,000 (`--offsets`);
2. the HTTP list (`GET /api/api-applications/public/links`, in-process through Starlette's
   TestClient: parsing, auth, rate window, query, JSON and QR codes) for the same grid;
3. `LiveStore.create` (and an HTTP create) with the big workspace in place, since the quota check
   counts the workspace's links on every create;
4. the change the report proposes (`PROPOSED_INDEXES` and `proposed_query`), on a copy of the
   same file, each answer first checked equal to `LiveStore.query`'s (`--no-proposals` skips it).

It prints a table (p50/p99 in ms) and the plans (EXPLAIN QUERY PLAN), and writes everything as JSON.

The data is inserted in bulk with `executemany` on the store's own connection, in the rows
`LiveStore.create` writes (the same ids and casefolded keys; generated-looking slugs with a
unique suffix); calling `create` a hundred thousand times costs a commit and a workspace count
each. Titles and destinations come from the sandbox's deterministic generator (ties, non-ASCII
text); createdAt rises with insertion order and updatedAt equals it, as for real live links.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from machine import describe

from emulator import sandbox
from emulator.live_store import LiveStore
from emulator.models import NewLink, Workspace
from emulator.store import SORT_KEYS, SORT_ORDERS, LinkQuery

WORKSPACE = "ws_bench"
DECOY = "ws_bench_decoy"
LINKS_PATH = "/api/api-applications/public/links"
FILTERS: dict[str, dict[str, Any]] = {
    "none": {},
    "hasVisits=true": {"has_visits": True},
    "hasVisits=false": {"has_visits": False},
    "q=launch": {"q": "launch"},  # common: a few percent of titles, slugs and destinations
    "q=no-match": {"q": "no such text"},  # matches nothing: a full scan for nothing
}
_WIRE = {"has_visits": "hasVisits", "q": "q"}
ORDER_COLUMN = {
    "createdAt": "created_at",
    "updatedAt": "updated_at",
    "title": "title_key",
    "clicks": "clicks",
}  # as LiveStore.query
PAGE_COLUMNS = "id, title, slug, destination, created_at, updated_at, clicks"  # as LiveStore.query
SEARCH = "(instr(title_key, ?) > 0 OR instr(slug, ?) > 0 OR instr(destination_key, ?) > 0)"
# The index change proposed in the report: `clicks` in every sort index, so a hasVisits filter is
# decided from the index and the rows an OFFSET skips are never read from the table.
PROPOSED_INDEXES = """
DROP INDEX links_by_created;
CREATE INDEX links_by_created ON links (workspace_id, created_at, id, clicks);
DROP INDEX links_by_updated;
CREATE INDEX links_by_updated ON links (workspace_id, updated_at, id, clicks);
DROP INDEX links_by_title;
CREATE INDEX links_by_title ON links (workspace_id, title_key, id, clicks);
ANALYZE;
"""


def build(path: str, size: int, decoy: int) -> dict[str, Any]:
    """A store file with `size` links in WORKSPACE and `decoy` in DECOY; returns build timings."""
    started = time.perf_counter()
    links = sandbox.generate(size + decoy, seed=8)
    # Live links are stamped with the clock when created and never edited: createdAt rises with
    # the insertion order and updatedAt equals it. (Sample dates, sorted, keep their ties.)
    instants = sorted(int(link.created_at.timestamp()) for link in links)
    generated = time.perf_counter()
    store = LiveStore.open(path)
    db = store._db
    rng = random.Random(8)
    rows = []
    visits = []
    names = store._names  # the store's own secret: the ids and slugs `create` would give
    for seq, link in enumerate(links, start=1):
        link_id = names.link_id(seq)
        slug = f"{names.slug(seq)}-{seq:x}"
        clicks = rng.choice((1, 2, 3, 5, 8, 13, 40)) if rng.random() < 0.33 else 0
        created = instants[seq - 1]
        rows.append(
            (
                seq,
                link_id,
                WORKSPACE if seq <= size else DECOY,
                link.title,
                slug,
                link.destination,
                created,
                created,
                link.title.casefold(),
                link.destination.casefold(),
                clicks,
            )
        )
        for n in range(clicks):
            at = created + rng.randrange(86400 * 30)
            visits.append((link_id, at, "US", "direct", ("desktop", "mobile")[n % 2], f"v{n}"))
    db.execute("BEGIN IMMEDIATE")
    db.executemany(
        "INSERT INTO links (seq, id, workspace_id, title, slug, destination, created_at,"
        " updated_at, title_key, destination_key, clicks) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    )
    db.executemany(
        "INSERT INTO visits (link_id, at, country, referrer, device, visitor)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        visits,
    )
    db.execute("COMMIT")
    db.execute("ANALYZE")
    store.close()
    done = time.perf_counter()
    return {
        "generate_s": round(generated - started, 2),
        "insert_s": round(done - generated, 2),
        "links": size + decoy,
        "visits": len(visits),
        "file_mb": round(os.path.getsize(path) / 1e6, 1),
    }


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def measure(run: Callable[[], object], repeat: int, budget_s: float) -> dict[str, float]:
    run()  # warm: page cache, statement cache, QR cache
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < repeat and (len(times) < 5 or time.perf_counter() < deadline):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return {
        "p50_ms": round(statistics.median(times), 3),
        "p99_ms": round(percentile(times, 0.99), 3),
        "max_ms": round(max(times), 3),
        "n": len(times),
    }


def plans(store: LiveStore, deep: int) -> dict[str, list[str]]:
    """EXPLAIN QUERY PLAN of the page query LiveStore.query runs, for each sort and filter."""
    columns = ORDER_COLUMN
    result = {}
    for sort_by in SORT_KEYS:
        for name, extra in FILTERS.items():
            where = "workspace_id = ?"
            args: list[Any] = [WORKSPACE]
            if "has_visits" in extra:
                where += " AND clicks > 0" if extra["has_visits"] else " AND clicks = 0"
            if "q" in extra:
                where += f" AND {SEARCH}"
                args += [extra["q"]] * 3
            sql = (
                f"SELECT {PAGE_COLUMNS} FROM links WHERE {where}"
                f" ORDER BY {columns[sort_by]} DESC, id DESC LIMIT 25 OFFSET ?"
            )
            rows = store._db.execute(f"EXPLAIN QUERY PLAN {sql}", [*args, deep]).fetchall()
            count = store._db.execute(
                f"EXPLAIN QUERY PLAN SELECT count(*) FROM links WHERE {where}", args
            ).fetchall()
            result[f"{sort_by} / {name}"] = [r[-1] for r in rows] + [
                "count: " + r[-1] for r in count
            ]
    return result


def bench_store(
    store: LiveStore, offsets: list[int], repeat: int, budget: float
) -> list[dict[str, Any]]:
    results = []
    for sort_by in SORT_KEYS:
        for order in SORT_ORDERS:
            for name, extra in FILTERS.items():
                for offset in offsets:
                    query = LinkQuery(sort_by=sort_by, sort_order=order, offset=offset, **extra)
                    page = store.query(WORKSPACE, query)
                    stats = measure(lambda q=query: store.query(WORKSPACE, q), repeat, budget)
                    results.append(
                        {
                            "layer": "store",
                            "sortBy": sort_by,
                            "sortOrder": order,
                            "filter": name,
                            "offset": offset,
                            "total": page.total,
                            "items": len(page.items),
                            **stats,
                        }
                    )
                    print_row(results[-1])
    return results


def bench_http(path: str, offsets: list[int], repeat: int, budget: float) -> list[dict[str, Any]]:
    from starlette.testclient import TestClient

    from emulator.app import create_app
    from emulator.settings import Settings

    results = []
    # base_url: a local name, which the control API answers for (TestClient's own is not one)
    with TestClient(create_app(Settings(db_path=path)), base_url="http://localhost") as client:
        app = {
            "clientId": "bench_app",
            "clientSecret": "bench_secret",
            "environment": "live",
            "workspaceId": WORKSPACE,
            "rateLimitPerMinute": 10**9,
            "linkQuota": 10**9,
        }
        assert client.post("/_emulator/applications", json=app).status_code == 201
        token = client.post(
            "/api/api-applications/token",
            json={"clientId": "bench_app", "clientSecret": "bench_secret"},
        ).json()["accessToken"]
        headers = {"Authorization": f"Bearer {token}"}
        for sort_by in SORT_KEYS:
            for order in SORT_ORDERS:
                for name, extra in FILTERS.items():
                    for offset in offsets:
                        params = {"sortBy": sort_by, "sortOrder": order, "offset": str(offset)}
                        for key, value in extra.items():
                            params[_WIRE[key]] = str(value).lower() if key != "q" else value

                        def call(p: dict[str, str] = params) -> None:
                            response = client.get(LINKS_PATH, params=p, headers=headers)
                            assert response.status_code == 200, response.text

                        stats = measure(call, repeat, budget)
                        results.append(
                            {
                                "layer": "http",
                                "sortBy": sort_by,
                                "sortOrder": order,
                                "filter": name,
                                "offset": offset,
                                **stats,
                            }
                        )
                        print_row(results[-1])
        # A create with the big workspace in place (HTTP, includes the QR of the new link).
        numbers = iter(range(10**9))

        def create() -> None:
            n = next(numbers)
            body = {"title": f"Bench {n}", "destination": f"https://e.com/{n}"}
            assert client.post(LINKS_PATH, json=body, headers=headers).status_code == 201

        results.append({"layer": "http", "operation": "create", **measure(create, 50, budget)})
        print(f"http create: {results[-1]}")
    return results


def bench_create(path: str, size: int) -> list[dict[str, Any]]:
    """LiveStore.create with `size` links already in the workspace vs. an empty workspace."""
    store = LiveStore.open(path)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    big = Workspace(WORKSPACE, "personal", link_quota=10**9)
    empty = replace(big, id="ws_bench_empty")
    numbers = iter(range(10**9))
    out = []
    try:
        for label, workspace in ((f"{size} links", big), ("empty", empty)):
            stats = measure(
                lambda w=workspace: store.create(
                    w, NewLink("Bench", f"https://e/{next(numbers)}"), now
                ),
                50,
                5.0,
            )
            out.append({"layer": "store", "operation": "create", "workspace": label, **stats})
            print(f"store create ({label}): {stats}")
    finally:
        store.close()
    return out


def proposed_query(store: LiveStore, workspace_id: str, query: LinkQuery) -> tuple[list[str], int]:
    """LiveStore.query with the change the report proposes (same answers, checked below).

    - a search counts its matches in rowid order (`NOT INDEXED`: a sequential scan) instead of
      following a workspace index to random table pages;
    - no page query when the offset is past the end (a rare `q`, or a deep offset);
    - a search walks the sort index only while the page is near its start (offset + limit under
      an eighth of the matches); deeper, it scans and sorts the matches.
    """
    where = ["workspace_id = ?"]
    args: list[Any] = [workspace_id]
    if query.has_visits is not None:
        where.append("clicks > 0" if query.has_visits else "clicks = 0")
    if query.q:
        where.append(SEARCH)
        args += [query.q.casefold()] * 3
    condition = " AND ".join(where)
    direction = "ASC" if query.sort_order == "asc" else "DESC"
    column = ORDER_COLUMN[query.sort_by]
    scan = "links NOT INDEXED" if query.q else "links"
    db = store._db
    total = int(db.execute(f"SELECT count(*) FROM {scan} WHERE {condition}", args).fetchone()[0])
    rows: list[Any] = []
    if query.offset < total:
        walk = not query.q or (query.offset + query.limit) * 8 < total
        rows = db.execute(
            f"SELECT {PAGE_COLUMNS} FROM {'links' if walk else scan} WHERE {condition}"
            f" ORDER BY {column} {direction}, id {direction} LIMIT ? OFFSET ?",
            [*args, query.limit, query.offset],
        ).fetchall()
    return [row[0] for row in rows], total  # ids and total: all the check below compares


def bench_proposals(
    path: str, scratch: str, offsets: list[int], repeat: int, budget: float
) -> list[Any]:
    """The change proposed in the report, on a copy of the same file: PROPOSED_INDEXES applied,
    pages read by `proposed_query`. Every cell's answer is first checked against LiveStore.query
    on the original file (same ids in the same order, same total)."""
    copy = str(Path(scratch) / "proposed.db")
    source, target = sqlite3.connect(path), sqlite3.connect(copy)
    try:
        source.backup(target)
        target.executescript(PROPOSED_INDEXES)
    finally:
        source.close()
        target.close()
    results: list[Any] = []
    today, store = LiveStore.open(path), LiveStore.open(copy)
    try:
        for sort_by in SORT_KEYS:
            for order in SORT_ORDERS:
                for name, extra in FILTERS.items():
                    for offset in offsets:
                        query = LinkQuery(sort_by=sort_by, sort_order=order, offset=offset, **extra)
                        want = today.query(WORKSPACE, query)
                        ids, total = proposed_query(store, WORKSPACE, query)
                        assert ids == [link.id for link in want.items], query
                        assert total == want.total, query
                        stats = measure(
                            lambda q=query: proposed_query(store, WORKSPACE, q), repeat, budget
                        )
                        row = {
                            "layer": "proposed",
                            "sortBy": sort_by,
                            "sortOrder": order,
                            "filter": name,
                            "offset": offset,
                            "total": total,
                            **stats,
                        }
                        results.append(row)
                        print_row(row)
    finally:
        today.close()
        store.close()
    return results


def print_row(row: dict[str, Any]) -> None:
    print(
        f"{row['layer']:<8} {row['sortBy']:<9} {row['sortOrder']:<4} {row['filter']:<15}"
        f" {row['offset']:>6} {row['p50_ms']:>9.2f} {row['p99_ms']:>9.2f} {row['n']:>4}"
        + (f" {row.get('total', ''):>7}" if "total" in row else ""),
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000, help="links in the workspace")
    parser.add_argument("--decoy", type=int, default=20_000, help="links in another workspace")
    parser.add_argument(
        "--offsets",
        default="0,10000,50000",
        help="comma-separated offsets to time (the largest is the plans' offset)",
    )
    parser.add_argument("--repeat", type=int, default=60, help="samples per cell (at most)")
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per cell (soft)")
    parser.add_argument("--db", help="reuse or build this file (default: a temporary one)")
    parser.add_argument("--json", default="bench_live_list.json", help="where to write results")
    parser.add_argument("--no-http", action="store_true", help="time LiveStore.query only")
    parser.add_argument(
        "--no-proposals", action="store_true", help="skip timing the changes the report proposes"
    )
    args = parser.parse_args()
    offsets = sorted({int(text) for text in args.offsets.split(",")})

    info = describe()
    print(f"machine: {info}")
    with tempfile.TemporaryDirectory(prefix="bench-live-") as scratch:
        path = args.db or str(Path(scratch) / "bench.db")
        built: dict[str, Any] = {"reused": True}
        if not (args.db and Path(path).exists()):
            built = build(path, args.size, args.decoy)
        print(f"data: {built}")
        store = LiveStore.open(path)
        try:
            plan = plans(store, max(offsets))
            for key, lines in plan.items():
                print(f"plan {key}: {' | '.join(lines)}")
            print(
                f"\n{'layer':<8} {'sortBy':<9} {'ord':<4} {'filter':<15} {'offset':>6}"
                f" {'p50 ms':>9} {'p99 ms':>9} {'n':>4} {'total':>7}"
            )
            rows = bench_store(store, offsets, args.repeat, args.budget)
        finally:
            store.close()
        if not args.no_http:
            rows += bench_http(path, offsets, args.repeat, args.budget)
        rows += bench_create(path, args.size)
        if not args.no_proposals:
            rows += bench_proposals(path, scratch, offsets, args.repeat, args.budget)
        report = {
            "machine": info,
            "data": built,
            "args": vars(args),
            "results": rows,
            "plans": plan,
        }
        Path(args.json).write_text(json.dumps(report, indent=1, ensure_ascii=False))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
