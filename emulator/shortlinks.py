"""The short links themselves: `GET /{slug}` redirects to the destination and records a visit."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from emulator import errors
from emulator.models import SLUG_PATTERN
from emulator.state import EmulatorState
from emulator.visits import visit_from_request

_SLUG = re.compile(SLUG_PATTERN)


class ShortLinks:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        return [Route("/{slug}", self.resolve, methods=["GET"])]

    async def resolve(self, request: Request) -> Response:
        slug: str = request.path_params["slug"]
        if not _SLUG.fullmatch(slug):
            raise errors.not_found(request.url.path)
        state = self.state
        live = state.live.find_slug(slug)
        if live is not None:
            if request.method == "GET":
                client = request.client.host if request.client else ""
                with state.fence.guard_request(request.scope):
                    # A clock set back before the link existed counts the visit at its birth.
                    at = max(state.clock.now(), live.created_at)
                    visit = visit_from_request(request.headers, client, at)
                    state.live.record_visits(live.link_id, [visit])
            return _redirect(live.destination)
        sample = state.sandbox.by_slug(slug)
        if sample is not None:  # sample analytics are static: follow, record nothing
            return _redirect(sample.destination)
        raise errors.ApiError(404, "link_not_found", f"No short link /{slug}.")


def _redirect(destination: str) -> Response:
    return RedirectResponse(destination, status_code=302, headers={"Cache-Control": "no-store"})
