"""The four public endpoints of the real API: parse → auth → rate limit → store → serialize."""

from __future__ import annotations

from dataclasses import replace

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator import convertors, errors, serialize
from emulator.auth import bearer_fingerprint, fingerprint
from emulator.errors import ApiError
from emulator.models import Principal, parse_new_link, required_string
from emulator.parsing import parse_link_query, read_json_body
from emulator.paths import LINKS_PATH, TOKEN_PATH
from emulator.ratelimit import Decision
from emulator.responses import bytes_response, json_response
from emulator.state import EmulatorState

LINK_PATH = LINKS_PATH + "/{linkId:" + convertors.ANY_ID + "}"


class PublicApi:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        return [
            Route(TOKEN_PATH, self.create_token, methods=["POST"]),
            # One route for both methods, so a 405 names both in `Allow`.
            Route(LINKS_PATH, self.links, methods=["GET", "POST"]),
            Route(LINK_PATH, self.get_link, methods=["GET"]),
        ]

    async def create_token(self, request: Request) -> Response:
        body = await read_json_body(request, self.state.settings.max_body_bytes)
        if not isinstance(body, dict):
            raise errors.invalid_request("The request body must be a JSON object.")
        client_id = required_string(body, "clientId")
        request.state.client_id = client_id
        client_secret = required_string(body, "clientSecret")
        # A token signed with the key of the generation the request started in, or none.
        with self.state.fence.guard_request(request.scope):
            issued = self.state.tokens.exchange(client_id, client_secret)
        request.state.token_fingerprint = fingerprint(issued.access_token)
        return json_response(serialize.token(issued), headers={"Cache-Control": "no-store"})

    async def links(self, request: Request) -> Response:
        if request.method == "POST":
            return await self.create_link(request)
        return await self.list_links(request)

    async def list_links(self, request: Request) -> Response:
        principal, decision = self._admit(request)
        state = self.state
        try:
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
        except ApiError as error:
            raise _with_rate_headers(error, decision) from None
        request.state.pagination = pagination
        return bytes_response(body, headers=decision.headers())

    async def create_link(self, request: Request) -> Response:
        principal, decision = self._admit(request)
        state = self.state
        try:
            new = parse_new_link(await read_json_body(request, state.settings.max_body_bytes))
            now = state.clock.now()
            if principal.environment == "sandbox":
                link = state.sandbox.preview_create(new, now)
            else:
                # One namespace of slugs: a sample link's slug is taken for live links too.
                with self.state.fence.guard_request(request.scope):
                    link = state.live.create(principal.workspace, new, now, state.sandbox.has_slug)
        except ApiError as error:
            raise _with_rate_headers(error, decision) from None
        persisted = principal.environment == "live"
        body = {**serialize.link_detail(link, state.settings.short_base), "persisted": persisted}
        headers = decision.headers()
        if persisted:
            headers["Location"] = f"{LINKS_PATH}/{link.id}"
        return json_response(body, status=201, headers=headers)

    async def get_link(self, request: Request) -> Response:
        principal, decision = self._admit(request)
        link_id: str = request.path_params["linkId"]
        state = self.state
        if principal.environment == "sandbox":
            link = state.sandbox.get(link_id)
            body = state.rendered.detail(link) if link is not None else None
        else:
            link = state.live.get(principal.workspace.id, link_id)
            detail = serialize.link_detail(link, state.settings.short_base) if link else None
            body = serialize.dumps(detail) if detail is not None else None
        if body is None:
            raise _with_rate_headers(errors.link_not_found(), decision)
        return bytes_response(body, headers=decision.headers())

    def _admit(self, request: Request) -> tuple[Principal, Decision]:
        """Authenticate, then count the call against the caller's window (or refuse it)."""
        authorization = request.headers.get("authorization")
        if authorization:
            request.state.token_fingerprint = bearer_fingerprint(authorization)
        with self.state.fence.guard_request(request.scope):
            principal = self.state.tokens.authenticate(authorization)
            request.state.client_id = principal.application.client_id
            decision = self.state.limiter.acquire(principal.rate_key, principal.rate_limit)
        if not decision.allowed:
            raise errors.rate_limited(decision.retry_after, decision.headers())
        return principal, decision


def _with_rate_headers(error: ApiError, decision: Decision) -> ApiError:
    return replace(error, headers={**error.headers, **decision.headers()})
