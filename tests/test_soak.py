"""A bounded soak: 20,000 API requests from 32 concurrent clients against `8here-emulator serve`.

The emulator runs as its own process (`python -m emulator serve`, as users start it), so the
clients and the server use both cores and the server's memory is its own. The clients are 32
threads, each with its own kept-alive connection. The clock is frozen, so
each rate window holds one whole burst; it is advanced past the window between the two bursts.
Both bursts send the same mix (list, detail and create) for:

- three sandbox applications registered with a limit that no burst reaches,
- one sandbox application at the sandbox's own 15 per minute,
- two live applications of one company workspace that share a threshold of 40 per minute
  (list and detail only: creates would use up the workspace's link quota).

Asserted: no 5xx, and no request without an answer; each application's count of 200/201 exactly
what its limit allows and every other answer a 429; every answer's request id unique; the server
journaled every request and keeps only its default 1,000 entries; and the server's resident memory
after the second burst is within a small margin of what it was after the first, so nothing grows
per request (the journal is bounded, sandbox creates are not stored, rate windows expire).
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import httpx
from conftest import FROZEN_NOW, LINKS_PATH, TOKEN_PATH, Served, rss_kb

REQUESTS_PER_BURST = 10_000
CLIENTS = 32
JOURNAL_SIZE = 1000  # Settings.journal_size, the default of `serve`
SANDBOX_LIMIT = 15
COMPANY_LIMIT = 40
HIGH_LIMIT = 1_000_000
# What the server may grow by between the end of the first burst and the end of the second. The
# first burst fills every bounded structure (journal, QR and JSON caches); the rate windows of the
# second burst replace those of the first. Growth per request would show as megabytes here.
RSS_MARGIN_KB = 4 * 1024
REQUEST_TIMEOUT = 15.0  # seconds, for each request
BURST_TIMEOUT_SECONDS = 120
# Creates name a slug from a small pool, so each QR code is rendered once, not per request.
CREATE_SLUGS = 16


@dataclass(frozen=True)
class App:
    client_id: str
    environment: str
    limit: int | None  # None: the sandbox's own 15
    share: int  # requests per round of the mix
    workspace_id: str = "sandbox"

    @property
    def secret(self) -> str:
        return f"{self.client_id}_secret"


APPS = (
    App("soak_high_1", "sandbox", HIGH_LIMIT, 6),
    App("soak_high_2", "sandbox", HIGH_LIMIT, 6),
    App("soak_high_3", "sandbox", HIGH_LIMIT, 6),
    App("soak_capped", "sandbox", None, 1),
    App("soak_company_a", "live", None, 1, "ws_soak_company"),
    App("soak_company_b", "live", None, 1, "ws_soak_company"),
)
COMPANY = ("soak_company_a", "soak_company_b")


@dataclass(frozen=True)
class Call:
    app: str
    method: str
    path: str
    body: bytes | None = None  # JSON


@dataclass(frozen=True)
class Answer:
    app: str
    status: int  # 0: no answer (a transport error or a timeout)
    request_id: str | None


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mix(links: dict[str, str], live_link: str, count: int) -> list[Call]:
    """`count` calls, each application its share of each round, list/detail/create in turn."""
    slugs = itertools.cycle(range(CREATE_SLUGS))
    rounds = itertools.count()
    calls: list[Call] = []
    sorts = itertools.cycle(("createdAt", "updatedAt", "title", "clicks"))
    while len(calls) < count:
        n = next(rounds)
        for app in APPS:
            for k in range(app.share):
                kind = (n * app.share + k) % 3
                if app.environment == "live":
                    path = f"{LINKS_PATH}/{live_link}" if kind else f"{LINKS_PATH}?limit=5"
                    calls.append(Call(app.client_id, "GET", path))
                elif kind == 0:
                    path = f"{LINKS_PATH}?sortBy={next(sorts)}&offset={25 * (n % 8)}"
                    calls.append(Call(app.client_id, "GET", path))
                elif kind == 1:
                    calls.append(Call(app.client_id, "GET", f"{LINKS_PATH}/{links[app.client_id]}"))
                else:
                    slug = f"soak-create-{next(slugs)}"
                    body = {"title": slug, "destination": "https://example.com/soak", "slug": slug}
                    calls.append(Call(app.client_id, "POST", LINKS_PATH, json.dumps(body).encode()))
    return calls[:count]


def burst(port: int, tokens: dict[str, str], calls: list[Call]) -> list[Answer]:
    """The calls from CLIENTS clients at once, each a thread with its own kept-alive connection.

    The clients are `http.client`, not httpx: httpx spends about 1 ms of CPU on each request here,
    `http.client` about 0.15 ms, and on a 2-CPU machine the clients' CPU is the server's loss."""
    pending = iter(calls)
    taking = threading.Lock()
    answers: list[Answer] = []

    def client() -> list[Answer]:
        mine: list[Answer] = []
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
        try:
            while True:
                with taking:
                    call = next(pending, None)
                if call is None:
                    return mine
                headers = {"Authorization": f"Bearer {tokens[call.app]}"}
                if call.body is not None:
                    headers["Content-Type"] = "application/json"
                try:
                    connection.request(call.method, call.path, call.body, headers)
                    response = connection.getresponse()
                    response.read()
                except (OSError, http.client.HTTPException):
                    mine.append(Answer(call.app, 0, None))  # no answer: counted, then reconnect
                    connection.close()
                    continue
                mine.append(Answer(call.app, response.status, response.getheader("x-request-id")))
        finally:
            connection.close()

    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(client) for _ in range(CLIENTS)]
        done, not_done = wait(futures, timeout=BURST_TIMEOUT_SECONDS)
        assert not not_done, f"the burst did not end within {BURST_TIMEOUT_SECONDS} s"
        for future in done:
            answers.extend(future.result())
    return answers


def check_burst(answers: list[Answer], calls: list[Call]) -> None:
    assert len(answers) == len(calls), "every request has an answer"
    statuses = Counter(a.status for a in answers)
    assert statuses[0] == 0, f"requests without an answer: {statuses[0]}"
    assert not [s for s in statuses if s >= 500], statuses
    ids = [a.request_id for a in answers]
    assert None not in ids and len(set(ids)) == len(ids), "each answer has its own request id"

    sent = Counter(call.app for call in calls)
    ok = Counter(a.app for a in answers if a.status in (200, 201))
    refused = Counter(a.app for a in answers if a.status == 429)
    for app in APPS:
        if app.client_id in COMPANY:
            continue
        allowed = min(sent[app.client_id], app.limit or SANDBOX_LIMIT)
        assert ok[app.client_id] == allowed, (app.client_id, ok[app.client_id], allowed)
        assert refused[app.client_id] == sent[app.client_id] - allowed, app.client_id
    # The two company apps share one window: together exactly its threshold.
    assert sum(ok[c] for c in COMPANY) == COMPANY_LIMIT, {c: ok[c] for c in COMPANY}
    assert sum(refused[c] for c in COMPANY) == sum(sent[c] for c in COMPANY) - COMPANY_LIMIT
    assert set(statuses) <= {200, 201, 429}, statuses


def test_soak_20000_requests_32_clients(served_process: Served) -> None:
    served = served_process
    started = time.monotonic()
    control = httpx.Client(base_url=served.url, timeout=REQUEST_TIMEOUT)
    with control:
        for app in APPS:
            body: dict[str, object] = {
                "clientId": app.client_id,
                "clientSecret": app.secret,
                "environment": app.environment,
            }
            if app.limit is not None:
                body["rateLimitPerMinute"] = app.limit
            if app.environment == "live":
                body |= {
                    "workspaceId": app.workspace_id,
                    "workspaceKind": "company",
                    "workspaceRateLimitPerMinute": COMPANY_LIMIT,
                }
            response = control.post("/_emulator/applications", json=body)
            assert response.status_code == 201, response.text
        assert control.post("/_emulator/clock", json={"now": FROZEN_NOW}).status_code == 200
        tokens = {}
        for app in APPS:
            credentials = {"clientId": app.client_id, "clientSecret": app.secret}
            response = control.post(TOKEN_PATH, json=credentials)
            assert response.status_code == 200, response.text
            tokens[app.client_id] = response.json()["accessToken"]

        # A sample link per application for its details, and one live link of the company.
        bearer = {"Authorization": f"Bearer {tokens['soak_high_1']}"}
        first = control.get(LINKS_PATH, headers=bearer)
        sample = [item["id"] for item in first.json()["data"]]
        links = {app.client_id: sample[i % len(sample)] for i, app in enumerate(APPS)}
        created = control.post(
            LINKS_PATH,
            json={"title": "Soak live", "destination": "https://example.com/live"},
            headers={"Authorization": f"Bearer {tokens['soak_company_a']}"},
        )
        assert created.status_code == 201, created.text
        live_link = created.json()["id"]
        setup_requests = len(APPS) + 2  # the token exchanges, the list and the create above

        calls = mix(links, live_link, REQUESTS_PER_BURST)
        rss_after = []
        bursts_started = time.monotonic()
        server_cpu, client_cpu = cpu_seconds(served.process.pid), time.process_time()
        for _ in range(2):
            # Past the window: every application starts the burst with an empty one.
            moved = control.post("/_emulator/clock", json={"advanceSeconds": 61})
            assert moved.status_code == 200
            answers = burst(served.port, tokens, calls)
            check_burst(answers, calls)
            rss_after.append(rss_kb(served.process.pid))

        bursts_took = time.monotonic() - bursts_started
        server_cpu = cpu_seconds(served.process.pid) - server_cpu
        client_cpu = time.process_time() - client_cpu
        journal = control.get("/_emulator/requests").json()["requests"]
        assert len(journal) == JOURNAL_SIZE, "the journal keeps its last 1,000 entries"
        sent = setup_requests + 2 * REQUESTS_PER_BURST
        assert journal[-1]["sequence"] == sent, "every API request was journaled"
        assert {entry["status"] for entry in journal} <= {200, 201, 429}

    growth = rss_after[1] - rss_after[0]
    elapsed = time.monotonic() - started
    print(
        f"soak: {2 * REQUESTS_PER_BURST} requests from {CLIENTS} clients in {bursts_took:.1f} s"
        f" (CPU: server {server_cpu:.1f} s, clients {client_cpu:.1f} s; test {elapsed:.1f} s);"
        f" server RSS after burst 1 {rss_after[0] / 1024:.1f} MiB,"
        f" after burst 2 {rss_after[1] / 1024:.1f} MiB ({growth:+d} KiB)"
    )
    assert growth <= RSS_MARGIN_KB, f"the server grew by {growth} KiB in the second burst"
