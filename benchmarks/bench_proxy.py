"""What `8here-emulator proxy` adds to a request's latency, against direct calls to its target.

Run `python benchmarks/bench_proxy.py` (not collected by pytest). In one run it:

1. serves a target, `python -m emulator serve`, and in front of it `python -m emulator proxy
   --target …`, each its own process (pinned to CPU 0 and CPU 1 with taskset when there are two
   or more; --no-pin to leave them be), and registers on the target an application whose limit
   is never reached;
2. sends, one at a time over one keep-alive connection each, the same request to the target and
   to the proxy, alternately (which goes first alternates too, so a slow moment of the machine
   falls on both), `--requests` times per scenario after `--warmup` pairs: the token exchange, a
   list of 25 (the default page, with QR codes), a list of 100, a detail and a sandbox create;
3. reports, per scenario, p50 and p99 of each side and what the proxy adds (p50 and p99 of the
   per-pair difference), and checks that every proxied answer was `X-Emulator-Check: ok`.

Every proxied exchange is checked as in use: the request and the answer against the contract,
the answer's shape against a shadow answer of the emulator on a throwaway copy of its state.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench_http import free_port, pinned
from machine import describe, format_load

REPO = Path(__file__).resolve().parent.parent
TOKEN_PATH = "/api/api-applications/token"
LINKS_PATH = "/api/api-applications/public/links"
APP = {
    "clientId": "bench_proxy",
    "clientSecret": "bench_proxy_secret",
    "environment": "sandbox",
    "rateLimitPerMinute": 1_000_000_000,
}
JSON = {"Content-Type": "application/json"}


@contextmanager
def process(command: list[str], port: int) -> Iterator[None]:
    started = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            if started.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{' '.join(command)} did not start")
            try:
                url = f"http://127.0.0.1:{port}/_emulator/health"
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.01)
        yield
    finally:
        started.terminate()
        started.wait(timeout=10)


class Client:
    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[float, int, dict[str, str], bytes]:
        data = None if body is None else json.dumps(body).encode()
        sent = {**(headers or {}), **(JSON if data is not None else {})}
        began = time.perf_counter()
        self.connection.request(method, path, body=data, headers=sent)
        response = self.connection.getresponse()
        content = response.read()
        elapsed = time.perf_counter() - began
        return elapsed, response.status, {k.lower(): v for k, v in response.getheaders()}, content


@dataclass
class Row:
    scenario: str
    direct_p50_ms: float
    direct_p99_ms: float
    proxy_p50_ms: float
    proxy_p99_ms: float
    added_p50_ms: float
    added_p99_ms: float
    not_ok: int


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(
    name: str,
    direct: Client,
    proxy: Client,
    request: Callable[[Client], tuple[float, int, dict[str, str], bytes]],
    requests: int,
    warmup: int,
) -> Row:
    direct_ms, proxy_ms, added, not_ok = [], [], [], 0
    for number in range(warmup + requests):
        pair = (direct, proxy) if number % 2 == 0 else (proxy, direct)
        timed = {id(side): request(side) for side in pair}
        d, p = timed[id(direct)], timed[id(proxy)]
        if d[1] != p[1]:
            raise SystemExit(f"{name}: the target said {d[1]}, the proxy passed on {p[1]}")
        if number < warmup:
            continue
        direct_ms.append(d[0] * 1000)
        proxy_ms.append(p[0] * 1000)
        added.append((p[0] - d[0]) * 1000)
        not_ok += p[2].get("x-emulator-check") != "ok"
    return Row(
        name,
        statistics.median(direct_ms),
        percentile(direct_ms, 0.99),
        statistics.median(proxy_ms),
        percentile(proxy_ms, 0.99),
        statistics.median(added),
        percentile(added, 0.99),
        not_ok,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="pairs per scenario")
    parser.add_argument("--warmup", type=int, default=30, help="pairs first, not counted")
    parser.add_argument("--no-pin", action="store_true", help="no taskset")
    parser.add_argument("--out", type=Path, help="also write the figures here, as JSON")
    args = parser.parse_args()
    pin = not args.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) > 1
    target_port, proxy_port = free_port(), free_port()
    emulator = [sys.executable, "-m", "emulator"]
    quiet = ["--log-level", "warning", "--quiet"]
    target_command = [*emulator, "serve", "--port", str(target_port), *quiet]
    proxy_command = [
        *emulator,
        "proxy",
        "--target",
        f"http://127.0.0.1:{target_port}",
        "--port",
        str(proxy_port),
        *quiet,
    ]
    machine = describe()
    with (
        process(pinned(0 if pin else None, target_command), target_port),
        process(pinned(1 if pin else None, proxy_command), proxy_port),
    ):
        direct, proxy = Client(target_port), Client(proxy_port)
        status = direct.call("POST", "/_emulator/applications", APP)[1]
        if status != 201:
            raise SystemExit(f"could not register the benchmark's application ({status})")
        credentials = {k: APP[k] for k in ("clientId", "clientSecret")}
        tokens = {}
        for side in (direct, proxy):
            body = json.loads(side.call("POST", TOKEN_PATH, credentials)[3])
            tokens[id(side)] = {"Authorization": f"Bearer {body['accessToken']}"}
        listed = json.loads(direct.call("GET", LINKS_PATH, None, tokens[id(direct)])[3])
        link = listed["data"][0]["id"]

        def authed(method: str, path: str, body: Any = None) -> Callable[[Client], Any]:
            return lambda side: side.call(method, path, body, tokens[id(side)])

        scenarios: list[tuple[str, Callable[[Client], Any]]] = [
            ("token exchange", lambda side: side.call("POST", TOKEN_PATH, credentials)),
            ("list of 25 (default page)", authed("GET", LINKS_PATH)),
            ("list of 100", authed("GET", f"{LINKS_PATH}?limit=100")),
            ("detail", authed("GET", f"{LINKS_PATH}/{link}")),
            (
                "create (sandbox)",
                authed("POST", LINKS_PATH, {"title": "B", "destination": "https://e.com/b"}),
            ),
        ]
        rows = [
            measure(name, direct, proxy, request, args.requests, args.warmup)
            for name, request in scenarios
        ]
        checked = json.loads(proxy.call("GET", "/_emulator/checks")[3])
    after = describe()
    print(
        f"{machine['cpu_model']}, {machine['nproc']} CPUs, Python {machine['python']}, "
        f"load {format_load(machine['loadavg'])} before, {format_load(after['loadavg'])} after; "
        f"target and proxy {'pinned to CPU 0 and 1' if pin else 'not pinned'}"
    )
    print(
        f"{args.requests} request pairs per scenario after {args.warmup} of warm-up; "
        f"{checked['exchanges']} exchanges checked by the proxy, "
        f"{checked['withDifferences']} with differences"
    )
    print()
    print("| scenario | direct p50 / p99 ms | via proxy p50 / p99 ms | added p50 / p99 ms |")
    print("|---|---|---|---|")
    for row in rows:
        print(
            f"| {row.scenario} | {row.direct_p50_ms:.2f} / {row.direct_p99_ms:.2f} | "
            f"{row.proxy_p50_ms:.2f} / {row.proxy_p99_ms:.2f} | "
            f"{row.added_p50_ms:.2f} / {row.added_p99_ms:.2f} |"
        )
    not_ok = sum(row.not_ok for row in rows)
    if not_ok:
        print(f"\n{not_ok} proxied answers were not `X-Emulator-Check: ok`")
    if args.out is not None:
        args.out.write_text(
            json.dumps(
                {"machine": machine, "checked": checked, "rows": [asdict(r) for r in rows]},
                indent=2,
            ),
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
