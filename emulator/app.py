"""create_app(settings): the Starlette application that serves the emulator."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import cached_property

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Lifespan

from emulator import errors
from emulator.control import HEALTH_PATH, ControlApi
from emulator.errors import ApiError
from emulator.fault_header import HEADER as FAULT_HEADER
from emulator.inspector_routes import inspector_routes
from emulator.middleware import CorsPolicy, RequestLayer
from emulator.paths import LINKS_PATH, TOKEN_PATH
from emulator.responses import error_response, json_response
from emulator.routes import LINK_PATH, PublicApi
from emulator.settings import Settings, contract_path
from emulator.shortlinks import ShortLinks
from emulator.state import EmulatorState
from emulator.store import SandboxStore

_ASKED_MOST = {path: n for n, path in enumerate((LINKS_PATH, LINK_PATH, HEALTH_PATH, TOKEN_PATH))}
EXPOSED_HEADERS = [
    "X-Request-Id",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Retry-After",
    "Location",
    "WWW-Authenticate",
    "X-Emulator-Check",
]


class Contract:
    """The OpenAPI contract, read once, served as YAML (as written) and as JSON."""

    @cached_property
    def yaml_text(self) -> str:
        return contract_path().read_text(encoding="utf-8")

    @cached_property
    def json_bytes(self) -> bytes:
        import yaml  # here, not at start: ~20 ms that `serve` need not pay before its first answer

        return json.dumps(yaml.safe_load(self.yaml_text), ensure_ascii=False).encode()

    async def serve_json(self, request: Request) -> Response:
        return Response(self.json_bytes, media_type="application/json")

    async def serve_yaml(self, request: Request) -> Response:
        return Response(self.yaml_text, media_type="application/yaml")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return error_response(errors.method_not_allowed(request.method, allowed))
    if exc.status_code == 404:
        return error_response(errors.not_found(request.url.path))
    return json_response(
        {"error": {"code": "http_error", "message": str(exc.detail)}}, exc.status_code, exc.headers
    )


async def _server_error(request: Request, exc: Exception) -> Response:
    return json_response(
        {"error": {"code": "internal_error", "message": "The emulator failed; this is a bug."}},
        500,
    )


def _lifespan(
    state: EmulatorState, inner: Lifespan | None = None
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """The warm-up on start, around `inner` (a command's own start and stop, if any)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if state.settings.warm_up:
            threading.Thread(
                target=state.warm_up, name="8here-emulator-warm-up", daemon=True
            ).start()
        if inner is None:
            yield
            return
        async with inner(app):  # type: ignore[union-attr]
            yield

    return lifespan


def create_app(
    settings: Settings | None = None, *, sandbox: SandboxStore | None = None
) -> Starlette:
    """The emulator as an ASGI app. `app.state.emulator` holds its EmulatorState."""
    settings = settings or Settings()
    state = EmulatorState(settings, sandbox)
    routes: list[BaseRoute] = [*PublicApi(state).routes(), *contract_routes()]
    routes += control_routes(state)
    # The router tries routes in order: the most asked for first (no two of them match one path;
    # a stable sort keeps the rest as they are).
    routes.sort(key=lambda route: _ASKED_MOST.get(getattr(route, "path", ""), len(_ASKED_MOST)))
    routes += ShortLinks(state).routes()  # last: `/{slug}` would shadow nothing above
    return request_layer(state, routes)


def contract_routes() -> list[BaseRoute]:
    contract = Contract()
    return [
        Route("/openapi.json", contract.serve_json, methods=["GET"]),
        Route("/openapi.yaml", contract.serve_yaml, methods=["GET"]),
    ]


def control_routes(state: EmulatorState) -> list[BaseRoute]:
    """The control API and the inspector; with the control API off, only its health."""
    control = ControlApi(state).routes()
    if not state.settings.control:
        return [r for r in control if r.path.endswith("/health")]
    return [*control, *inspector_routes()]


def request_layer(
    state: EmulatorState, routes: list[BaseRoute], *, lifespan: Lifespan | None = None
) -> Starlette:
    """The one request layer around `routes`, for `serve` and `proxy` alike: request ids, CORS,
    the journal and injected faults, and every error as the JSON envelope."""
    cors = CorsPolicy(
        allow_origins=list(state.settings.cors_origins),
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        # X-Emulator-Fault even when request faults are off: a page that sends it is then
        # served as if it had not, rather than refused at the preflight.
        allow_headers=["Authorization", "Content-Type", "X-Request-Id", FAULT_HEADER],
        expose_headers=EXPOSED_HEADERS,
        max_age=600,
    )
    app = Starlette(
        routes=routes,
        middleware=[Middleware(RequestLayer, state=state, cors=cors)],
        lifespan=_lifespan(state, lifespan),
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _server_error,
        },
    )
    app.state.emulator = state
    return app
