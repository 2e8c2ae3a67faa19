"""Start-up and per-test reset times of the pytest fixtures, beside `8here-emulator serve`.

Run `python benchmarks/bench_startup.py [--runs N]`; it prints the median of N runs of:
- the session server: `emulator_server` from fixture call to first 200, as the plugin reports it
  at the end of a fresh pytest run (so imports are cold, as in a user's session);
- the warm-up: the sample set's QR codes rendered by the session fixture before the first test,
  as the plugin reports it, and the walk through all 240 sample links (pages of 25, over HTTP)
  in the session's first test and in its second: with the warm-up they should cost the same;
- for comparison, the same walk in process on a fresh emulator with the QR caches emptied (what
  the first test paid before the warm-up) and again right after;
- the per-test reset: the `emulator` fixture's reset, the plugin's median over that run's tests;
- `8here-emulator serve` as a subprocess: from spawning it to the first 200 of its health check;
- a reset of that subprocess over HTTP: `POST /_emulator/reset` on a kept-alive connection.
The pytest runs leave out unrelated plugins of a development environment, as a user's has none.
"""

from __future__ import annotations

import argparse
import http.client
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

TESTS = 30
TEST_FILE = f"""
import json
import os
import time
import urllib.request

import pytest


def walk(emulator):
    token = emulator.token(emulator.register_application(rate_limit_per_minute=10**6))
    started, offset = time.perf_counter(), 0
    while True:
        request = urllib.request.Request(
            emulator.url + f"/api/api-applications/public/links?limit=25&offset={{offset}}",
            headers={{"Authorization": "Bearer " + token}},
        )
        with urllib.request.urlopen(request) as response:
            page = json.load(response)
        offset += 25
        if not page["pagination"]["hasMore"]:
            return time.perf_counter() - started


@pytest.mark.parametrize("n", range(2))
def test_a_walk(emulator, n):
    with open(os.path.join(os.path.dirname(__file__), f"walk{{n}}.txt"), "w") as out:
        out.write(str(walk(emulator)))


@pytest.mark.parametrize("n", range({TESTS}))
def test_one_call(emulator, n):
    app = emulator.register_application(environment="live")
    request = urllib.request.Request(
        emulator.url + "/api/api-applications/public/links?limit=1",
        headers={{"Authorization": "Bearer " + emulator.token(app)}},
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 200
"""
SUMMARY = re.compile(
    r"session server ready in (?P<start>[\d.]+) s .*rendered in (?P<warm>[\d.]+) s .*"
    r"per-test reset median (?P<reset>[\d.]+) ms"
)
UNRELATED_PLUGINS = ("schemathesis", "hypothesispytest", "faker", "cacheprovider")


def fixture_run(folder: Path) -> tuple[float, float, float, float, float]:
    """(server start-up s, reset median ms, warm-up s, first walk s, second walk s) of one fresh
    pytest run."""
    blocked = [arg for name in UNRELATED_PLUGINS for arg in ("-p", f"no:{name}")]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *blocked, str(folder / "test_bench.py")],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=300,
    )
    found = SUMMARY.search(result.stdout)
    if result.returncode != 0 or found is None:
        raise SystemExit(f"the pytest run failed:\n{result.stdout}\n{result.stderr}")
    walks = [float((folder / f"walk{n}.txt").read_text()) for n in range(2)]
    return float(found["start"]), float(found["reset"]), float(found["warm"]), *walks


def cold_walk() -> tuple[float, float]:
    """(first, second) walk through the sample set in process, from empty QR caches."""
    from starlette.testclient import TestClient

    from emulator import qr
    from emulator.app import create_app

    qr.qr_png.cache_clear()
    qr.qr_png_base64.cache_clear()
    client = TestClient(create_app())
    client.post(
        "/_emulator/applications",
        json={"clientId": "bench", "clientSecret": "s", "rateLimitPerMinute": 10**6},
    )
    token = client.post(
        "/api/api-applications/token", json={"clientId": "bench", "clientSecret": "s"}
    ).json()["accessToken"]
    times = []
    for _ in range(2):
        started, offset, more = time.perf_counter(), 0, True
        while more:
            page = client.get(
                "/api/api-applications/public/links",
                params={"limit": 25, "offset": offset},
                headers={"Authorization": f"Bearer {token}"},
            ).json()
            offset, more = offset + 25, page["pagination"]["hasMore"]
        times.append(time.perf_counter() - started)
    return times[0], times[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_command() -> list[str]:
    script = Path(sys.executable).with_name("8here-emulator")
    return [str(script)] if script.exists() else [sys.executable, "-m", "emulator"]


def serve_run(resets: int = 50) -> tuple[float, float]:
    """(spawn to first 200 s, median HTTP reset ms) of one `8here-emulator serve` subprocess."""
    port = free_port()
    command = [*serve_command(), "serve", "--port", str(port), "--log-level", "warning"]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        health = f"http://127.0.0.1:{port}/_emulator/health"
        while True:
            if process.poll() is not None or time.perf_counter() - started > 30:
                raise SystemExit("8here-emulator serve did not start")
            try:
                with urllib.request.urlopen(health, timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.005)
        ready = time.perf_counter() - started
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        times = []
        for _ in range(resets):
            began = time.perf_counter()
            connection.request(
                "POST", "/_emulator/reset", headers={"Content-Type": "application/json"}
            )
            connection.getresponse().read()
            times.append(time.perf_counter() - began)
        connection.close()
        return ready, statistics.median(times) * 1000
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "test_bench.py").write_text(TEST_FILE, encoding="utf-8")
        fixtures = [fixture_run(Path(folder)) for _ in range(runs)]
    served = [serve_run() for _ in range(runs)]
    cold = [cold_walk() for _ in range(runs)]

    def median(values: list[float]) -> float:
        return statistics.median(values)

    print(f"median of {runs} runs ({TESTS + 2} tests per pytest run)")
    print(f"{'':34} {'start to first 200':>20} {'reset':>12}")
    start, reset = median([f[0] for f in fixtures]), median([f[1] for f in fixtures])
    print(f"{'emulator_server / emulator fixture':34} {start * 1000:>17.0f} ms {reset:>9.3f} ms")
    start, reset = median([s[0] for s in served]), median([s[1] for s in served])
    print(f"{'8here-emulator serve (subprocess)':34} {start * 1000:>17.0f} ms {reset:>9.3f} ms")
    print("(fixture reset: EmulatorState.reset() in process; subprocess: POST /_emulator/reset)")
    warm, first, second = (median([f[i] for f in fixtures]) for i in (2, 3, 4))
    print(f"QR codes of the sample set rendered before the first test: {warm * 1000:.0f} ms")
    print(f"walk of all 240 sample links, first test: {first * 1000:.0f} ms, ", end="")
    print(f"second test: {second * 1000:.0f} ms (ratio {first / second:.2f})")
    cold_first, cold_second = median([c[0] for c in cold]), median([c[1] for c in cold])
    print("without the warm-up (in process, QR caches emptied): first walk ", end="")
    print(f"{cold_first * 1000:.0f} ms, second {cold_second * 1000:.0f} ms ", end="")
    print(f"(ratio {cold_first / cold_second:.2f})")


if __name__ == "__main__":
    main()
