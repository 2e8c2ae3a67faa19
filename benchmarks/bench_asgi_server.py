"""The emulator's app, unchanged, under another ASGI server: granian beside uvicorn, each as a ratio
to the same bytes served bare by the same server.

Not a dependency of the project: run it from a throwaway venv that has granian and the project,

    python -m venv /tmp/gv && /tmp/gv/bin/pip install -e . granian
    /tmp/gv/bin/python benchmarks/bench_asgi_server.py     # about 4 minutes

It serves `8here-emulator serve` (uvicorn, as a user starts it) and `baseline_app.py`, then the same
two apps under `granian --interface asgi --workers 1 --loop uvloop`, each server pinned to CPU 0
and wrk to CPU 1 (as bench_http.py does); health, the list page and a detail, each against the
bare route of the same bytes, in `--rounds` rounds (bare, then emulator, per scenario). What the
emulator's protocol class does (head bounds, request timeout, network faults' sockets) has no
counterpart under granian: the comparison is of the app's cost, not a drop-in replacement.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench_http import (
    HEALTH_PATH,
    LINKS_PATH,
    REPO,
    Scenario,
    Server,
    baseline_command,
    call,
    capture,
    emulator_command,
    free_port,
    register,
    run_wrk,
    start,
)
from machine import describe, format_load

GRANIAN = ["--interface", "asgi", "--host", "127.0.0.1", "--workers", "1", "--loop", "uvloop"]
# Module files granian imports the apps from (it takes `module:attribute`).
EMULATOR_MODULE = """
from emulator.app import create_app
from emulator.settings import Settings

app = create_app(Settings(warm_up=True))  # as `serve` builds it
"""
BARE_MODULE = """
import sys
from pathlib import Path

sys.path.insert(0, {benchmarks!r})
from baseline_app import build

app = build({{"list": Path({list!r}).read_bytes(), "detail": Path({detail!r}).read_bytes()}})
"""


def granian_command(granian: str, module: str, port: int) -> list[str]:
    return [granian, *GRANIAN, "--port", str(port), "--no-log", f"{module}:app"]


def measure(
    label: str, emulator: Server, bare: Server, token: str, detail_id: str, args: Any, folder: Path
) -> list[dict[str, Any]]:
    pairs = {
        "health": (HEALTH_PATH, "/health"),
        "list": (f"{LINKS_PATH}?sortBy=createdAt", "/bytes/list"),
        "detail": (f"{LINKS_PATH}/{detail_id}", "/bytes/detail"),
    }
    rows = []
    for name, (path, bare_path) in pairs.items():
        runs = []
        for _ in range(args.rounds):
            bare_result = run_wrk(
                Scenario(f"bare {name}", name, "GET", bare_path), bare.port, None,
                args.duration, args.connections, 1, folder,
            )  # fmt: skip
            result = run_wrk(
                Scenario(name, name, "GET", path), emulator.port, token,
                args.duration, args.connections, 1, folder,
            )  # fmt: skip
            if result.non_2xx or bare_result.non_2xx:
                raise SystemExit(f"{label} {name}: non-2xx answers")
            runs.append((result.rps, bare_result.rps))
        best, best_bare = max(r[0] for r in runs), max(r[1] for r in runs)
        rows.append(
            {
                "server": label,
                "scenario": name,
                "rps": round(best),
                "bare_rps": round(best_bare),
                "ratio": round(best / best_bare, 3),
                "rounds": [[round(a), round(b)] for a, b in runs],
            }
        )
        print(
            f"{label:<8} {name:<7} {best:>7.0f} req/s, bare {best_bare:>7.0f}:"
            f" ratio {best / best_bare:.3f} (rounds {[round(a / b, 3) for a, b in runs]})",
            flush=True,
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "asgi_server.json"))
    args = parser.parse_args()
    granian = shutil.which("granian", path=str(Path(sys.executable).parent))
    if granian is None or shutil.which("wrk") is None:
        raise SystemExit("needs wrk, and granian installed beside this interpreter (see above)")
    machine = describe()
    print(f"machine: {machine['nproc']} CPUs, {machine['cpu_model']},"
          f" load average {format_load(machine['loadavg'])}", flush=True)  # fmt: skip
    python = sys.executable
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port = free_port()
        serve = start("serve", emulator_command(python, port, []), port, HEALTH_PATH, 0)
        servers = [serve]
        try:
            token = register(serve.port)
            _, page = call(serve.port, "GET", f"{LINKS_PATH}?sortBy=clicks", token=token)
            detail_id = page["data"][0]["id"]
            bodies = {  # the same bytes
                "list": capture(serve.port, f"{LINKS_PATH}?sortBy=createdAt", token,
                                folder / "list.json"),
                "detail": capture(serve.port, f"{LINKS_PATH}/{detail_id}", token,
                                  folder / "detail.json"),
            }  # fmt: skip
            port = free_port()
            bare = start("bare", baseline_command(python, port, bodies), port, "/health", 0)
            servers.append(bare)
            rows += measure("uvicorn", serve, bare, token, detail_id, args, folder)
            for server in servers:
                server.stop()
            (folder / "emulator_app.py").write_text(EMULATOR_MODULE)
            (folder / "bare_app.py").write_text(
                BARE_MODULE.format(
                    benchmarks=str(REPO / "benchmarks"),
                    list=str(bodies["list"]),
                    detail=str(bodies["detail"]),
                )
            )
            command = granian_command(granian, "emulator_app", port := free_port())
            emulator = start("granian", ["env", f"PYTHONPATH={folder}", *command], port,
                             HEALTH_PATH, 0)  # fmt: skip
            servers.append(emulator)
            token = register(emulator.port)
            command = granian_command(granian, "bare_app", port := free_port())
            bare = start("granian bare", ["env", f"PYTHONPATH={folder}", *command], port,
                         "/health", 0)  # fmt: skip
            servers.append(bare)
            rows += measure("granian", emulator, bare, token, detail_id, args, folder)
        finally:
            for server in servers:
                server.stop()
    report = {"machine": machine, "loadavg_end": describe()["loadavg"], "rows": rows}
    print(f"load average at end {format_load(report['loadavg_end'])}")
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
