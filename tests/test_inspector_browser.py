"""The inspector page in a real browser: headless Chromium (Debian's `chromium` package) driven by
Playwright for Python, against an emulator served on a free port.

Playwright's own browser download is not used (it cannot work offline); `.ci/browser.sh` installs
the Debian package and Playwright. Without them these tests skip, unless
EMULATOR_REQUIRE_BROWSER=1 (CI sets it), where they fail instead.

The first test makes the README's screenshot: it is written to docs/inspector.png when
EMULATOR_UPDATE_SCREENSHOT=1, and to the test's temporary directory otherwise.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from conftest import (
    CONTROL,
    LINKS_PATH,
    SANDBOX_CLIENT_ID,
    SANDBOX_LIMIT,
    SANDBOX_SECRET,
    TOKEN_PATH,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route
from test_qr import read_opencv

from emulator.inspector_routes import inspector_routes
from emulator.settings import Settings
from emulator.testing import EmulatorServer, ThreadedServer

CHROMIUM = Path("/usr/bin/chromium")
# Headless (Playwright adds --headless), as root, on a closed network. Playwright gives each
# launch a fresh temporary profile (its own --user-data-dir).
# The DNS rebinding of the hardening test, without DNS: this name resolves to the loopback.
REBOUND_HOST = "rebind.attacker.example"
CHROMIUM_ARGS = [
    f"--host-resolver-rules=MAP {REBOUND_HOST} 127.0.0.1",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 10_000  # every Playwright wait is bounded by this
# Starting Chromium on a loaded 2-core machine (the suite's other worker busy) has taken over 10 s.
LAUNCH_MS = 60_000
UI = f"{CONTROL}/ui"
START = "2026-03-14T09:26:00Z"  # the emulator's clock runs on from here
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "inspector.png"
LIVE_CLIENT_ID = "lv_demo_personal"
LIVE_SECRET = "lvs_demo_personal_secret"
LIVE_WORKSPACE = "ws_personal_demo"


def _unavailable(reason: str) -> None:
    if os.environ.get("EMULATOR_REQUIRE_BROWSER") == "1":
        pytest.fail(
            f"{reason}; EMULATOR_REQUIRE_BROWSER=1 requires the browser test", pytrace=False
        )
    pytest.skip(f"{reason}: run `bash .ci/browser.sh` to install it (browser test skipped)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        _unavailable(f"no Chromium at {CHROMIUM} (Debian's `chromium` package)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=LAUNCH_MS
        )
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def serve(settings: Settings | None = None) -> Iterator[EmulatorServer]:
    """An emulator on a free port, with the inspector mounted (as create_app does with the control
    API on; mounted here as well for as long as create_app does not)."""
    server = EmulatorServer(settings)
    if not any(getattr(r, "path", None) == UI for r in server.app.router.routes):
        server.app.router.routes.extend(inspector_routes())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def served() -> Iterator[EmulatorServer]:
    with serve() as server:
        yield server


class Session:
    """A browser tab on the page, and the problems it met: uncaught errors, and any request that
    left the emulator's origin (the page must work offline)."""

    def __init__(self, browser: Any, server: EmulatorServer) -> None:
        self.server = server
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.context = browser.new_context(
            viewport={"width": 1400, "height": 1000},
            device_scale_factor=1,
            locale="en-US",
            timezone_id="UTC",
        )
        self.context.set_default_timeout(WAIT_MS)
        self.context.route("**/*", self._only_the_emulator)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        self.page.on("console", self._console)

    def _only_the_emulator(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(f"{self.server.url}/"):
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()

    def _console(self, message: Any) -> None:
        # The browser logs each non-2xx fetch ("Failed to load resource"); the page handles those.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.errors.append(f"console: {message.text}")

    def open(self, fragment: str = "") -> Any:
        self.page.goto(f"{self.server.url}{UI}{fragment}")
        return self.page

    def close(self) -> None:
        self.context.close()
        assert not self.errors, self.errors
        assert not self.foreign, f"requests beyond the emulator: {self.foreign}"


@pytest.fixture
def session(browser: Any, served: EmulatorServer) -> Iterator[Session]:
    tab = Session(browser, served)
    try:
        yield tab
    finally:
        tab.close()


@pytest.fixture
def http(served: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=10) as client:
        yield client


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _bearer(http: httpx.Client, client_id: str, secret: str) -> dict[str, str]:
    response = http.post(TOKEN_PATH, json={"clientId": client_id, "clientSecret": secret})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['accessToken']}"}


def _create_live(http: httpx.Client, live: dict[str, str], title: str, slug: str) -> Any:
    body = {"title": title, "destination": f"https://example.com/{slug}", "slug": slug}
    created = http.post(LINKS_PATH, json=body, headers=live)
    assert created.status_code == 201, created.text
    return created


def _journal(http: httpx.Client) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = http.get(f"{CONTROL}/requests").json()["requests"]
    return entries


def _read_qr(png: bytes) -> tuple[str, list[str]]:
    """The same two independent readers as tests/test_qr.py: OpenCV (classic, then ArUco-based)
    and zxing-cpp."""
    zxingcpp = pytest.importorskip("zxingcpp")
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    return read_opencv(png), [code.text for code in zxingcpp.read_barcodes(image)]


def test_requests_qr_codes_and_the_clock(
    session: Session, http: httpx.Client, tmp_path: Path
) -> None:
    """A client's request appears live; a 429 shows its window and Retry-After; "+60 s" in the
    page lifts it; a QR image renders and decodes to its link's shortUrl. Makes the screenshot."""
    expect = _expect()
    assert http.post(f"{CONTROL}/clock", json={"now": START, "frozen": False}).status_code == 200
    page = session.open()
    expect(page.locator("#connection")).to_have_class(re.compile(r"\blive\b"))
    rows = page.locator("#requests-rows tr")

    # A fault (on detail calls, which this test does not make), added from the page.
    form = page.locator("#fault-form")
    form.locator('[name="path"]').fill(f"{LINKS_PATH}/*")
    form.locator('[name="status"]').fill("503")
    form.locator('[name="times"]').fill("2")
    form.get_by_role("button", name="Add fault").click()
    expect(page.locator("#faults li.fault")).to_have_count(1)
    assert http.get(f"{CONTROL}/faults").json()["faults"] == [
        {
            "method": None,
            "path": f"{LINKS_PATH}/*",
            "status": 503,
            "delayMs": 0,
            "retryAfter": None,
            "network": None,
            "dribbleMs": None,
            "times": 2,
            "fired": 0,
        }
    ]

    # A client request appears in the requests view, on the emulator's clock.
    sandbox = _bearer(http, SANDBOX_CLIENT_ID, SANDBOX_SECRET)
    listed = http.get(LINKS_PATH, params={"q": "launch", "limit": 5}, headers=sandbox)
    assert listed.status_code == 200
    launch_row = rows.filter(has_text="q=launch")
    expect(launch_row).to_have_count(1)
    entry = _journal(http)[-1]
    assert entry["query"] == "q=launch&limit=5"
    expect(launch_row.locator("td.time")).to_have_text(entry["time"][11:19])
    expect(launch_row.locator("td.app")).to_have_text(SANDBOX_CLIENT_ID)
    expect(launch_row.locator(".method")).to_have_text("GET")
    expect(launch_row.locator(".status")).to_have_text("200")
    expect(launch_row.locator("td.latency")).to_have_text(re.compile(r"^\d+(\.\d)? ms$"))

    # 16 list calls in all: the sandbox's 15 a minute, then a 429 with its window.
    statuses = [
        http.get(LINKS_PATH, params={"limit": 1}, headers=sandbox).status_code
        for _ in range(SANDBOX_LIMIT)
    ]
    assert statuses == [200] * (SANDBOX_LIMIT - 1) + [429]
    limited_entry = _journal(http)[-1]
    assert limited_entry["status"] == 429 and limited_entry["retryAfter"] > 0
    limited = page.locator("#requests-rows tr.status-429")
    expect(limited).to_have_count(1)
    expect(limited.locator(".rate-note")).to_contain_text(
        f"Retry-After {limited_entry['retryAfter']} s"
    )
    expect(limited.locator(".rate-note")).to_contain_text(
        re.compile(rf"window {SANDBOX_LIMIT}/{SANDBOX_LIMIT} per 60 s, resets \d\d:\d\d:\d\d")
    )
    app_meter = page.locator(f'#state-apps [data-app="{SANDBOX_CLIENT_ID}"] .meter-value')
    expect(app_meter).to_have_text(f"{SANDBOX_LIMIT} / {SANDBOX_LIMIT}")

    # Advancing the clock from the page lifts the 429.
    before = http.get(f"{CONTROL}/clock").json()["epoch"]
    page.get_by_role("button", name="+60 s", exact=True).click()
    expect(app_meter).to_have_text(f"0 / {SANDBOX_LIMIT}")
    assert http.get(f"{CONTROL}/clock").json()["epoch"] >= before + 60
    again = http.get(LINKS_PATH, params={"limit": 1}, headers=sandbox)
    assert again.status_code == 200
    expect(rows.first.locator(".status")).to_have_text("200")
    expect(rows.first).to_have_attribute("data-sequence", str(_journal(http)[-1]["sequence"]))
    expect(app_meter).to_have_text(f"1 / {SANDBOX_LIMIT}")
    expect(rows).to_have_count(SANDBOX_LIMIT + 3)  # token, 16 list calls, the one after

    # A live create: the workspace's quota use.
    live = _bearer(http, LIVE_CLIENT_ID, LIVE_SECRET)
    created = http.post(
        LINKS_PATH,
        json={
            "title": "Spring launch",
            "destination": "https://example.com/spring",
            "slug": "spring-launch",
        },
        headers=live,
    )
    assert created.status_code == 201, created.text
    quota = page.locator(f'#state-quota [data-workspace="{LIVE_WORKSPACE}"] .meter-value')
    expect(quota).to_have_text("1 / 100")

    # Links: every QR image renders, and each visited link's sparkline is drawn.
    first_page = http.get(f"{CONTROL}/links").json()["data"]
    link_rows = page.locator("#links-rows li.link")
    expect(link_rows).to_have_count(len(first_page))
    expect(page.locator("#links-rows .spark-box svg")).to_have_count(
        sum(1 for link in first_page if link["clicks"] > 0)
    )
    page.wait_for_function(
        "() => [...document.querySelectorAll('#links-rows img.qr')]"
        ".every(img => img.complete && img.naturalWidth > 0)",
        timeout=WAIT_MS,
    )
    shot = (
        SCREENSHOT
        if os.environ.get("EMULATOR_UPDATE_SCREENSHOT") == "1"
        else tmp_path / "inspector.png"
    )
    shot.parent.mkdir(parents=True, exist_ok=True)
    expect(page.locator("#toast")).to_be_hidden()
    page.mouse.move(0, 0)
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 50_000

    # A QR image renders at full size and decodes to its link's shortUrl.
    link = first_page[0]
    expect(link_rows.first).to_have_attribute("data-link-id", link["id"])
    link_rows.first.click()
    qr = page.locator("#link-qr")
    expect(qr).to_be_visible()
    expect(qr).to_have_attribute("data-short-url", link["shortUrl"])
    page.wait_for_function(
        "() => { const img = document.getElementById('link-qr');"
        " return img.complete && img.naturalWidth > 0; }",
        timeout=WAIT_MS,
    )
    opencv_text, zxing_texts = _read_qr(qr.screenshot())
    assert opencv_text == link["shortUrl"]
    assert zxing_texts == [link["shortUrl"]]
    detail = http.get(f"{CONTROL}/links/{link['id']}").json()
    expect(page.locator("#link-chart svg rect.bar-rect")).to_have_count(
        len(detail["analytics"]["clicksByDay"])
    )
    expect(page.locator("#link-short-url")).to_have_text(link["shortUrl"])


def test_details_filters_faults_links_and_reset(session: Session, http: httpx.Client) -> None:
    expect = _expect()
    page = session.open()
    rows = page.locator("#requests-rows tr")
    shown = page.locator("#requests-rows tr:visible")
    token_response = http.post(
        TOKEN_PATH, json={"clientId": SANDBOX_CLIENT_ID, "clientSecret": SANDBOX_SECRET}
    )
    token = token_response.json()["accessToken"]
    sandbox = {"Authorization": f"Bearer {token}"}
    assert http.get(LINKS_PATH, params={"limit": 2}, headers=sandbox).status_code == 200
    assert http.get(LINKS_PATH).status_code == 401
    expect(rows).to_have_count(3)

    # Request and response, headers and bodies, with secrets and tokens masked.
    dialog = page.locator("#request-dialog")
    rows.filter(has_text=TOKEN_PATH).click()
    expect(dialog).to_be_visible()
    expect(dialog.locator("#request-body")).to_contain_text('"clientSecret": "***"')
    expect(dialog.locator("#response-body")).to_contain_text('"accessToken": "***"')
    body_text = dialog.inner_text()
    assert SANDBOX_SECRET not in body_text and token not in body_text
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    rows.filter(has_text="limit=2").click()
    expect(dialog.locator("#request-headers")).to_contain_text("Bearer ***")
    expect(dialog.locator("#response-headers")).to_contain_text("x-ratelimit-limit")
    expect(dialog.locator("#request-meta")).to_contain_text("offset 0, limit 2, total 240")
    assert token not in dialog.inner_text()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    # Filters: by status, by application.
    page.select_option("#filter-status", "4xx")
    expect(shown).to_have_count(1)
    expect(shown.locator(".status")).to_have_text("401")
    page.select_option("#filter-status", "")
    page.select_option("#filter-app", SANDBOX_CLIENT_ID)
    expect(shown).to_have_count(2)
    page.select_option("#filter-app", "-")
    expect(shown).to_have_count(1)
    page.select_option("#filter-app", "")
    expect(shown).to_have_count(3)

    # Faults: the API's own validation message; add; a request meets it; clear.
    form = page.locator("#fault-form")
    form.locator('[name="times"]').fill("1")
    form.get_by_role("button", name="Add fault").click()
    expect(page.locator("#toast")).to_contain_text("A fault needs a status, a network, a delayMs")
    form.locator('[name="method"]').select_option("GET")
    form.locator('[name="path"]').fill(LINKS_PATH)
    form.locator('[name="status"]').fill("503")
    form.get_by_role("button", name="Add fault").click()
    expect(page.locator("#faults li.fault")).to_have_count(1)
    expect(page.locator("#faults li.fault")).to_contain_text("503")
    assert http.get(LINKS_PATH, headers=sandbox).status_code == 503
    expect(rows.first.locator(".status")).to_have_text("503")
    expect(page.locator("#faults li.fault")).to_have_count(0)  # used up
    form.get_by_role("button", name="Add fault").click()
    expect(page.locator("#faults li.fault")).to_have_count(1)
    page.get_by_role("button", name="Clear faults").click()
    expect(page.locator("#faults")).to_have_text("No faults pending.")
    assert http.get(f"{CONTROL}/faults").json() == {"faults": []}

    # Network faults from the form: listed with what they do; a client meets one; its row says so.
    form.locator('[name="status"]').fill("")
    form.locator('[name="network"]').select_option("dribble")
    form.locator('[name="dribbleMs"]').fill("200")
    form.get_by_role("button", name="Add fault").click()
    expect(page.locator("#faults li.fault")).to_contain_text("dribble over 200 ms")
    page.get_by_role("button", name="Clear faults").click()
    form.locator('[name="dribbleMs"]').fill("")
    form.locator('[name="network"]').select_option("reset")
    form.get_by_role("button", name="Add fault").click()
    expect(page.locator("#faults li.fault")).to_contain_text("network reset")
    assert http.get(f"{CONTROL}/faults").json()["faults"][0]["network"] == "reset"
    with pytest.raises(httpx.ReadError):
        http.get(LINKS_PATH, headers=sandbox)
    expect(rows.first.locator(".status")).to_have_text("reset")
    expect(rows.first).to_contain_text("Injected (fault): network reset")
    page.select_option("#filter-status", "faulted")
    expect(shown).to_have_count(2)  # the 503 and the reset
    page.select_option("#filter-status", "")

    # Links: the API's filters, sorts and pagination.
    query = {"q": "an", "hasVisits": "true", "sortBy": "clicks", "sortOrder": "asc", "limit": 10}
    page.fill("#links-q", "an")
    page.select_option("#links-has-visits", "true")
    page.select_option("#links-sort-by", "clicks")
    page.select_option("#links-sort-order", "asc")
    page.select_option("#links-limit", "10")
    link_ids = page.locator("#links-rows li.link")
    for offset in (0, 10):
        expected = http.get(f"{CONTROL}/links", params={**query, "offset": offset}).json()
        wanted = [link["id"] for link in expected["data"]]
        assert wanted, expected
        expect(link_ids).to_have_count(len(wanted))
        for index, link_id in enumerate(wanted):
            expect(link_ids.nth(index)).to_have_attribute("data-link-id", link_id)
        total = expected["pagination"]["total"]
        expect(page.locator("#links-range")).to_have_text(
            f"{offset + 1}\u2013{offset + len(wanted)} of {total}"
        )
        if offset == 0:
            assert expected["pagination"]["hasMore"]
            page.click("#links-next")
    page.fill("#links-q", "x" * 201)
    expect(page.locator("#links-error")).to_contain_text("q")
    page.fill("#links-q", "")
    page.select_option("#links-has-visits", "")

    # A live workspace's links, and its quota.
    live = _bearer(http, LIVE_CLIENT_ID, LIVE_SECRET)
    created = _create_live(http, live, "Live one", "live-one")
    quota = page.locator(f'#state-quota [data-workspace="{LIVE_WORKSPACE}"] .meter-value')
    expect(quota).to_have_text("1 / 100")
    page.select_option("#links-workspace", LIVE_WORKSPACE)
    expect(link_ids).to_have_count(1)
    expect(link_ids.first).to_have_attribute("data-link-id", created.json()["id"])
    expect(link_ids.first.locator("img.qr")).to_be_visible()

    # Reset, from the page: journal, quota and live links back to the start.
    page.get_by_role("button", name="Reset").click()
    expect(rows).to_have_count(0)
    expect(page.locator("#requests-empty")).to_be_visible()
    expect(quota).to_have_text("0 / 100")
    expect(link_ids).to_have_count(0)
    expect(page.locator("#links-empty")).to_be_visible()
    assert _journal(http) == []


def test_asks_for_the_control_token(browser: Any) -> None:
    expect = _expect()
    with serve(Settings(control_token="inspector-token")) as server:
        tab = Session(browser, server)
        try:
            page = tab.open()
            expect(page.locator("#auth")).to_be_visible()
            expect(page.locator("#connection-text")).to_have_text("Token needed")
            page.fill("#auth-token", "inspector-token")
            page.get_by_role("button", name="Connect").click()
            expect(page.locator("#auth")).to_be_hidden()
            expect(page.locator("#connection-text")).to_have_text("Live")
            expect(page.locator("#links-rows li.link")).to_have_count(25)
            # and from the address, once: `#token=…` (then dropped from the address)
            fresh = tab.context.new_page()
            fresh.goto(f"{server.url}{UI}#token=inspector-token")
            expect(fresh.locator("#connection-text")).to_have_text("Live")
            assert "token" not in fresh.url
        finally:
            tab.close()


# A page on another origin (another port of the loopback: another origin to the browser), as any
# site the developer visits: a cross-site form aimed at the reset (the review's finding), and a
# script that tries the control API and uses the public one.
ELSEWHERE_PAGE = """<!doctype html>
<html><head><title>Somewhere else</title></head><body>
<form id="reset-form" method="POST" action="{emulator}/_emulator/reset" target="sink"
      enctype="application/x-www-form-urlencoded"><input type="hidden" name="a" value="b"></form>
<iframe name="sink" id="sink"></iframe>
</body></html>"""
ELSEWHERE_SCRIPT = """async ([emu, clientId, clientSecret]) => {
  const out = {};
  const attempt = async (name, url, init) => {
    try {
      const response = await fetch(url, init);
      out[name] = { status: response.status, type: response.type,
                    body: response.type === "opaque" ? null : await response.text() };
    } catch (error) {
      out[name] = { error: String(error) };
    }
  };
  await attempt("journal", `${emu}/_emulator/requests?detail=1`);
  await attempt("resetJson", `${emu}/_emulator/reset`,
    { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
  await attempt("resetSimple", `${emu}/_emulator/reset`,
    { method: "POST", mode: "no-cors", headers: { "Content-Type": "text/plain" }, body: "{}" });
  await attempt("token", `${emu}/api/api-applications/token`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ clientId, clientSecret }) });
  const token = JSON.parse(out.token.body || "{}").accessToken;
  await attempt("links", `${emu}/api/api-applications/public/links?limit=1`,
    { headers: { Authorization: `Bearer ${token}` } });
  return out;
}"""


def test_a_page_elsewhere_cannot_drive_the_emulator(
    browser: Any, served: EmulatorServer, http: httpx.Client
) -> None:
    """It can neither reset the emulator (by form, by a "simple" fetch, by a JSON fetch) nor
    read its journal; the same page still calls the public API, as a frontend does."""
    live = _bearer(http, LIVE_CLIENT_ID, LIVE_SECRET)
    created = _create_live(http, live, "Keep", "keep-me")
    before = _journal(http)

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(ELSEWHERE_PAGE.replace("{emulator}", served.url))

    with ThreadedServer(Starlette(routes=[Route("/", page)]), name="elsewhere") as elsewhere:
        assert elsewhere.url != served.url
        context = browser.new_context()
        context.set_default_timeout(WAIT_MS)
        control: list[tuple[str, int]] = []

        def seen(response: Any) -> None:
            if "/_emulator/" in response.url:
                control.append((response.request.method, response.status))

        try:
            tab = context.new_page()
            tab.on("response", seen)
            tab.goto(f"{elsewhere.url}/")
            with tab.expect_response(lambda r: r.url.endswith("/_emulator/reset")) as posted:
                tab.evaluate("document.getElementById('reset-form').submit()")
            assert posted.value.status == 403
            out = tab.evaluate(ELSEWHERE_SCRIPT, [served.url, SANDBOX_CLIENT_ID, SANDBOX_SECRET])
        finally:
            context.close()

    assert "error" in out["journal"], out["journal"]  # no CORS for it: the page reads nothing
    assert "error" in out["resetJson"], out["resetJson"]  # its preflight was refused
    assert out["resetSimple"] == {"status": 0, "type": "opaque", "body": None}
    assert out["token"]["status"] == 200, out["token"]
    assert out["links"]["status"] == 200 and len(json.loads(out["links"]["body"])["data"]) == 1
    assert control and all(status == 403 for _method, status in control), control
    after = _journal(http)
    assert after[: len(before)] == before, "the journal was not cleared"
    assert [e["path"] for e in after[len(before) :]] == [TOKEN_PATH, LINKS_PATH]
    detail = http.get(f"{LINKS_PATH}/{created.json()['id']}", headers=live)
    assert detail.status_code == 200, "the live link survived"


def test_a_rebound_name_cannot_reach_the_control_api(browser: Any, served: EmulatorServer) -> None:
    """DNS rebinding: a page of the attacker's name, once that name points at the loopback, is
    same-origin with the emulator; the control API refuses that name."""
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    try:
        tab = context.new_page()
        tab.goto(f"http://{REBOUND_HOST}:{served.port}/openapi.json")
        out = tab.evaluate(
            """async () => {
              const journal = await fetch("/_emulator/requests");
              const reset = await fetch("/_emulator/reset",
                { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
              return [journal.status, (await journal.json()).error.code,
                      reset.status, (await reset.json()).error.code];
            }"""
        )
    finally:
        context.close()
    assert out == [403, "host_refused", 403, "host_refused"]


PROXY_SCREENSHOT = SCREENSHOT.with_name("proxy.png")


def test_the_proxys_differences_in_groups_in_rows_and_side_by_side(
    browser: Any, tmp_path: Path
) -> None:
    """Under `proxy`, in front of a target that renamed a field: the groups view has one group
    with its count; the journal rows with differences are marked; a row's detail shows the
    target's answer, the emulator's and the contract's verdict side by side; Clear empties the
    groups. Makes the README's picture of it (docs/proxy.png)."""
    from drift_proxy import AlteringProxy, rename_field

    from emulator.app import create_app
    from emulator.proxy.app import create_proxy_app
    from emulator.testing import ThreadedServer

    expect = _expect()
    with (
        ThreadedServer(create_app(Settings()), name="ui-target") as target,
        AlteringProxy(target.url, rename_field("hasVisits", "visited")) as altering,
        ThreadedServer(
            create_proxy_app(Settings(), altering.url), name="ui-proxy", date_header=False
        ) as proxy,
        httpx.Client(base_url=proxy.url, timeout=10) as http,
    ):
        tab = Session(browser, proxy)  # type: ignore[arg-type]
        try:
            page = tab.open()
            expect(page.locator("#checks")).to_be_visible()
            expect(page.locator("#checks-empty")).to_be_visible()
            sandbox = _bearer(http, SANDBOX_CLIENT_ID, SANDBOX_SECRET)
            for query in ("limit=5", "sortBy=title&limit=5", "q=launch"):
                listed = http.get(f"{LINKS_PATH}?{query}", headers=sandbox)
                assert listed.headers["x-emulator-check"].startswith("differences=1; entry=")
            groups = page.locator("#checks-rows tr")
            expect(groups).to_have_count(1)
            expect(groups.first.locator("td.where")).to_have_text(
                "body $.data[*].hasVisits → visited"
            )
            expect(groups.first.locator("td.count-cell")).to_have_text("3")
            expect(page.locator("#checks-summary")).to_contain_text(
                "4 exchanges with " + altering.url
            )
            marked = page.locator("#requests-rows tr.has-differences")
            expect(marked).to_have_count(3)
            expect(marked.first.locator(".check-badge")).to_have_text("Δ 1")
            expect(marked.first.locator("td.app")).to_have_text(SANDBOX_CLIENT_ID)
            expect(page.locator("#requests-rows tr:not(.has-differences)")).to_have_count(1)
            shot = (
                PROXY_SCREENSHOT
                if os.environ.get("EMULATOR_UPDATE_SCREENSHOT") == "1"
                else tmp_path / "proxy.png"
            )
            page.mouse.move(0, 0)
            page.screenshot(path=str(shot))

            # The group's first entry opens that exchange, with the three answers side by side.
            groups.first.locator("button[data-sequence]").first.click()
            check = page.locator("#request-check")
            expect(check).to_be_visible()
            expect(page.locator("#check-title")).to_have_text("Check: 1 difference")
            expect(page.locator("#check-found li")).to_contain_text(
                "body $.data[*].hasVisits → visited"
            )
            expect(page.locator("#check-target-body")).to_contain_text('"visited"')
            expect(page.locator("#check-emulator-body")).to_contain_text('"hasVisits"')
            expect(page.locator("#check-emulator-status")).to_have_text("200 (sandbox)")
            expect(page.locator("#check-response")).to_contain_text("body $.data[*].visited")
            expect(page.locator("#check-request")).to_have_text("conforms")
            page.locator("#request-dialog [data-close]").click()

            page.locator("#clear-checks").click()
            expect(groups).to_have_count(0)
            expect(page.locator("#checks-empty")).to_be_visible()
        finally:
            tab.close()


def test_serve_shows_no_differences_view(session: Session) -> None:
    page = session.open()
    expect = _expect()
    expect(page.locator("#connection")).to_have_class(re.compile(r"\blive\b"))
    expect(page.locator("#checks")).to_be_hidden()


# A frontend on another origin asking for faults on its own requests (X-Emulator-Fault), as a
# developer does to show an error screen without the control API (which that page cannot reach).
FAULT_HEADER_SCRIPT = """async ([emu, clientId, clientSecret]) => {
  const exchange = await fetch(`${emu}/api/api-applications/token`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ clientId, clientSecret }) });
  const auth = { Authorization: `Bearer ${(await exchange.json()).accessToken}` };
  const call = async (fault) => {
    let response;
    try {
      response = await fetch(`${emu}/api/api-applications/public/links?limit=1`,
        { headers: { ...auth, "X-Emulator-Fault": fault } });
    } catch (error) {
      return { fetchFailed: error.name };
    }
    const seen = { status: response.status, retryAfter: response.headers.get("Retry-After"),
                   limit: response.headers.get("X-RateLimit-Limit") };
    try {
      const body = await response.json();
      const code = body.error ? body.error.code : null;
      return { ...seen, code, links: (body.data || []).length };
    } catch (error) {
      return { ...seen, bodyFailed: error.name };
    }
  };
  const out = {};
  for (const fault of ["503", "429; retry-after=20", "network=reset", "network=empty",
                       "network=garbage", "network=truncated", "network=dribble; dribble-ms=200"]) {
    out[fault] = await call(fault);
  }
  return out;
}"""


def test_a_page_elsewhere_asks_for_its_own_faults(
    browser: Any, served: EmulatorServer, http: httpx.Client
) -> None:
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>A frontend</title>")

    with ThreadedServer(Starlette(routes=[Route("/", page)]), name="frontend") as elsewhere:
        context = browser.new_context()
        context.set_default_timeout(WAIT_MS)
        try:
            tab = context.new_page()
            tab.goto(f"{elsewhere.url}/")
            out = tab.evaluate(FAULT_HEADER_SCRIPT, [served.url, SANDBOX_CLIENT_ID, SANDBOX_SECRET])
        finally:
            context.close()

    assert out["503"] == {
        "status": 503,
        "retryAfter": None,
        "limit": None,
        "code": "injected_fault",
        "links": 0,
    }
    assert out["429; retry-after=20"] == {
        "status": 429,
        "retryAfter": "20",
        "limit": str(SANDBOX_LIMIT),
        "code": "injected_fault",
        "links": 0,
    }
    for kind in ("reset", "empty", "garbage"):
        assert out[f"network={kind}"] == {"fetchFailed": "TypeError"}, kind
    assert out["network=truncated"] == {
        "status": 200,
        "retryAfter": None,
        "limit": str(SANDBOX_LIMIT),
        "bodyFailed": "TypeError",
    }
    assert out["network=dribble; dribble-ms=200"]["links"] == 1
    faulted = [e["fault"] for e in _journal(http) if e["path"] == LINKS_PATH]
    assert faulted and all(f is not None and f["source"] == "header" for f in faulted)


def test_scenarios_from_the_menu_export_and_the_added_delay(
    session: Session, http: httpx.Client
) -> None:
    import yaml

    expect = _expect()
    page = session.open()
    name = page.locator("#scenario-name")
    expect(name).to_have_text("none")
    shipped = http.get(f"{CONTROL}/scenarios").json()["shipped"]
    expect(page.locator("#scenario-select option")).to_have_count(1 + len(shipped))

    # The menu: the emulator is reset and the scenario loaded; the page follows.
    page.select_option("#scenario-select", "busy-link")
    expect(page.locator("#toast")).to_contain_text("Scenario busy-link loaded.")
    expect(name).to_have_text("busy-link")
    assert http.get(f"{CONTROL}/scenarios").json()["loaded"] == "busy-link"
    page.select_option("#links-workspace", LIVE_WORKSPACE)
    expect(page.locator("#links-rows li.link")).to_have_count(1)

    # Export: a YAML file of the state, which loads back into an emulator.
    with page.expect_download(timeout=WAIT_MS) as download:
        page.get_by_role("button", name="Export scenario").click()
    saved = Path(download.value.path()).read_text(encoding="utf-8")
    assert download.value.suggested_filename.endswith(".yaml")
    document = yaml.safe_load(saved)
    assert [link["id"] for link in document["links"]] == ["lnk_busy_spring"]
    loaded = http.post(
        f"{CONTROL}/scenario", content=saved.encode(), headers={"Content-Type": "application/yaml"}
    )
    assert loaded.status_code == 200, loaded.text
    expect(name).to_have_text("none")  # an export carries no name

    # A latency profile's delay, shown beside the request's latency.
    scenario = {"version": 1, "name": "slow", "latency": {"default": {"fixed": 50}}}
    assert http.post(f"{CONTROL}/scenario", json=scenario).status_code == 200
    expect(name).to_have_text("slow")
    _bearer(http, SANDBOX_CLIENT_ID, SANDBOX_SECRET)
    row = page.locator("#requests-rows tr").first
    expect(row.locator(".added")).to_have_text("+50")
    row.click()
    expect(page.locator("#request-meta")).to_contain_text("50 ms (latency profile and faults)")
