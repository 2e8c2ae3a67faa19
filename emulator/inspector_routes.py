"""The inspector: a page at /_emulator/ui that shows and drives the emulator via the control API.

Plain HTML, CSS and JavaScript from `emulator/inspector/`, read from the installed package (no CDN,
no bundler, works offline). The page holds no data and no secrets, so it is served without the
control token; every call it makes goes to the control API, which checks the token when one is set.
Mounted only when the control API is on.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PREFIX = "/_emulator/ui"
ASSET_DIR = "inspector"
PAGE = "index.html"
# The files the page is made of, and their media types; nothing else is served.
ASSETS = {
    "inspector.css": "text/css; charset=utf-8",
    "inspector.js": "text/javascript; charset=utf-8",
}
# Same-origin only: the page cannot load or call anything beyond the emulator it came from.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
}


@cache
def asset_bytes(name: str) -> bytes:
    """One file of the page, from the package (works from a wheel as well as a checkout)."""
    return resources.files("emulator").joinpath(ASSET_DIR, name).read_bytes()


async def _page(request: Request) -> Response:
    return Response(asset_bytes(PAGE), media_type="text/html; charset=utf-8", headers=_HEADERS)


async def _asset(request: Request) -> Response:
    name = request.path_params["name"]
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(404)
    return Response(asset_bytes(name), media_type=media_type, headers=_HEADERS)


def inspector_routes() -> list[Route]:
    """The page at /_emulator/ui and its assets at /_emulator/ui/<file>. (`/_emulator/ui/` is
    redirected to the page by the router's slash redirect.)"""
    return [
        Route(PREFIX, _page, methods=["GET"]),
        Route(f"{PREFIX}/{{name}}", _asset, methods=["GET"]),
    ]
