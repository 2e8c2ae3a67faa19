"""Latency profiles, measured: do 200 calls under `lognormal {median: 80, p99: 600}` show that
median and p99, and does `--latency-scale 0` add nothing (under 1 ms)?

    python benchmarks/bench_latency.py [--calls 200] [--pairs 2000] [--out PATH]

1. Serves `python -m emulator serve --scenario FILE` where FILE gives every operation that
   profile (seed 7), registers an application with a limit it never reaches, and makes `--calls`
   sequential list calls on one kept-alive connection. For each call it reads the delay the
   emulator drew (the journal's `latencyMs`) and the time the client waited, and reports the p50
   and p99 of both next to the targets. (A p99 of 200 calls is about their second-largest: the
   script also draws 100,000 delays in process, where the p99 is steady.)
2. Serves the emulator twice more, on the same kind of app: with no scenario, and with that
   scenario under `--latency-scale 0`, and alternates `--pairs` calls between them (one call to
   each in turn, so that the machine's moods fall on both alike). It reports each one's median
   and the difference, and the in-process cost of the latency step with the scale at 0.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine

LINKS = "/api/api-applications/public/links?limit=1"
PROFILE = {"default": {"lognormal": {"median": 80, "p99": 600}}, "seed": 7}
TARGET_P50, TARGET_P99 = 80.0, 600.0
SCALE_ZERO_BUDGET_MS = 1.0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served(*args: str) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", "--port", str(port), "--quiet", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/_emulator/health", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"the emulator did not start: {args}") from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)


class Client:
    """One kept-alive connection with a token of an application no limit stops."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=30)
        self.call("POST", "/_emulator/applications", {
            "clientId": "bench_latency", "clientSecret": "bench_latency_secret",
            "rateLimitPerMinute": 10**9,
        })  # fmt: skip
        issued = self.call("POST", "/api/api-applications/token", {
            "clientId": "bench_latency", "clientSecret": "bench_latency_secret",
        })  # fmt: skip
        self.token = issued["accessToken"]

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        self.connection.request(method, path, body=data, headers=headers)
        response = self.connection.getresponse()
        raw = response.read()
        if response.status >= 400:
            raise RuntimeError(f"{method} {path}: {response.status} {raw[:200]!r}")
        return json.loads(raw) if raw else None

    def timed_list(self) -> float:
        started = time.perf_counter()
        self.call("GET", LINKS, token=self.token)
        return (time.perf_counter() - started) * 1000


def measure_profile(calls: int, scenario: Path) -> dict[str, Any]:
    with served("--scenario", str(scenario)) as url:
        client = Client(url)
        client.call("DELETE", "/_emulator/requests")
        waited = [client.timed_list() for _ in range(calls)]
        journal = client.call("GET", "/_emulator/requests")["requests"]
    drawn = [entry["latencyMs"] for entry in journal]
    return {
        "calls": calls,
        "drawn_p50": percentile(drawn, 0.50),
        "drawn_p99": percentile(drawn, 0.99),
        "waited_p50": percentile(waited, 0.50),
        "waited_p99": percentile(waited, 0.99),
    }


def draws_in_process(count: int) -> dict[str, float]:
    from emulator.latency import Latency, parse_latency

    latency = Latency(parse_latency(PROFILE))
    drawn = [latency.delay_ms("GET", "/api/api-applications/public/links") for _ in range(count)]
    return {"count": count, "p50": percentile(drawn, 0.5), "p99": percentile(drawn, 0.99)}


def measure_scale_zero(pairs: int, scenario: Path) -> dict[str, Any]:
    with served() as plain_url, served("--scenario", str(scenario), "--latency-scale", "0") as url:
        plain, zero = Client(plain_url), Client(url)
        for _ in range(200):  # warm both: connections, caches, the first pages' QR codes
            plain.timed_list()
            zero.timed_list()
        times: dict[str, list[float]] = {"plain": [], "zero": []}
        for _ in range(pairs):
            times["plain"].append(plain.timed_list())
            times["zero"].append(zero.timed_list())
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {"pairs": pairs, **medians, "added": medians["zero"] - medians["plain"]}


def step_cost_ns() -> float:
    """What the latency step costs a request with the scale at 0, in process."""
    from emulator.latency import Latency, parse_latency

    latency = Latency(parse_latency(PROFILE), scale=0)
    rounds = 200_000
    started = time.perf_counter()
    for _ in range(rounds):
        latency.delay_ms("GET", "/api/api-applications/public/links")
    return (time.perf_counter() - started) / rounds * 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    args = parser.parse_args()
    random.seed(0)
    described = machine.describe()
    with tempfile.TemporaryDirectory() as folder:
        scenario = Path(folder) / "lognormal.yaml"
        scenario.write_text(json.dumps({"version": 1, "latency": PROFILE}))
        profile = measure_profile(args.calls, scenario)
        in_process = draws_in_process(100_000)
        zero = measure_scale_zero(args.pairs, scenario)
    cost = step_cost_ns()

    load = machine.format_load(described["loadavg"])
    print(f"machine: {described['nproc']} CPUs, {described['cpu_model']}, load {load}")
    print(f"\nlognormal {{median: 80, p99: 600}}, {profile['calls']} sequential list calls")
    print(f"{'':28}{'p50 ms':>10}{'p99 ms':>10}")
    for label, p50, p99 in [
        ("target", TARGET_P50, TARGET_P99),
        ("drawn (journal latencyMs)", profile["drawn_p50"], profile["drawn_p99"]),
        ("waited (client)", profile["waited_p50"], profile["waited_p99"]),
        ("100,000 draws in process", in_process["p50"], in_process["p99"]),
    ]:
        print(f"{label:28}{p50:>10.1f}{p99:>10.1f}")
    print(f"\n--latency-scale 0 beside no scenario, {zero['pairs']} alternating list calls each")
    print(f"  median without a scenario   {zero['plain']:.3f} ms")
    print(f"  median with scale 0         {zero['zero']:.3f} ms")
    verdict = "under" if zero["added"] < SCALE_ZERO_BUDGET_MS else "NOT under"
    print(f"  added                       {zero['added']:+.3f} ms ({verdict} 1 ms)")
    print(f"  the latency step itself     {cost:.0f} ns a request, in process")
    if args.out:
        figures = {"machine": described, "profile": profile, "in_process": in_process}
        figures |= {"scale_zero": zero, "step_ns": cost}
        args.out.write_text(json.dumps(figures, indent=2))
    return 0 if zero["added"] < SCALE_ZERO_BUDGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
