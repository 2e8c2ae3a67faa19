"""The inspector page at /_emulator/ui, in process: served from the package, self-contained (no
external URL anywhere), off with the control API, and driving nothing but control API routes.
The page in a real browser is tests/test_inspector_browser.py."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CONTROL, assert_error, client_settings
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from emulator.app import create_app
from emulator.inspector_routes import ASSETS, CONTENT_SECURITY_POLICY, PAGE, inspector_routes
from emulator.settings import Settings

UI = f"{CONTROL}/ui"
ROOT = Path(__file__).resolve().parent.parent
INSPECTOR_DIR = ROOT / "emulator" / "inspector"
PAGE_FILES = [PAGE, *ASSETS]


def inspector_app(settings: Settings | None = None) -> Starlette:
    """The emulator with the inspector mounted as create_app mounts it: only with the control API.
    (Mounted here too for as long as create_app does not do it itself.)"""
    settings = settings or Settings()
    app = create_app(client_settings(settings))
    mounted = any(getattr(route, "path", None) == UI for route in app.router.routes)
    if settings.control and not mounted:
        app.router.routes.extend(inspector_routes())
    return app


@pytest.fixture
def ui() -> Iterator[TestClient]:
    with TestClient(inspector_app()) as client:
        yield client


def test_the_page_is_served_with_a_same_origin_policy(ui: TestClient) -> None:
    response = ui.get(UI)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content == (INSPECTOR_DIR / PAGE).read_bytes()
    assert 'src="ui/inspector.js"' in response.text
    assert 'href="ui/inspector.css"' in response.text


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("inspector.css", "text/css; charset=utf-8"),
        ("inspector.js", "text/javascript; charset=utf-8"),
    ],
)
def test_assets_are_served_from_the_package(ui: TestClient, name: str, media_type: str) -> None:
    response = ui.get(f"{UI}/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.content == (INSPECTOR_DIR / name).read_bytes()
    assert ui.head(f"{UI}/{name}").status_code == 200


@pytest.mark.parametrize(
    "path",
    [f"{UI}/nothing.js", f"{UI}/index.html", f"{UI}/__init__.py", f"{UI}/..%2Finspector_routes.py"],
)
def test_only_the_page_files_are_served(ui: TestClient, path: str) -> None:
    assert_error(ui.get(path), 404, "not_found")


def test_a_trailing_slash_redirects_to_the_page(ui: TestClient) -> None:
    response = ui.get(f"{UI}/", follow_redirects=False)
    assert response.status_code in (307, 308)
    assert response.headers["location"].endswith(UI)


def test_the_page_is_not_journaled(ui: TestClient) -> None:
    for path in (UI, f"{UI}/inspector.js"):
        assert ui.get(path).status_code == 200
    assert ui.get(f"{CONTROL}/requests").json() == {"requests": []}


def test_off_with_the_control_api() -> None:
    with TestClient(inspector_app(Settings(control=False))) as client:
        for path in (UI, *(f"{UI}/{name}" for name in ASSETS)):
            assert_error(client.get(path), 404, "not_found")
        assert client.get(f"{CONTROL}/health").status_code == 200


def test_served_without_the_control_token_which_guards_the_api_it_calls() -> None:
    """The page holds nothing secret; the data it shows needs the token (it asks for it)."""
    with TestClient(inspector_app(Settings(control_token="s3cret"))) as client:
        assert client.get(UI).status_code == 200
        assert_error(client.get(f"{CONTROL}/clock"), 401, "control_unauthorized")
        guarded = client.get(f"{CONTROL}/clock", headers={"Authorization": "Bearer s3cret"})
        assert guarded.status_code == 200


# --- self-contained: works offline, no CDN -----------------------------------------------------


@pytest.mark.parametrize("name", PAGE_FILES)
def test_no_external_urls(name: str) -> None:
    text = (INSPECTOR_DIR / name).read_text(encoding="utf-8")
    assert not re.search(r"(?i)\b(?:https?|ftp|wss?):", text)
    assert not re.search(r"""(?i)(?:src|href|action)\s*=\s*["']?//""", text)  # protocol-relative
    assert "@import" not in text


def test_the_page_loads_only_its_own_files() -> None:
    html = (INSPECTOR_DIR / PAGE).read_text(encoding="utf-8")
    references = re.findall(r"""(?i)\b(?:src|href)\s*=\s*["']([^"']*)["']""", html)
    assert references, "no references found"
    for reference in references:
        assert reference in {f"ui/{name}" for name in ASSETS} or reference.startswith("data:"), (
            reference
        )
    css = (INSPECTOR_DIR / "inspector.css").read_text(encoding="utf-8")
    assert "url(" not in css


def test_the_inspector_folder_holds_only_the_page_files() -> None:
    shipped = {p.name for p in INSPECTOR_DIR.iterdir() if p.name != "__pycache__"}
    assert shipped == set(PAGE_FILES)


def test_the_wheel_ships_the_page_files() -> None:
    """pyproject's package-data for `emulator` covers every file of the page."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        package_data = tomllib.load(f)["tool"]["setuptools"]["package-data"]
    patterns = package_data.get("emulator", [])
    for name in PAGE_FILES:
        assert any(fnmatch.fnmatch(f"inspector/{name}", p) for p in patterns), (name, patterns)


# --- everything it does goes through the control API -------------------------------------------


def _page_calls() -> tuple[dict[str, str], set[tuple[str, str, bool]]]:
    script = (INSPECTOR_DIR / "inspector.js").read_text(encoding="utf-8")
    table = re.search(r"const API = Object\.freeze\(\{(.*?)\}\);", script, re.S)
    assert table, "the API table is missing from inspector.js"
    api = dict(re.findall(r'(\w+): "([^"]+)"', table.group(1)))
    calls = {
        (method, name, "suffix:" in rest)
        for method, name, rest in re.findall(r'call\("(\w+)", "(\w+)"([^)\n]*)', script)
    }
    assert "fetch(url" in script and script.count("fetch(") == 1, "one fetch, in call()"
    return api, calls


def test_every_call_the_page_makes_is_a_control_api_route() -> None:
    api, calls = _page_calls()
    assert {name for _method, name, _suffix in calls} == set(api)
    app = create_app()
    routes = [r for r in app.router.routes if isinstance(r, Route)]
    for method, name, with_suffix in sorted(calls):
        path = f"{CONTROL}{api[name]}" + ("/lnk_x" if with_suffix else "")
        allowed = set()
        for route in routes:
            if route.path_regex.fullmatch(path) and route.methods:
                allowed |= route.methods
        assert method in allowed, (method, path, allowed)
