"""A hypothesis state machine over the live API: apps of several workspaces (one company with two
apps, two personal ones, one with a tiny quota) create links, follow short links, record bulk
visits, move the clock, and read lists and details. Every answer is checked against a plain
in-memory model: nothing leaks between workspaces, company apps agree, counts and quotas are exact,
slugs are unique everywhere, and every analytics field is exactly what the recorded visits say.

In-process through Starlette's TestClient; the emulator is reset at the start of every example.
`LIVE_STATEFUL_EXAMPLES` raises the example count for a deeper local run (CI: 200).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from conftest import (
    CONTROL,
    FROZEN_EPOCH,
    FROZEN_NOW,
    HIGH_LIMIT,
    LINKS_PATH,
    TOKEN_PATH,
    client_settings,
    reset,
)
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from invariants import assert_wire_link_consistent
from starlette.testclient import TestClient

from emulator.app import create_app
from emulator.models import SLUG_PATTERN
from emulator.settings import Settings

EXAMPLES = int(os.environ.get("LIVE_STATEFUL_EXAMPLES", "200"))
BASE = "http://testserver"
SANDBOX = ("st_sandbox", "st_sandbox_secret")  # registered: no 15/min cap in the way


@dataclass(frozen=True)
class App:
    client_id: str
    workspace: str
    kind: str
    quota: int


APPS = (
    App("st_solo", "ws_st_solo", "personal", 3),  # a tiny quota: exhausted often
    App("st_co_a", "ws_st_co", "company", 6),
    App("st_co_b", "ws_st_co", "company", 6),
    App("st_other", "ws_st_other", "personal", 40),
)
QUOTAS = {app.workspace: app.quota for app in APPS}
COMPANY = (APPS[1], APPS[2])

TITLES = (
    "Launch page",
    "launch PAGE",
    "Straße",
    "STRASSE sale",
    "Été 🎉",
    "été",
    "Zed",
    "a",
    "Ärger",
)
NEEDLES = ("launch", "PAGE", "strasse", "ß", "été", "st-", "example", "b.example/p", "zz", "ss")
SLUGS = ("st-alpha", "st-beta", "st-gamma", "st-delta", "st-zeta", "st-theta")  # collide often
DESTINATIONS = tuple(f"https://{h}.example/p{n}" for h in "ab" for n in range(3))
AGENTS = {
    "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0": "desktop",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile/15E148": "mobile",
    "Mozilla/5.0 (iPad; CPU OS 17_0) Safari/604.1": "tablet",
    "Mozilla/5.0 (Linux; Android 14; SM-X710) Chrome/120.0 Safari/537.36": "tablet",
    "": "desktop",
}
COUNTRY_HEADERS = {
    None: "US",
    ("CF-IPCountry", "de"): "DE",
    ("X-Country", "JP"): "JP",
    ("X-Country", "bad!"): "US",
}
REFERERS = {None: "direct", "https://t.co/x": "t.co", "http://Google.com/s": "google.com"}
ADVANCES = (1, 61, 3599, 86_400, 3 * 86_400)
SORT_FIELDS = {"createdAt": "created", "updatedAt": "created", "title": "title", "clicks": "clicks"}


def _stamp(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ModelLink:
    id: str
    workspace: str
    title: str
    slug: str
    destination: str
    created: int
    visits: list[tuple[int, str, str, str, str]] = field(default_factory=list)

    @property
    def clicks(self) -> int:
        return len(self.visits)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "slug": self.slug,
            "destination": self.destination,
            "shortUrl": f"{BASE}/{self.slug}",
            "clicks": self.clicks,
            "hasVisits": self.clicks > 0,
            "createdAt": _stamp(self.created),
            "updatedAt": _stamp(self.created),
        }

    def analytics(self) -> dict[str, Any]:
        visits = self.visits

        def top(index: int, label: str) -> list[dict[str, Any]]:
            counted = Counter(visit[index] for visit in visits)
            ranked = sorted(counted.items(), key=lambda item: (-item[1], item[0]))[:10]
            return [{label: name, "clicks": n} for name, n in ranked]

        days = Counter(_stamp(visit[0])[:10] for visit in visits)
        devices = Counter(visit[3] for visit in visits)
        return {
            "totalClicks": len(visits),
            "uniqueVisitors": len({visit[4] for visit in visits}),
            "lastVisitedAt": _stamp(max(v[0] for v in visits)) if visits else None,
            "clicksByDay": [{"date": d, "clicks": n} for d, n in sorted(days.items())],
            "topCountries": top(1, "country"),
            "topReferrers": top(2, "referrer"),
            "devices": {name: devices[name] for name in ("desktop", "mobile", "tablet")},
        }

    def sort_value(self, sort_by: str) -> Any:
        if sort_by == "title":
            return self.title.casefold()
        if sort_by == "clicks":
            return self.clicks
        return self.created

    def matches(self, q: str | None, has_visits: str | None) -> bool:
        if has_visits is not None and (self.clicks > 0) is not (has_visits == "true"):
            return False
        if not q:
            return True
        needle = q.casefold()
        return any(needle in text.casefold() for text in (self.title, self.slug, self.destination))


titles = st.sampled_from(TITLES) | st.text(
    st.characters(exclude_categories=("Cs",)), min_size=1, max_size=24
)
apps = st.sampled_from(APPS)


# What the runs exercised, tallied across examples and checked at the end (so a change that made
# the machine stop reaching quotas or hidden links would fail, not pass quietly).
OUTCOMES: Counter[str] = Counter()


class LiveWorkspaces(RuleBasedStateMachine):
    client: ClassVar[TestClient]
    links = Bundle("links")

    def __init__(self) -> None:
        super().__init__()
        client = self.client
        assert reset(client).status_code == 200
        self.now = FROZEN_EPOCH
        assert client.post(f"{CONTROL}/clock", json={"now": FROZEN_NOW}).status_code == 200
        for app in APPS:
            body = {
                "clientId": app.client_id,
                "clientSecret": f"{app.client_id}_secret",
                "environment": "live",
                "workspaceId": app.workspace,
                "workspaceKind": app.kind,
                "linkQuota": app.quota,
                "rateLimitPerMinute": HIGH_LIMIT,
            }
            response = client.post(f"{CONTROL}/applications", json=body)
            assert response.status_code == 201, response.text
        sandbox = {
            "clientId": SANDBOX[0],
            "clientSecret": SANDBOX[1],
            "rateLimitPerMinute": HIGH_LIMIT,
        }
        assert client.post(f"{CONTROL}/applications", json=sandbox).status_code == 201
        self.model: dict[str, ModelLink] = {}
        self.visitor_numbers = itertools.count()
        self.headers: dict[str, dict[str, str]] = {}
        for app in APPS:
            self.headers[app.client_id] = self._token(app.client_id, f"{app.client_id}_secret")
        self.sandbox = self._token(*SANDBOX)
        self.sandbox_total = self._get(LINKS_PATH, self.sandbox).json()["pagination"]["total"]

    # --- helpers ------------------------------------------------------------------------------

    def _token(self, client_id: str, secret: str) -> dict[str, str]:
        response = self.client.post(
            TOKEN_PATH, json={"clientId": client_id, "clientSecret": secret}
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['accessToken']}"}

    def _get(self, path: str, headers: dict[str, str], **params: Any) -> Any:
        return self.client.get(path, params=params, headers=headers)

    def _count(self, workspace: str) -> int:
        return sum(1 for link in self.model.values() if link.workspace == workspace)

    def _slug_taken(self, slug: str) -> bool:
        return any(link.slug == slug for link in self.model.values())

    def _expected_page(self, app: App, params: dict[str, Any]) -> tuple[list[ModelLink], int]:
        matching = [
            link
            for link in self.model.values()
            if link.workspace == app.workspace
            and link.matches(params.get("q"), params.get("hasVisits"))
        ]
        sort_by = params["sortBy"]
        matching.sort(
            key=lambda link: (link.sort_value(sort_by), link.id),
            reverse=params["sortOrder"] == "desc",
        )
        offset, limit = params["offset"], params["limit"]
        return matching[offset : offset + limit], len(matching)

    # --- rules --------------------------------------------------------------------------------

    @rule(
        target=links,
        app=apps,
        batch=st.lists(
            st.tuples(titles, st.sampled_from(DESTINATIONS), st.none() | st.sampled_from(SLUGS)),
            min_size=1,
            max_size=3,
        ),
    )
    def create(self, app: App, batch: list[tuple[str, str, str | None]]) -> Any:
        made = [self._create(app, title, destination, slug) for title, destination, slug in batch]
        return multiple(*[link_id for link_id in made if link_id is not None])

    @rule(target=links, app=apps, slug=st.sampled_from(SLUGS))
    def create_with_a_contested_slug(self, app: App, slug: str) -> Any:
        link_id = self._create(app, "Contested", DESTINATIONS[0], slug)
        return multiple() if link_id is None else link_id

    def _create(self, app: App, title: str, destination: str, slug: str | None) -> str | None:
        """One create, checked against the model; the new link's id, or None when refused."""
        body: dict[str, Any] = {"title": title, "destination": destination}
        if slug is not None:
            body["slug"] = slug
        response = self.client.post(LINKS_PATH, json=body, headers=self.headers[app.client_id])
        full = self._count(app.workspace) >= app.quota
        taken = slug is not None and self._slug_taken(slug)
        if full or taken:
            allowed = {403} if not taken else {409} if not full else {403, 409}
            assert response.status_code in allowed, (full, taken, response.text)
            code = response.json()["error"]["code"]
            assert code == {403: "link_quota_exceeded", 409: "slug_taken"}[response.status_code]
            assert "ws_" not in response.text and "lnk_" not in response.text, "no hints"
            OUTCOMES[code] += 1
            return None
        assert response.status_code == 201, response.text
        got = response.json()
        assert got["persisted"] is True
        assert response.headers["Location"] == f"{LINKS_PATH}/{got['id']}"
        if slug is None:
            assert re.fullmatch(SLUG_PATTERN, got["slug"]) and not self._slug_taken(got["slug"])
        link = ModelLink(
            got["id"], app.workspace, title, slug or got["slug"], destination, self.now
        )
        assert got["id"] not in self.model
        expected = {**link.summary(), "analytics": link.analytics(), "persisted": True}
        got.pop("qrCodeBase64")
        assert got == expected
        self.model[link.id] = link
        OUTCOMES["created"] += 1
        return link.id

    @rule(
        link_id=links,
        agent=st.sampled_from(sorted(AGENTS)),
        country=st.sampled_from(list(COUNTRY_HEADERS)),
        referer=st.sampled_from(list(REFERERS)),
    )
    def follow_short_link(
        self, link_id: str, agent: str, country: tuple[str, str] | None, referer: str | None
    ) -> None:
        link = self.model[link_id]
        headers = {"User-Agent": agent}
        if country is not None:
            headers[country[0]] = country[1]
        if referer is not None:
            headers["Referer"] = referer
        response = self.client.get(f"/{link.slug}", headers=headers, follow_redirects=False)
        assert response.status_code == 302, response.text
        assert response.headers["location"] == link.destination
        visitor = "ua:" + hashlib.sha256(agent.encode()).hexdigest()
        link.visits.append(
            (self.now, COUNTRY_HEADERS[country], REFERERS[referer], AGENTS[agent], visitor)
        )
        OUTCOMES["short link followed"] += 1

    @rule(
        link_id=links,
        count=st.integers(1, 4),
        country=st.sampled_from(["US", "IN", "FR"]),
        device=st.sampled_from(["desktop", "mobile", "tablet"]),
        visitor=st.sampled_from([None, "alice", "bob"]),
        at_creation=st.booleans(),
    )
    def bulk_visits(
        self,
        link_id: str,
        count: int,
        country: str,
        device: str,
        visitor: str | None,
        at_creation: bool,
    ) -> None:
        link = self.model[link_id]
        body: dict[str, Any] = {"slug": link.slug, "count": count, "country": country}
        body["device"] = device
        body["referrer"] = "news.example"
        if visitor is not None:
            body["visitor"] = visitor
        at = link.created if at_creation else self.now
        if at_creation:
            body["at"] = _stamp(at)
        response = self.client.post(f"{CONTROL}/visits", json=body)
        assert response.status_code == 201, response.text
        assert response.json() == {"recorded": count, "linkId": link.id}
        for _ in range(count):
            who = f"named:{visitor}" if visitor else f"bulk:{next(self.visitor_numbers)}"
            link.visits.append((at, country, "news.example", device, who))
        OUTCOMES["bulk visits"] += 1

    @rule(seconds=st.sampled_from(ADVANCES))
    def advance_clock(self, seconds: int) -> None:
        response = self.client.post(f"{CONTROL}/clock", json={"advanceSeconds": seconds})
        assert response.status_code == 200
        self.now += seconds
        assert response.json()["epoch"] == self.now

    @rule(app=apps, link_id=links)
    def detail(self, app: App, link_id: str) -> None:
        link = self.model[link_id]
        response = self._get(f"{LINKS_PATH}/{link_id}", self.headers[app.client_id])
        if link.workspace != app.workspace:
            assert response.status_code == 404, response.text
            unknown = self._get(f"{LINKS_PATH}/lnk_ffffffffffffffff", self.headers[app.client_id])
            assert response.json() == unknown.json(), "another workspace's link looks unknown"
            OUTCOMES["hidden detail"] += 1
            return
        assert response.status_code == 200, response.text
        got = response.json()
        assert_wire_link_consistent(got)
        got.pop("qrCodeBase64")
        assert got == {**link.summary(), "analytics": link.analytics()}
        OUTCOMES["visited detail" if link.visits else "detail"] += 1

    def _check_list(self, app: App, params: dict[str, Any]) -> dict[str, Any]:
        response = self._get(LINKS_PATH, self.headers[app.client_id], **params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        page, total = self._expected_page(app, params)
        items = []
        for item in body["data"]:
            assert "analytics" not in item
            item.pop("qrCodeBase64")
            items.append(item)
        assert items == [link.summary() for link in page], params
        assert body["pagination"] == {
            "total": total,
            "limit": params["limit"],
            "offset": params["offset"],
            "hasMore": params["offset"] + len(page) < total,
        }
        OUTCOMES["non-empty list" if page else "empty list"] += 1
        return body

    @rule(
        app=apps,
        link_id=links,
        needle=st.sampled_from(["none", "slug", "title", "destination", "pool"]),
        pool_needle=st.sampled_from(NEEDLES),
        has_visits=st.sampled_from([None, "true", "false"]),
        sort_by=st.sampled_from(sorted(SORT_FIELDS)),
        sort_order=st.sampled_from(["asc", "desc"]),
        limit=st.integers(1, 8),
        offset=st.sampled_from([0, 1, 2, 4, 9]),
    )
    def list_links(
        self,
        app: App,
        link_id: str,
        needle: str,
        pool_needle: str,
        has_visits: str | None,
        sort_by: str,
        sort_order: str,
        limit: int,
        offset: int,
    ) -> None:
        """One page; `q` is taken from some link (of any workspace: it must not leak) or a pool."""
        link = self.model[link_id]
        q = {
            "none": None,
            "slug": link.slug,
            "title": link.title[: max(1, len(link.title) // 2)].upper(),
            "destination": link.destination[8:20],
            "pool": pool_needle,
        }[needle]
        params: dict[str, Any] = {
            "sortBy": sort_by,
            "sortOrder": sort_order,
            "limit": limit,
            "offset": offset,
        }
        if q is not None and q.strip():
            params["q"] = q[:200]
        if has_visits is not None:
            params["hasVisits"] = has_visits
        self._check_list(app, params)

    @rule(
        app=apps,
        sort_by=st.sampled_from(sorted(SORT_FIELDS)),
        sort_order=st.sampled_from(["asc", "desc"]),
        limit=st.integers(1, 4),
    )
    def walk_every_page(self, app: App, sort_by: str, sort_order: str, limit: int) -> None:
        seen: list[str] = []
        for offset in range(0, QUOTAS[app.workspace] + limit, limit):
            params = {"sortBy": sort_by, "sortOrder": sort_order, "limit": limit, "offset": offset}
            body = self._check_list(app, params)
            seen += [item["id"] for item in body["data"]]
            if not body["pagination"]["hasMore"]:
                break
        assert len(seen) == len(set(seen)) == self._count(app.workspace)

    @rule(
        q=st.none() | st.sampled_from(NEEDLES),
        sort_by=st.sampled_from(sorted(SORT_FIELDS)),
        link_id=links,
    )
    def company_apps_agree(self, q: str | None, sort_by: str, link_id: str) -> None:
        params = {"sortBy": sort_by, "limit": 100, **({"q": q} if q else {})}
        bodies = [self._get(LINKS_PATH, self.headers[a.client_id], **params) for a in COMPANY]
        assert bodies[0].json() == bodies[1].json()
        details = [
            self._get(f"{LINKS_PATH}/{link_id}", self.headers[a.client_id]).json() for a in COMPANY
        ]
        assert details[0] == details[1]
        OUTCOMES["company agreement"] += 1

    @rule()
    def counts_quotas_and_the_sandbox(self) -> None:
        listed = self.client.get(f"{CONTROL}/applications").json()
        used = {ws["id"]: ws.get("linksUsed") for ws in listed["workspaces"]}
        for workspace, quota in QUOTAS.items():
            assert used[workspace] == self._count(workspace) <= quota, workspace
        body = self._get(LINKS_PATH, self.sandbox, limit=100).json()
        assert body["pagination"]["total"] == self.sandbox_total
        assert not {item["id"] for item in body["data"]} & set(self.model)

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def model_is_sound(self) -> None:
        """The model's own rules (the rules above compare the emulator with it)."""
        for workspace, quota in QUOTAS.items():
            assert self._count(workspace) <= quota
        slugs = [link.slug for link in self.model.values()]
        assert len(slugs) == len(set(slugs))

    def teardown(self) -> None:
        OUTCOMES["examples"] += 1
        OUTCOMES["links"] += len(self.model)


@pytest.fixture(scope="module")
def shared_client() -> Iterator[TestClient]:
    settings_ = Settings(short_base=BASE, token_ttl_seconds=10**8)  # outlives any clock move
    with TestClient(create_app(client_settings(settings_))) as client:
        yield client


def test_live_workspaces_against_a_model(shared_client: TestClient) -> None:
    LiveWorkspaces.client = shared_client
    OUTCOMES.clear()
    run_state_machine_as_test(
        LiveWorkspaces,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=15,
            deadline=None,
            # The same programs on every run: the outcome tallies below are then a fact about the
            # code, not a draw that fails one run in a few hundred.
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    print(f"\nlive state machine: {dict(OUTCOMES)}")
    assert OUTCOMES["examples"] >= EXAMPLES
    if EXAMPLES >= 100:  # enough runs that each of these is all but certain
        for outcome in ("created", "slug_taken", "link_quota_exceeded", "hidden detail",
                        "visited detail", "non-empty list", "company agreement"):  # fmt: skip
            assert OUTCOMES[outcome] > 0, (outcome, OUTCOMES)
