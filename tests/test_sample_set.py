"""The fixture folder's files: the sample set read field by field and written canonically, values
recorded verbatim served as they are, and a malformed file refused with one line naming it."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import emulator_client, register_fast_app
from starlette.testclient import TestClient

from emulator.app import create_app
from emulator.qr import qr_png_base64
from emulator.registry import FixtureError, Registry
from emulator.sample_set import load_sample_set, render_sample_set
from emulator.settings import Settings, default_fixtures_dir
from emulator.store import LinkQuery, SandboxStore

SHIPPED = default_fixtures_dir() / "sandbox_links.json"
APPLICATIONS = default_fixtures_dir() / "applications.json"
LINKS_PATH = "/api/api-applications/public/links"


def _records() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(SHIPPED.read_text("utf-8"))["links"]
    return records


def _folder(tmp_path: Path, records: list[dict[str, Any]]) -> Path:
    (tmp_path / "sandbox_links.json").write_bytes(render_sample_set(records))
    (tmp_path / "applications.json").write_bytes(APPLICATIONS.read_bytes())
    return tmp_path


def _client(folder: Path, **settings: Any) -> TestClient:
    return emulator_client(Settings(fixtures_dir=folder, **settings))


# -- the format ----------------------------------------------------------------------------------


def test_render_sorts_records_and_keys_so_the_same_data_gives_the_same_bytes() -> None:
    records = _records()
    shuffled = copy.deepcopy(records)
    random.Random(3).shuffle(shuffled)
    for record in shuffled[:20]:  # keys in another order too
        record.update(reversed(list(record.items())))
    rendered = render_sample_set(records)
    assert render_sample_set(shuffled) == rendered
    document = json.loads(rendered)
    assert list(document) == ["links", "version"]
    ids = [record["id"] for record in document["links"]]
    assert ids == sorted(ids)
    assert list(document["links"][0]) == sorted(document["links"][0])
    assert rendered.endswith(b"}\n") and "中".encode() in rendered  # UTF-8, not \\u escapes


def test_a_rendered_set_serves_what_the_shipped_set_serves(tmp_path: Path) -> None:
    folder = _folder(tmp_path, _records())
    assert sorted(load_sample_set(folder / "sandbox_links.json"), key=lambda link: link.id) == (
        sorted(load_sample_set(SHIPPED), key=lambda link: link.id)
    )
    with emulator_client() as shipped, _client(folder) as rendered:
        one, two = register_fast_app(shipped), register_fast_app(rendered)
        for query in ("limit=100", "sortBy=title&sortOrder=asc&limit=7&offset=30", "q=launch"):
            url = f"{LINKS_PATH}?{query}"
            assert shipped.get(url, headers=one).content == rendered.get(url, headers=two).content


def test_the_shipped_set_is_unchanged_and_reads_without_verbatim_values() -> None:
    links = load_sample_set(SHIPPED)
    assert len(links) == 240
    assert all(link.verbatim is None for link in links)
    assert json.loads(SHIPPED.read_text("utf-8"))["seed"] == 8  # extra top-level keys are ignored


# -- verbatim values -----------------------------------------------------------------------------


def _verbatim_records() -> list[dict[str, Any]]:
    """Three records with recorded values the emulator would derive otherwise."""
    records = _records()
    by_clicks = sorted(records, key=lambda r: (r["analytics"]["totalClicks"], r["id"]))
    unvisited, visited = by_clicks[0], by_clicks[-1]
    assert unvisited["analytics"]["totalClicks"] == 0
    unvisited["shortUrl"] = f"https://sho.rt/{unvisited['slug']}"
    unvisited["qrCodeBase64"] = qr_png_base64("https://recorded.example/qr")
    unvisited["clicks"] = 10**9  # the most clicks of all, listed first by clicks
    unvisited["hasVisits"] = True
    visited["hasVisits"] = False
    visited["shortUrl"] = f"https://8here.in/{visited['slug']}"  # the default base, verbatim
    return records


def test_recorded_values_are_served_verbatim_in_lists_and_details(tmp_path: Path) -> None:
    records = _verbatim_records()
    folder = _folder(tmp_path, records)
    odd = next(record for record in records if "qrCodeBase64" in record)
    with _client(folder, short_base="http://127.0.0.1:9") as client:
        headers = register_fast_app(client)
        detail = client.get(f"{LINKS_PATH}/{odd['id']}", headers=headers).json()
        for key in ("shortUrl", "qrCodeBase64", "clicks", "hasVisits"):
            assert detail[key] == odd[key]
        assert detail["analytics"]["totalClicks"] == 0
        top = client.get(f"{LINKS_PATH}?sortBy=clicks&limit=1", headers=headers).json()["data"]
        assert top[0]["id"] == odd["id"]
        assert top[0]["qrCodeBase64"] == odd["qrCodeBase64"]
        # Links without recorded values follow --short-base, and their QR code with it.
        plain = client.get(f"{LINKS_PATH}?sortBy=title&limit=1", headers=headers).json()["data"][0]
        assert plain["shortUrl"] == f"http://127.0.0.1:9/{plain['slug']}"
        assert plain["qrCodeBase64"] == qr_png_base64(plain["shortUrl"])


def test_the_visits_filter_and_the_clicks_order_follow_recorded_values(tmp_path: Path) -> None:
    links = load_sample_set(_folder(tmp_path, _verbatim_records()) / "sandbox_links.json")
    store = SandboxStore(links)
    for has_visits in (True, False):
        for key in ("clicks", "title", "createdAt"):
            for q in (None, "a"):
                query = LinkQuery(has_visits=has_visits, sort_by=key, limit=100, q=q)
                page = store.query(query)
                expected = [link for link in links if link.has_visits is has_visits]
                if q:
                    fields = ("title", "slug", "destination")
                    expected = [
                        link
                        for link in expected
                        if any(q in getattr(link, name).casefold() for name in fields)
                    ]
                assert page.total == len(expected), (has_visits, key, q)
                assert all(link.has_visits is has_visits for link in page.items)
    clicks = [link.clicks for link in store.query(LinkQuery(sort_by="clicks", limit=100)).items]
    assert clicks == sorted(clicks, reverse=True) and clicks[0] == 10**9


# -- a malformed folder is refused with one line -------------------------------------------------


def _edit(change: Callable[[dict[str, Any]], Any]) -> str:
    document = json.loads(SHIPPED.read_text("utf-8"))
    change(document)
    return json.dumps(document)


LINK = "links[3]"
MALFORMED_LINKS = {
    "not JSON": ('{"version": 1, "links": [', "not valid JSON (Expecting value at line 1"),
    "not UTF-8": (b"\xff\xfe{}", "not UTF-8 text"),
    "a list": ("[]", "expected a JSON object"),
    "no version": (_edit(lambda d: d.pop("version")), 'no "version"'),
    "version 2": (_edit(lambda d: d.update(version=2)), "unsupported sample set version 2"),
    "links not a list": (_edit(lambda d: d.update(links={})), '"links" must be a list'),
    "no title": (_edit(lambda d: d["links"][3].pop("title")), f"{LINK}: no 'title' (link lnk_"),
    "bad timestamp": (
        _edit(lambda d: d["links"][3].update(createdAt="2024-01-01")),
        f"{LINK}.createdAt: '2024-01-01' is not a UTC timestamp",
    ),
    "milliseconds": (
        _edit(lambda d: d["links"][3].update(updatedAt="2024-01-01T00:00:00.000Z")),
        f"{LINK}.updatedAt: '2024-01-01T00:00:00.000Z' is not a UTC timestamp",
    ),
    "string count": (
        _edit(lambda d: d["links"][3]["analytics"]["devices"].update(mobile="2")),
        f"{LINK}.analytics.devices.mobile: expected a whole number >= 0, got the string '2'",
    ),
    "negative count": (
        _edit(lambda d: d["links"][3]["analytics"].update(totalClicks=-1)),
        f"{LINK}.analytics.totalClicks: expected a whole number >= 0, got the number -1",
    ),
    "unknown key": (
        _edit(lambda d: d["links"][3].update(titel="x")),
        f"{LINK}: unknown key 'titel'",
    ),
    "repeated id": (
        _edit(lambda d: d["links"][4].update(id=d["links"][3]["id"])),
        "links[4]: id 'lnk_",
    ),
    "QR code without its URL": (
        _edit(lambda d: d["links"][3].update(qrCodeBase64="iVBORw0KGgo")),
        f"{LINK}: qrCodeBase64 without the shortUrl it encodes",
    ),
    "verbatim hasVisits not a boolean": (
        _edit(lambda d: d["links"][3].update(hasVisits="yes")),
        f"{LINK}.hasVisits: expected true or false",
    ),
    "day without clicks": (
        _edit(lambda d: d["links"][3]["analytics"]["clicksByDay"].append({"date": "2020-01-01"})),
        "analytics.clicksByDay[",
    ),
}


@pytest.mark.parametrize("content, message", MALFORMED_LINKS.values(), ids=list(MALFORMED_LINKS))
def test_a_malformed_sample_set_is_refused_naming_the_file_and_the_problem(
    tmp_path: Path, content: str | bytes, message: str
) -> None:
    path = tmp_path / "sandbox_links.json"
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    (tmp_path / "applications.json").write_bytes(APPLICATIONS.read_bytes())
    with pytest.raises(FixtureError) as refused:
        create_app(Settings(fixtures_dir=tmp_path))
    text = str(refused.value)
    assert text.startswith(f"{path}: "), text
    assert message in text, text
    assert "\n" not in text


APPS = {"workspaces": [{"id": "sandbox", "kind": "sandbox"}], "applications": []}
GOOD_APP = {
    "clientId": "a",
    "clientSecret": "b",
    "environment": "sandbox",
    "workspaceId": "sandbox",
}
MALFORMED_APPLICATIONS = {
    "not JSON": ("{", "not valid JSON"),
    "a list": ([], 'expected a JSON object with "workspaces" and "applications"'),
    "no applications": ({"workspaces": []}, '"applications" must be a list'),
    "workspace without kind": (
        {**APPS, "workspaces": [{"id": "x"}]},
        "workspaces[0]: no 'kind'",
    ),
    "unknown kind": (
        {**APPS, "workspaces": [{"id": "x", "kind": "team"}]},
        "workspaces[0].kind: 'team' is not one of sandbox, personal, company",
    ),
    "apiAccess not a boolean": (
        {**APPS, "workspaces": [{"id": "x", "kind": "personal", "apiAccess": "yes"}]},
        "workspaces[0].apiAccess: expected a boolean",
    ),
    "unknown key": (
        {**APPS, "applications": [{**GOOD_APP, "secret": "c"}]},
        "applications[0]: unknown key 'secret'",
    ),
    "unknown environment": (
        {**APPS, "applications": [{**GOOD_APP, "environment": "prod"}]},
        "applications[0].environment: 'prod' is not one of sandbox, live",
    ),
    "missing workspace": (
        {**APPS, "applications": [{**GOOD_APP, "workspaceId": "nowhere"}]},
        "applications[0]: application 'a' names workspace 'nowhere', which the file does not",
    ),
    "client id with a space": (
        {**APPS, "applications": [{**GOOD_APP, "clientId": "a b"}]},
        "applications[0]: application 'a b': clientId must be printable text, with no whitespace",
    ),
    "rate limit as text": (
        {**APPS, "applications": [{**GOOD_APP, "rateLimitPerMinute": "15"}]},
        "applications[0].rateLimitPerMinute: expected a whole number >= 0, got '15'",
    ),
}


@pytest.mark.parametrize(
    "content, message", MALFORMED_APPLICATIONS.values(), ids=list(MALFORMED_APPLICATIONS)
)
def test_a_malformed_applications_file_is_refused_naming_the_file_and_the_problem(
    tmp_path: Path, content: Any, message: str
) -> None:
    path = tmp_path / "applications.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), "utf-8")
    with pytest.raises(FixtureError) as refused:
        Registry.from_file(path)
    text = str(refused.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text, text


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "applications.json").write_bytes(APPLICATIONS.read_bytes())
    with pytest.raises(FixtureError, match=r"sandbox_links\.json: cannot read it"):
        create_app(Settings(fixtures_dir=tmp_path))


def test_an_application_may_leave_its_rate_limit_null(tmp_path: Path) -> None:
    path = tmp_path / "applications.json"
    app = {**GOOD_APP, "rateLimitPerMinute": None, "name": "Null limit"}
    path.write_text(json.dumps({**APPS, "applications": [app]}), "utf-8")
    assert Registry.from_file(path).application("a") is not None
