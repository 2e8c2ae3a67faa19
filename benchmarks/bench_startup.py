"""Start-up and per-test reset times of the pytest fixtures, beside `8here-emulator serve`.

Run `python benchmarks/bench_startup.py [--runs N]`; it prints the median of N runs of:
- the session server: `emulator_server` from fixture call to first 200, as the plugin reports it
  at the end of a fresh pytest run (so imports are cold, as in a user's session);
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
import urllib.request

import pytest


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
    r"session server ready in (?P<start>[\d.]+) s .*per-test reset median (?P<reset>[\d.]+) ms"
)
UNRELATED_PLUGINS = ("schemathesis", "hypothesispytest", "faker", "cacheprovider")


def fixture_run(folder: Path) -> tuple[float, float]:
    """(server start-up s, reset median ms) reported by one fresh pytest run."""
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
    return float(found["start"]), float(found["reset"])


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

    def median(values: list[float]) -> float:
        return statistics.median(values)

    print(f"median of {runs} runs ({TESTS} tests per pytest run)")
    print(f"{'':34} {'start to first 200':>20} {'reset':>12}")
    start, reset = median([f[0] for f in fixtures]), median([f[1] for f in fixtures])
    print(f"{'emulator_server / emulator fixture':34} {start * 1000:>17.0f} ms {reset:>9.3f} ms")
    start, reset = median([s[0] for s in served]), median([s[1] for s in served])
    print(f"{'8here-emulator serve (subprocess)':34} {start * 1000:>17.0f} ms {reset:>9.3f} ms")
    print("(fixture reset: EmulatorState.reset() in process; subprocess: POST /_emulator/reset)")


if __name__ == "__main__":
    main()
