"""Short links: `GET /{slug}` redirects to the destination and records a visit on the emulator's
clock; every analytics field, `clicks`, `hasVisits` and the lists follow. Bulk visits through the
control API. In-process, with `--short-base` pointing at the emulator itself, and once served.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import (
    CONTROL,
    FROZEN_NOW,
    LINKS_PATH,
    TOKEN_PATH,
    advance_clock,
    assert_error,
    auth_headers,
    emulator_client,
    register_fast_app,
    set_clock,
)
from invariants import assert_wire_link_consistent
from starlette.testclient import TestClient

from emulator.settings import Settings

BASE = "http://testserver"  # the TestClient's own address
PERSONAL = ("lv_demo_personal", "lvs_demo_personal_secret")
OTHER = ("lv_demo_other", "lvs_demo_other_secret")
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1"
IPAD = "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) Safari/604.1"
ANDROID_PHONE = "Mozilla/5.0 (Linux; Android 14; Pixel 8) Chrome/120.0 Mobile Safari/537.36"
ANDROID_TABLET = "Mozilla/5.0 (Linux; Android 14; SM-X710) Chrome/120.0 Safari/537.36"
DESKTOP = "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0"


@pytest.fixture
def short() -> Iterator[TestClient]:
    """An emulator whose shortUrl base is its own address, clock frozen at FROZEN_NOW."""
    with emulator_client(Settings(short_base=BASE)) as client:
        set_clock(client, FROZEN_NOW)
        yield client


def _live(client: TestClient, slug: str, destination: str = "https://example.com/dest?a=1") -> Any:
    headers = auth_headers(client, *PERSONAL)
    response = client.post(
        LINKS_PATH,
        json={"title": f"Short {slug}", "destination": destination, "slug": slug},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return response.json(), headers


def _follow(client: TestClient, short_url: str, **headers: str) -> Any:
    """Request the short URL as a browser would, without following the redirect."""
    assert short_url.startswith(BASE + "/"), short_url
    return client.get(urlsplit(short_url).path, headers=headers, follow_redirects=False)


def _detail(client: TestClient, headers: dict[str, str], link_id: str) -> dict[str, Any]:
    response = client.get(f"{LINKS_PATH}/{link_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert_wire_link_consistent(body)
    return body


def test_short_url_redirects_and_records_one_visit(short: TestClient) -> None:
    link, headers = _live(short, "go-here")
    assert link["shortUrl"] == f"{BASE}/go-here"
    before = _detail(short, headers, link["id"])
    assert before["clicks"] == 0 and before["analytics"]["lastVisitedAt"] is None
    advance_clock(short, 90)
    response = _follow(
        short,
        link["shortUrl"],
        **{
            "User-Agent": IPHONE,
            "Referer": "https://News.Example.org/item?id=1",
            "CF-IPCountry": "de",
        },
    )
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.com/dest?a=1"
    assert response.headers["cache-control"] == "no-store"
    after = _detail(short, headers, link["id"])
    assert after["clicks"] == 1 and after["hasVisits"] is True
    assert after["updatedAt"] == before["updatedAt"], "a visit is not an edit"
    assert after["analytics"] == {
        "totalClicks": 1,
        "uniqueVisitors": 1,
        "lastVisitedAt": "2026-01-01T00:01:30Z",
        "clicksByDay": [{"date": "2026-01-01", "clicks": 1}],
        "topCountries": [{"country": "DE", "clicks": 1}],
        "topReferrers": [{"referrer": "news.example.org", "clicks": 1}],
        "devices": {"desktop": 0, "mobile": 1, "tablet": 0},
    }
    listed = short.get(LINKS_PATH, params={"hasVisits": "true"}, headers=headers).json()
    assert [(item["id"], item["clicks"], item["hasVisits"]) for item in listed["data"]] == [
        (link["id"], 1, True)
    ]
    assert (
        short.get(LINKS_PATH, params={"hasVisits": "false"}, headers=headers).json()["data"] == []
    )


@pytest.mark.parametrize(
    ("headers", "country"),
    [
        ({}, "US"),
        ({"CF-IPCountry": "jp"}, "JP"),
        ({"X-Country": "FR"}, "FR"),
        ({"X-AppEngine-Country": "BR"}, "BR"),
        ({"CF-IPCountry": "IN", "X-Country": "FR"}, "IN"),
        ({"CF-IPCountry": "XX1", "X-Country": "NL"}, "NL"),
        ({"CF-IPCountry": "Germany"}, "US"),
        ({"X-Country": ""}, "US"),
    ],
    ids=repr,
)
def test_country_comes_from_a_header_or_the_default(
    short: TestClient, headers: dict[str, str], country: str
) -> None:
    link, auth = _live(short, "by-country")
    assert _follow(short, link["shortUrl"], **headers).status_code == 302
    top = _detail(short, auth, link["id"])["analytics"]["topCountries"]
    assert top == [{"country": country, "clicks": 1}]


@pytest.mark.parametrize(
    ("referer", "referrer"),
    [
        (None, "direct"),
        ("", "direct"),
        ("https://www.google.com/search?q=x", "www.google.com"),
        ("http://T.CO/abc", "t.co"),
        ("not a url", "direct"),
        ("http://[::1", "direct"),
    ],
    ids=repr,
)
def test_referrer_is_the_referring_host(
    short: TestClient, referer: str | None, referrer: str
) -> None:
    link, auth = _live(short, "by-referrer")
    headers = {} if referer is None else {"Referer": referer}
    assert _follow(short, link["shortUrl"], **headers).status_code == 302
    top = _detail(short, auth, link["id"])["analytics"]["topReferrers"]
    assert top == [{"referrer": referrer, "clicks": 1}]


@pytest.mark.parametrize(
    ("agent", "device"),
    [
        (IPHONE, "mobile"),
        (IPAD, "tablet"),
        (ANDROID_PHONE, "mobile"),
        (ANDROID_TABLET, "tablet"),
        (DESKTOP, "desktop"),
        ("", "desktop"),
        ("curl/8.5", "desktop"),
    ],
    ids=["iphone", "ipad", "android-phone", "android-tablet", "desktop", "none", "curl"],
)
def test_device_comes_from_the_user_agent(short: TestClient, agent: str, device: str) -> None:
    link, auth = _live(short, "by-device")
    assert _follow(short, link["shortUrl"], **{"User-Agent": agent}).status_code == 302
    devices = _detail(short, auth, link["id"])["analytics"]["devices"]
    assert devices == {"desktop": 0, "mobile": 0, "tablet": 0} | {device: 1}


def test_many_visits_over_days_keep_every_field_consistent(short: TestClient) -> None:
    link, auth = _live(short, "busy-link")
    quiet, _ = _live(short, "quiet-link")
    plan = [
        (IPHONE, "https://t.co/x", "IN"),
        (IPHONE, "https://t.co/y", "IN"),
        (DESKTOP, "", "US"),
        (IPAD, "https://google.com/", "DE"),
        (DESKTOP, "https://t.co/z", "IN"),
    ]
    for day, (agent, referer, country) in enumerate(plan):
        for _ in range(day + 1):
            headers = {"User-Agent": agent, "X-Country": country}
            if referer:
                headers["Referer"] = referer
            assert _follow(short, link["shortUrl"], **headers).status_code == 302
        advance_clock(short, 86400)
    auth = auth_headers(short, *PERSONAL)  # the first token expired days ago
    body = _detail(short, auth, link["id"])
    a = body["analytics"]
    assert body["clicks"] == a["totalClicks"] == 15
    assert a["uniqueVisitors"] == 3, "visitors are told apart by client and user agent"
    assert [day["clicks"] for day in a["clicksByDay"]] == [1, 2, 3, 4, 5]
    assert a["clicksByDay"][0]["date"] == "2026-01-01"
    assert a["lastVisitedAt"] == "2026-01-05T00:00:00Z"
    assert a["topCountries"] == [
        {"country": "IN", "clicks": 8},
        {"country": "DE", "clicks": 4},
        {"country": "US", "clicks": 3},
    ]
    assert a["topReferrers"] == [
        {"referrer": "t.co", "clicks": 8},
        {"referrer": "google.com", "clicks": 4},
        {"referrer": "direct", "clicks": 3},
    ]
    assert a["devices"] == {"desktop": 8, "mobile": 3, "tablet": 4}
    by_clicks = short.get(LINKS_PATH, params={"sortBy": "clicks"}, headers=auth).json()["data"]
    assert [item["slug"] for item in by_clicks] == ["busy-link", "quiet-link"]
    assert _detail(short, auth, quiet["id"])["clicks"] == 0


def test_unknown_slug_is_404(short: TestClient) -> None:
    response = short.get("/no-such-slug", follow_redirects=False)
    assert_error(response, 404, "link_not_found")
    assert_error(short.get("/NOT_A_SLUG", follow_redirects=False), 404, "not_found")
    assert_error(short.get("/a", follow_redirects=False), 404, "not_found")


def test_a_sample_slug_redirects_and_records_nothing(short: TestClient) -> None:
    sandbox = register_fast_app(short)
    sample = short.get(LINKS_PATH, params={"limit": 1}, headers=sandbox).json()["data"][0]
    detail_before = short.get(f"{LINKS_PATH}/{sample['id']}", headers=sandbox).json()
    response = _follow(short, sample["shortUrl"])
    assert response.status_code == 302 and response.headers["location"] == sample["destination"]
    detail_after = short.get(f"{LINKS_PATH}/{sample['id']}", headers=sandbox).json()
    assert detail_after == detail_before


def test_head_redirects_without_counting_a_visit(short: TestClient) -> None:
    link, auth = _live(short, "head-only")
    response = short.head("/head-only", follow_redirects=False)
    assert response.status_code == 302
    assert _detail(short, auth, link["id"])["clicks"] == 0


def test_short_links_are_public_whatever_the_workspace(short: TestClient) -> None:
    link, auth = _live(short, "public-link")
    assert _follow(short, link["shortUrl"]).status_code == 302
    stranger = auth_headers(short, *OTHER)
    assert_error(short.get(f"{LINKS_PATH}/{link['id']}", headers=stranger), 404, "link_not_found")
    assert _detail(short, auth, link["id"])["clicks"] == 1


def test_short_links_do_not_use_the_rate_window(short: TestClient) -> None:
    link, auth = _live(short, "unmetered")
    first = short.get(LINKS_PATH, headers=auth).headers["X-RateLimit-Remaining"]
    for _ in range(70):
        assert _follow(short, link["shortUrl"]).status_code == 302
    second = short.get(LINKS_PATH, headers=auth).headers["X-RateLimit-Remaining"]
    assert int(second) == int(first) - 1
    assert _detail(short, auth, link["id"])["clicks"] == 70


# --- bulk visits through the control API -----------------------------------------------------


def test_bulk_visits_record_every_field(short: TestClient) -> None:
    link, auth = _live(short, "bulk-link")
    bodies = [
        {"slug": "bulk-link", "count": 3},
        {"slug": "bulk-link", "count": 2, "country": "JP", "referrer": "t.co", "device": "tablet"},
        {"slug": "bulk-link", "count": 4, "visitor": "same-person", "at": "2026-01-03T10:00:00Z"},
        {"slug": "bulk-link", "device": "mobile", "at": "2026-01-02T23:59:59+00:00"},
    ]
    for body in bodies:
        response = short.post(f"{CONTROL}/visits", json=body)
        assert response.status_code == 201, response.text
        assert response.json() == {"recorded": body.get("count", 1), "linkId": link["id"]}
    a = _detail(short, auth, link["id"])["analytics"]
    assert a["totalClicks"] == 10
    assert a["uniqueVisitors"] == 7, "3 + 2 + 1 new visitors, and one named one"
    assert a["clicksByDay"] == [
        {"date": "2026-01-01", "clicks": 5},
        {"date": "2026-01-02", "clicks": 1},
        {"date": "2026-01-03", "clicks": 4},
    ]
    assert a["lastVisitedAt"] == "2026-01-03T10:00:00Z"
    assert a["topCountries"] == [{"country": "US", "clicks": 8}, {"country": "JP", "clicks": 2}]
    assert a["topReferrers"] == [
        {"referrer": "direct", "clicks": 8},
        {"referrer": "t.co", "clicks": 2},
    ]
    assert a["devices"] == {"desktop": 7, "mobile": 1, "tablet": 2}


def test_bulk_visits_mix_with_real_visits(short: TestClient) -> None:
    link, auth = _live(short, "mixed-link")
    assert _follow(short, link["shortUrl"], **{"User-Agent": DESKTOP}).status_code == 302
    assert (
        short.post(f"{CONTROL}/visits", json={"slug": "mixed-link", "count": 2}).status_code == 201
    )
    assert _follow(short, link["shortUrl"], **{"User-Agent": DESKTOP}).status_code == 302
    assert (
        short.post(f"{CONTROL}/visits", json={"slug": "mixed-link", "count": 2}).status_code == 201
    )
    a = _detail(short, auth, link["id"])["analytics"]
    assert (a["totalClicks"], a["uniqueVisitors"]) == (6, 5)


def test_a_large_bulk_is_one_call(short: TestClient) -> None:
    link, auth = _live(short, "large-bulk")
    response = short.post(f"{CONTROL}/visits", json={"slug": "large-bulk", "count": 100_000})
    assert response.status_code == 201 and response.json()["recorded"] == 100_000
    body = _detail(short, auth, link["id"])
    assert body["clicks"] == body["analytics"]["uniqueVisitors"] == 100_000


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 422, "slug"),
        ({"slug": 5}, 422, "slug"),
        ({"slug": "bulk-target", "count": 0}, 422, "count"),
        ({"slug": "bulk-target", "count": 100_001}, 422, "count"),
        ({"slug": "bulk-target", "count": "3"}, 400, "count"),
        ({"slug": "bulk-target", "count": True}, 400, "count"),
        ({"slug": "bulk-target", "country": "usa"}, 422, "country"),
        ({"slug": "bulk-target", "country": 1}, 400, "country"),
        ({"slug": "bulk-target", "device": "watch"}, 422, "device"),
        ({"slug": "bulk-target", "at": "yesterday"}, 422, "at"),
        ({"slug": "bulk-target", "visitor": 7}, 400, "visitor"),
    ],
    ids=repr,
)
def test_bad_bulk_bodies_are_4xx_and_record_nothing(
    short: TestClient, body: dict[str, Any], status: int, field: str
) -> None:
    link, auth = _live(short, "bulk-target")
    response = short.post(f"{CONTROL}/visits", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"].get("field") == field
    assert _detail(short, auth, link["id"])["clicks"] == 0


def test_bulk_visits_to_an_unknown_or_sample_slug_are_404(short: TestClient) -> None:
    assert_error(
        short.post(f"{CONTROL}/visits", json={"slug": "nobody-here"}), 404, "link_not_found"
    )
    sandbox = register_fast_app(short)
    sample = short.get(LINKS_PATH, params={"limit": 1}, headers=sandbox).json()["data"][0]
    response = short.post(f"{CONTROL}/visits", json={"slug": sample["slug"]})
    assert_error(response, 404, "link_not_found")


@pytest.mark.parametrize(
    "at",
    [
        "2025-12-31T23:59:59Z",
        "2020-01-01T00:00:00Z",
        "1970-01-01T00:00:00Z",
        "0001-01-01T00:00:00Z",
    ],
)
def test_bulk_visits_before_the_link_existed_are_refused(short: TestClient, at: str) -> None:
    link, auth = _live(short, "early-bird")  # created at FROZEN_NOW
    response = short.post(f"{CONTROL}/visits", json={"slug": "early-bird", "at": at})
    assert_error(response, 422, "validation_failed", "at")
    assert _detail(short, auth, link["id"])["clicks"] == 0


def test_bulk_visits_at_the_moment_of_creation_are_recorded(short: TestClient) -> None:
    link, auth = _live(short, "on-time")
    advance_clock(short, 3 * 86400)
    body = {"slug": "on-time", "at": FROZEN_NOW, "count": 2}
    assert short.post(f"{CONTROL}/visits", json=body).status_code == 201
    auth = auth_headers(short, *PERSONAL)  # the first token expired with the clock's move
    a = _detail(short, auth, link["id"])["analytics"]
    assert a["lastVisitedAt"] == FROZEN_NOW
    assert a["clicksByDay"] == [{"date": "2026-01-01", "clicks": 2}]


def test_following_a_link_with_the_clock_set_back_keeps_analytics_consistent(
    short: TestClient,
) -> None:
    link, auth = _live(short, "time-travel")
    set_clock(short, "2025-06-01T00:00:00Z")
    assert _follow(short, link["shortUrl"]).status_code == 302
    set_clock(short, FROZEN_NOW)
    _detail(short, auth, link["id"])  # assert_wire_link_consistent


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_bulk_visits_with_an_unrepresentable_time_are_422(short: TestClient, at: str) -> None:
    _live(short, "far-out")
    response = short.post(f"{CONTROL}/visits", json={"slug": "far-out", "at": at})
    assert_error(response, 422, "validation_failed", "at")


# --- served, with --short-base at the server's own address ------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_served_short_url_is_followed_by_a_real_client(tmp_path: Any) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMULATOR_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", "--port", str(port), "--log-level", "warning",
         "--short-base", base, "--db", str(tmp_path / "short.db")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=base, timeout=5.0) as client:
            deadline = time.monotonic() + 20
            while True:
                assert process.poll() is None, process.communicate(timeout=10)[1].decode()
                try:
                    if client.get("/_emulator/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server not healthy in 20 s"
                time.sleep(0.05)  # polling a subprocess for readiness
            token = client.post(
                TOKEN_PATH, json={"clientId": PERSONAL[0], "clientSecret": PERSONAL[1]}
            ).json()["accessToken"]
            auth = {"Authorization": f"Bearer {token}"}
            made = client.post(
                LINKS_PATH,
                json={"title": "Served", "destination": "https://example.org/x", "slug": "served"},
                headers=auth,
            )
            assert made.status_code == 201, made.text
            short_url = made.json()["shortUrl"]
            assert short_url == f"{base}/served"
            with httpx.Client(timeout=5.0, follow_redirects=False) as browser:
                response = browser.get(short_url, headers={"User-Agent": IPHONE, "X-Country": "GB"})
            assert response.status_code == 302
            assert response.headers["location"] == "https://example.org/x"
            detail = client.get(f"{LINKS_PATH}/{made.json()['id']}", headers=auth).json()
            assert_wire_link_consistent(detail)
            assert detail["clicks"] == 1
            assert detail["analytics"]["topCountries"] == [{"country": "GB", "clicks": 1}]
            assert detail["analytics"]["devices"]["mobile"] == 1
    finally:
        process.kill()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()
