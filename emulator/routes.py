"""The four public endpoints of the real API: parse → auth → rate limit → store → serialize."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator import convertors, errors, serialize
from emulator.auth import bearer_fingerprint, fingerprint
from emulator.models import Principal, parse_new_link, required_string
from emulator.notes import notes_of
from emulator.parsing import parse_link_query, read_json_body
from emulator.paths import LINKS_PATH, TOKEN_PATH
from emulator.responses import bytes_response, json_response
from emulator.state import EmulatorState

LINK_PATH = LINKS_PATH + "/{linkId:" + convertors.ANY_ID + "}"


class PublicApi:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        # The router tries them in this order, the most asked for first (no two match a path).
        return [
            # One route for both methods, so a 405 names both in `Allow`.
            Route(LINKS_PATH, self.links, methods=["GET", "POST"]),
            Route(LINK_PATH, self.get_link, methods=["GET"]),
            Route(TOKEN_PATH, self.create_token, methods=["POST"]),
        ]

    async def create_token(self, request: Request) -> Response:
        notes = notes_of(request.scope)
        body = await read_json_body(request, self.state.settings.max_body_bytes)
        if not isinstance(body, dict):
            raise errors.invalid_request("The request body must be a JSON object.")
        client_id = required_string(body, "clientId")
        notes.client_id = client_id
        client_secret = required_string(body, "clientSecret")
        # A token signed with the key of the generation the request started in, or none.
        with self.state.fence.guard(notes.ticket):
            issued = self.state.tokens.exchange(client_id, client_secret)
        notes.token_fingerprint = fingerprint(issued.access_token)
        return json_response(serialize.token(issued), headers={"Cache-Control": "no-store"})

    async def links(self, request: Request) -> Response:
        if request.method == "POST":
            return await self.create_link(request)
        return await self.list_links(request)

    async def list_links(self, request: Request) -> Response:
        principal = self._admit(request)
        state = self.state
        if principal.environment == "sandbox":
            # The sample set never changes: the same query string, the same page.
            key: bytes = request.scope["query_string"]
            kept = state.rendered.cached_page(key)
            if kept is None:
                query = parse_link_query(request.query_params)
                kept = state.rendered.keep_page(key, state.sandbox.query(query))
            body, pagination = kept
        else:
            query = parse_link_query(request.query_params)
            page = state.live.query(principal.workspace.id, query)
            body = serialize.dumps(serialize.page(page, state.settings.short_base))
            pagination = serialize.pagination(page)
        notes_of(request.scope).pagination = pagination
        return bytes_response(body)

    async def create_link(self, request: Request) -> Response:
        principal = self._admit(request)
        state = self.state
        new = parse_new_link(await read_json_body(request, state.settings.max_body_bytes))
        now = state.clock.now()
        if principal.environment == "sandbox":
            link = state.sandbox.preview_create(new, now)
        else:
            # One namespace of slugs: a sample link's slug is taken for live links too.
            with self.state.fence.guard_request(request.scope):
                link = state.live.create(principal.workspace, new, now, state.sandbox.has_slug)
        persisted = principal.environment == "live"
        body = {**serialize.link_detail(link, state.settings.short_base), "persisted": persisted}
        headers = {"Location": f"{LINKS_PATH}/{link.id}"} if persisted else None
        return json_response(body, status=201, headers=headers)

    async def get_link(self, request: Request) -> Response:
        principal = self._admit(request)
        link_id: str = request.path_params["linkId"]
        state = self.state
        if principal.environment == "sandbox":
            body = state.rendered.cached_detail(link_id)
            if body is None:
                link = state.sandbox.get(link_id)
                body = state.rendered.detail(link) if link is not None else None
        else:
            link = state.live.get(principal.workspace.id, link_id)
            detail = serialize.link_detail(link, state.settings.short_base) if link else None
            body = serialize.dumps(detail) if detail is not None else None
        if body is None:
            raise errors.link_not_found()
        return bytes_response(body)

    def _admit(self, request: Request) -> Principal:
        """Authenticate, then count the call against the caller's window (or refuse it). From
        here on, whatever the handler answers carries the window's rate-limit headers (the
        request layer adds them from the notes)."""
        notes = notes_of(request.scope)
        authorization = notes.header(b"authorization")
        if authorization:
            notes.token_fingerprint = bearer_fingerprint(authorization)
        with self.state.fence.guard(notes.ticket):
            principal = self.state.tokens.authenticate(authorization)
            notes.client_id = principal.application.client_id
            decision = self.state.limiter.acquire(principal.rate_key, principal.rate_limit)
        notes.rate_limit = decision
        if not decision.allowed:
            raise errors.rate_limited(decision.retry_after)
        return principal
