"""The sandbox at scale: `python benchmarks/bench_scale.py [--sizes 1000,...] [--out FILE]`.

Not collected by pytest. For each size (default 1,000; 10,000; 100,000; 1,000,000) a fresh
subprocess builds `create_app(Settings(sandbox_size=n))`, so each size's start-up is cold and its
peak memory its own, and measures in process, on `SandboxStore.query` (no HTTP):

- build: the whole `create_app`, and within it `sandbox.generate` and `SandboxStore(...)`;
- first use: what the store builds lazily, each sort key's orders on its first query, the text
  columns and an index on the first `q`, another index on the first `q` with another sortBy,
  and the peak RSS (VmHWM) once all of it is built;
- page p50: every sortBy x sortOrder x hasVisits (none, true, false) at offsets 0, the middle
  and the last page (limit 25); the table shows each sort key's worst p50;
- q p50: a rare needle (one link's slug), a common one ("a"), one matching nothing, a
  non-ASCII one ("東京") and one that casefolds to another length ("ß" is "ss"), each without
  and with hasVisits=true, at offset 0 and in the middle of the matches;
- warm page: `RenderedLinks.page(store.query(...))` once that page's QR codes are rendered
  (the list response's body, without the HTTP layer).

It prints a table with one column per size and the growth from the smallest to the largest, and
writes every figure (each combination's p50, the machine, the load) as JSON with --out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from machine import describe, format_load

SIZES = (1_000, 10_000, 100_000, 1_000_000)
LIMIT = 25
PAGE_REPS = 31
Q_REPS = 11
FILTERS: dict[str, bool | None] = {"all": None, "hasVisits=true": True, "hasVisits=false": False}
TARGETS = {"page_ms": 2.0, "q_ms": 100.0, "peak_mb": 1536.0, "create_app_s": 10.0}


def peak_mb() -> float:
    """Peak resident memory of this process so far (VmHWM), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def p50_ms(call: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


# --- one size, in a child process ---------------------------------------------------------------


def measure(n: int) -> dict[str, Any]:
    from emulator import sandbox, store
    from emulator.app import create_app
    from emulator.serialize import RenderedLinks
    from emulator.settings import Settings
    from emulator.store import SORT_KEYS, SORT_ORDERS, LinkQuery

    # Time the two parts of the build from inside create_app, without building twice.
    parts: dict[str, float] = {}

    def timing(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                parts[name] = parts.get(name, 0.0) + time.perf_counter() - started

        return wrapper

    real_generate, real_init = sandbox.generate, store.SandboxStore.__init__
    sandbox.generate = timing("generate_s", real_generate)  # type: ignore[assignment]
    store.SandboxStore.__init__ = timing("store_s", real_init)  # type: ignore[method-assign]
    try:
        cpu, started = time.process_time(), time.perf_counter()
        app = create_app(Settings(sandbox_size=n))
        create_app_s, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        sandbox.generate = real_generate  # type: ignore[assignment]
        store.SandboxStore.__init__ = real_init  # type: ignore[method-assign]
    sandboxed = app.state.emulator.sandbox
    result: dict[str, Any] = {
        "n": n,
        "create_app_s": create_app_s,
        "create_app_cpu_s": cpu,
        **parts,
        "peak_mb_after_create_app": peak_mb(),
    }

    # First use: the lazily built orders and text index.
    first_use = {
        key: timed(lambda key=key: sandboxed.query(LinkQuery(sort_by=key))) for key in SORT_KEYS
    }
    first_use["q (text index)"] = timed(lambda: sandboxed.query(LinkQuery(q="a")))
    first_use["q, another sortBy"] = timed(
        lambda: sandboxed.query(LinkQuery(q="a", sort_by="title"))
    )
    result["first_use_s"] = first_use

    pages: dict[str, float] = {}
    for key in SORT_KEYS:
        for order in SORT_ORDERS:
            for label, has_visits in FILTERS.items():
                total = sandboxed.query(LinkQuery(has_visits=has_visits, limit=1)).total
                for where, offset in {
                    "0": 0,
                    "middle": total // 2,
                    "last": max(total - LIMIT, 0),
                }.items():
                    query = LinkQuery(
                        has_visits=has_visits,
                        limit=LIMIT,
                        offset=offset,
                        sort_by=key,
                        sort_order=order,
                    )
                    name = f"{key} {order} {label} @{where}"
                    pages[name] = p50_ms(lambda query=query: sandboxed.query(query), PAGE_REPS)
    result["page_p50_ms"] = pages

    rare = sandboxed.query(LinkQuery(limit=1, offset=n // 2)).items[0].slug
    needles = {"rare": rare, "common": "a", "none": "no such text", "non-ascii": "東京", "ß": "ß"}
    searches: dict[str, float] = {}
    totals: dict[str, int] = {}
    for label, needle in needles.items():
        for filter_label, has_visits in (("all", None), ("hasVisits=true", True)):
            total = sandboxed.query(LinkQuery(q=needle, has_visits=has_visits)).total
            totals[f"{label} {filter_label}"] = total
            for where, offset in (("0", 0), ("middle", total // 2)):
                query = LinkQuery(q=needle, has_visits=has_visits, offset=offset)
                name = f"{label} {filter_label} @{where}"
                searches[name] = p50_ms(lambda query=query: sandboxed.query(query), Q_REPS)
    result["q_needles"] = needles
    result["q_totals"] = totals
    result["q_p50_ms"] = searches

    rendered = RenderedLinks("https://8here.in")
    warm: dict[str, float] = {}
    for name, query in {
        "createdAt desc @0": LinkQuery(),
        "title asc @middle": LinkQuery(sort_by="title", sort_order="asc", offset=n // 2),
        "clicks desc hasVisits=true @last": LinkQuery(
            sort_by="clicks",
            has_visits=True,
            offset=max(sandboxed.query(LinkQuery(has_visits=True, limit=1)).total - LIMIT, 0),
        ),
    }.items():
        rendered.page(sandboxed.query(query))  # renders the page's QR codes once
        warm[name] = p50_ms(lambda query=query: rendered.page(sandboxed.query(query)), PAGE_REPS)
    result["warm_page_p50_ms"] = warm
    result["peak_mb"] = peak_mb()
    return result


# --- the table ----------------------------------------------------------------------------------


def rows(results: list[dict[str, Any]]) -> list[tuple[str, list[float], str]]:
    """(label, one figure per size, unit) for the printed table."""
    from emulator.store import SORT_KEYS

    def worst(result: dict[str, Any], section: str, prefix: str) -> float:
        return max(v for k, v in result[section].items() if k.startswith(prefix))

    table: list[tuple[str, list[float], str]] = [
        ("create_app (total)", [r["create_app_s"] for r in results], "s"),
        ("  of which generate", [r.get("generate_s", 0.0) for r in results], "s"),
        ("  of which SandboxStore", [r.get("store_s", 0.0) for r in results], "s"),
        ("  create_app CPU time", [r["create_app_cpu_s"] for r in results], "s"),
    ]
    for key in (*SORT_KEYS[1:], "q (text index)", "q, another sortBy"):
        table.append((f"first use: {key}", [r["first_use_s"][key] for r in results], "s"))
    table.append(
        ("peak RSS after create_app", [r["peak_mb_after_create_app"] for r in results], "MB")
    )
    table.append(("peak RSS, all indexes built", [r["peak_mb"] for r in results], "MB"))
    for key in SORT_KEYS:
        table.append(
            (f"page p50, {key} (worst)", [worst(r, "page_p50_ms", key) for r in results], "ms")
        )
    table.append(
        ("page p50, worst of all", [max(r["page_p50_ms"].values()) for r in results], "ms")
    )
    for label in ("rare", "common", "none", "non-ascii", "ß"):
        for filter_label in ("all", "hasVisits=true"):
            for where in ("0", "middle"):
                name = f"{label} {filter_label} @{where}"
                table.append((f"q p50 {name}", [r["q_p50_ms"][name] for r in results], "ms"))
    table.append(("q p50, worst of all", [max(r["q_p50_ms"].values()) for r in results], "ms"))
    for name in results[0]["warm_page_p50_ms"]:
        table.append((f"warm page {name}", [r["warm_page_p50_ms"][name] for r in results], "ms"))
    return table


def print_table(
    results: list[dict[str, Any]], before: dict[str, Any], after: dict[str, Any]
) -> None:
    sizes = [r["n"] for r in results]
    print(
        f"machine: {before['nproc']} CPUs ({before['cpu_model']}), Python {before['python']}, "
        f"load average {format_load(before['loadavg'])} before, "
        f"{format_load(after['loadavg'])} after"
    )
    header = f"{'':46}" + "".join(f"{n:>12,}" for n in sizes)
    growth = len(sizes) > 1
    if growth:
        header += f"{'growth':>10}"
    print(header)
    for label, values, unit in rows(results):
        line = f"{label + ' (' + unit + ')':40}" + "".join(f"{fmt(v):>12}" for v in values)
        if growth:
            line += f"{'x' + format(values[-1] / values[0], '.3g') if values[0] else '-':>10}"
        print(line)
    last = results[-1]
    print(f"q totals at n={last['n']:,}: {last['q_totals']}")
    if last["n"] >= 1_000_000:
        verdicts = {
            "page p50 < 2 ms": max(last["page_p50_ms"].values()) < TARGETS["page_ms"],
            "q p50 < 100 ms": max(last["q_p50_ms"].values()) < TARGETS["q_ms"],
            "peak < 1.5 GB": last["peak_mb"] < TARGETS["peak_mb"],
            "create_app < 10 s": last["create_app_s"] < TARGETS["create_app_s"],
        }
        print(
            "targets at 1,000,000: "
            + ", ".join(f"{k}: {'ok' if v else 'MISSED'}" for k, v in verdicts.items())
        )


def fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--out", type=Path, help="write every figure as JSON here")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child), ensure_ascii=False))
        return
    before = describe()
    results = []
    for n in (int(size) for size in args.sizes.split(",")):
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(n)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if child.returncode != 0:
            raise SystemExit(f"size {n} failed:\n{child.stderr}")
        results.append(json.loads(child.stdout))
        print(f"n={n:,}: done ({results[-1]['create_app_s']:.1f} s to build)", file=sys.stderr)
    after = describe()
    print_table(results, before, after)
    if args.out:
        document = {
            "machine": before,
            "machine_after": after,
            "targets": TARGETS,
            "results": results,
        }
        args.out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
