"""A small altering proxy for the drift tests (a test helper, not a feature of the emulator).

`AlteringProxy(upstream_url, alteration)` serves, on a free port in a background thread, a
Starlette app that forwards every request to the upstream emulator with httpx and changes one
thing on the way: the query it forwards, or the status, headers or JSON body it returns. Each
`Alteration` below is one kind of drift the drift check must catch; `combine` applies several.
Field alterations take `on`, the answers they change: `list` (a page's items), `detail`, `create`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator.testing import ThreadedServer

LINKS_PATH = "/api/api-applications/public/links"
_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}

Query = list[tuple[str, str]]
LinkAnswer = str  # "list", "detail" or "create"
EVERY_LINK_ANSWER: tuple[LinkAnswer, ...] = ("list", "detail", "create")


@dataclass
class Exchange:
    """One proxied answer, as an alteration sees and changes it."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def is_links(self) -> bool:
        return self.path == LINKS_PATH or self.path.startswith(LINKS_PATH + "/")

    @property
    def answer(self) -> LinkAnswer | None:
        if self.path == LINKS_PATH:
            return {"GET": "list", "POST": "create"}.get(self.method)
        return "detail" if self.is_links and self.method == "GET" else None

    def links(self, on: tuple[LinkAnswer, ...] = EVERY_LINK_ANSWER) -> list[dict[str, Any]]:
        """The link objects of this answer, if it is one of `on`: the items of a page, the link
        of a detail or of a create."""
        body = self.body
        if not isinstance(body, dict) or self.answer not in on:
            return []
        if isinstance(body.get("data"), list):
            return [item for item in body["data"] if isinstance(item, dict)]
        return [body] if "id" in body else []


@dataclass
class Alteration:
    name: str
    query: Callable[[str, str, Query], Query] | None = None
    response: Callable[[Exchange], None] | None = None


def _scope(on: tuple[LinkAnswer, ...]) -> str:
    return "" if on == EVERY_LINK_ANSWER else f" in {'/'.join(on)}"


def rename_field(old: str, new: str, on: tuple[LinkAnswer, ...] = EVERY_LINK_ANSWER) -> Alteration:
    def change(exchange: Exchange) -> None:
        for link in exchange.links(on):
            if old in link:
                link[new] = link.pop(old)

    return Alteration(f"rename {old} to {new}{_scope(on)}", response=change)


def stringify_field(name: str, on: tuple[LinkAnswer, ...] = EVERY_LINK_ANSWER) -> Alteration:
    def change(exchange: Exchange) -> None:
        for link in exchange.links(on):
            if name in link:
                link[name] = str(link[name])

    return Alteration(f"{name} as a string{_scope(on)}", response=change)


def null_every_other(name: str, on: tuple[LinkAnswer, ...] = EVERY_LINK_ANSWER) -> Alteration:
    def change(exchange: Exchange) -> None:
        for index, link in enumerate(exchange.links(on)):
            if index % 2 == 0:
                link[name] = None

    return Alteration(f"{name} sometimes null{_scope(on)}", response=change)


def drop_header(name: str) -> Alteration:
    def change(exchange: Exchange) -> None:
        for key in list(exchange.headers):
            if key.lower() == name.lower():
                del exchange.headers[key]

    return Alteration(f"no {name}", response=change)


def bad_parameter_status(parameter: str, status: int) -> Alteration:
    def change(exchange: Exchange) -> None:
        error = exchange.body.get("error") if isinstance(exchange.body, dict) else None
        if exchange.status == 400 and isinstance(error, dict) and error.get("field") == parameter:
            exchange.status = status

    return Alteration(f"bad {parameter} answers {status}", response=change)


def default_limit(limit: int) -> Alteration:
    def change(method: str, path: str, query: Query) -> Query:
        if method == "GET" and path == LINKS_PATH and "limit" not in dict(query):
            return [*query, ("limit", str(limit))]
        return query

    return Alteration(f"default limit {limit}", query=change)


def accept_value(parameter: str, value: str) -> Alteration:
    """The target accepts `parameter=value` by ignoring it (as if it had not been sent)."""

    def change(method: str, path: str, query: Query) -> Query:
        return [(k, v) for k, v in query if (k, v) != (parameter, value)]

    return Alteration(f"{parameter}={value} accepted", query=change)


def ignore_ascending() -> Alteration:
    def change(method: str, path: str, query: Query) -> Query:
        return [(k, "desc" if (k, v) == ("sortOrder", "asc") else v) for k, v in query]

    return Alteration("sortOrder=asc sorts descending", query=change)


def too_many_requests(times: int, retry_after: int) -> Alteration:
    """The first `times` links answers become 429 with `Retry-After`."""
    left = {"count": times}

    def change(exchange: Exchange) -> None:
        if exchange.is_links and left["count"] > 0:
            left["count"] -= 1
            exchange.status = 429
            exchange.headers["Retry-After"] = str(retry_after)
            exchange.body = {"error": {"code": "rate_limited", "message": "slow down"}}

    return Alteration("429 first", response=change)


def combine(*alterations: Alteration) -> Alteration:
    """Every alteration, in the order given."""
    queries = [a.query for a in alterations if a.query is not None]
    responses = [a.response for a in alterations if a.response is not None]

    def query(method: str, path: str, sent: Query) -> Query:
        for change in queries:
            sent = change(method, path, sent)
        return sent

    def response(exchange: Exchange) -> None:
        for change in responses:
            change(exchange)

    return Alteration(
        " + ".join(a.name for a in alterations),
        query=query if queries else None,
        response=response if responses else None,
    )


class AlteringProxy(ThreadedServer):
    """Serve with `with AlteringProxy(upstream, alteration) as proxy:`; `proxy.url`, and
    `proxy.seen` lists the (method, path) pairs it forwarded."""

    def __init__(self, upstream: str, alteration: Alteration | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.alteration = alteration or Alteration("none")
        self.seen: list[tuple[str, str]] = []
        self._client: httpx.AsyncClient | None = None
        app = Starlette(
            routes=[
                Route(
                    "/{path:path}",
                    self.forward,
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
                )
            ],
            lifespan=self._lifespan,
        )
        super().__init__(app, name="drift-altering-proxy")

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Any) -> AsyncIterator[None]:
        # One client for every request. The upstream is a local emulator over plain HTTP:
        # verify=False skips loading the CA bundle (~50-90 ms, more than a request).
        self._client = httpx.AsyncClient(verify=False)
        try:
            yield
        finally:
            await self._client.aclose()

    async def forward(self, request: Request) -> Response:
        path = request.url.path
        method = request.method
        self.seen.append((method, path))
        query: Query = list(request.query_params.multi_items())
        if self.alteration.query is not None:
            query = self.alteration.query(method, path, query)
        headers = [
            (k, v)
            for k, v in request.headers.raw
            if k.decode("latin-1").lower() not in _HOP_HEADERS
        ]
        # The path as it came, percent-encoding and all, so odd ids reach upstream unchanged.
        raw_path = request.scope.get("raw_path") or path.encode()
        assert self._client is not None
        upstream = await self._client.request(
            method,
            self.upstream + raw_path.decode("latin-1"),
            params=query,
            headers=headers,
            content=await request.body(),
        )
        out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS}
        try:
            body: Any = upstream.json()
        except ValueError:
            return Response(upstream.content, upstream.status_code, out_headers)
        exchange = Exchange(method, path, dict(query), upstream.status_code, out_headers, body)
        if self.alteration.response is not None:
            self.alteration.response(exchange)
        return Response(
            json.dumps(exchange.body).encode(),
            exchange.status,
            exchange.headers,
            media_type="application/json",
        )
