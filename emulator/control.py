"""The emulator's own API under /_emulator/: health, reset, clock, applications, journal, faults,
the proxy's checks and scenarios."""

from __future__ import annotations

import hmac
import math
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator import convertors, errors, serialize
from emulator.clock import format_timestamp, parse_clock_change
from emulator.faults import parse_fault, require_socket
from emulator.fence import Guard
from emulator.models import SANDBOX_WORKSPACE_ID, Application, Principal, Workspace
from emulator.network_faults import connection_of
from emulator.parsing import (
    is_json_media,
    is_yaml_media,
    parse_link_query,
    read_body,
    read_json_body,
)
from emulator.registry import parse_registration
from emulator.responses import bytes_response, json_response
from emulator.state import EmulatorState
from emulator.visits import parse_bulk_visits

PREFIX = "/_emulator"
HEALTH_PATH = f"{PREFIX}/health"
Endpoint = Callable[[Request], Awaitable[Response]]
# Journal sequence numbers: any longer number is past every entry.
_SEQUENCE_DIGITS = 18
# Health's one answer, made once and sent as it is (the request layer answers a GET itself).
HEALTHY = bytes_response(serialize.dumps({"status": "ok"}))


class ControlApi:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        guarded = self._guarded
        return [
            Route(HEALTH_PATH, self.health, methods=["GET"]),
            Route(f"{PREFIX}/reset", guarded(self.reset), methods=["POST"]),
            Route(f"{PREFIX}/clock", guarded(self.read_clock), methods=["GET"]),
            Route(f"{PREFIX}/clock", guarded(self.set_clock), methods=["POST"]),
            Route(f"{PREFIX}/applications", guarded(self.list_applications), methods=["GET"]),
            Route(f"{PREFIX}/applications", guarded(self.register_application), methods=["POST"]),
            Route(f"{PREFIX}/requests", guarded(self.list_requests), methods=["GET"]),
            Route(f"{PREFIX}/requests", guarded(self.clear_requests), methods=["DELETE"]),
            Route(f"{PREFIX}/requests/{{sequence}}", guarded(self.one_request), methods=["GET"]),
            Route(f"{PREFIX}/faults", guarded(self.list_faults), methods=["GET"]),
            Route(f"{PREFIX}/faults", guarded(self.add_fault), methods=["POST"]),
            Route(f"{PREFIX}/faults", guarded(self.clear_faults), methods=["DELETE"]),
            Route(f"{PREFIX}/visits", guarded(self.record_visits), methods=["POST"]),
            Route(f"{PREFIX}/checks", guarded(self.list_checks), methods=["GET"]),
            Route(f"{PREFIX}/checks", guarded(self.clear_checks), methods=["DELETE"]),
            Route(f"{PREFIX}/scenario", guarded(self.export_scenario), methods=["GET"]),
            Route(f"{PREFIX}/scenario", guarded(self.load_scenario), methods=["POST"]),
            Route(f"{PREFIX}/scenarios", guarded(self.list_scenarios), methods=["GET"]),
            Route(f"{PREFIX}/scenario.schema.json", guarded(self.scenario_schema), methods=["GET"]),
            Route(f"{PREFIX}/links", guarded(self.browse_links), methods=["GET"]),
            Route(
                f"{PREFIX}/links/{{linkId:{convertors.ANY_ID}}}",
                guarded(self.browse_link),
                methods=["GET"],
            ),
        ]

    def _guarded(self, endpoint: Endpoint) -> Endpoint:
        expected = self.state.settings.control_token
        if expected is None:
            return endpoint
        wanted = expected.encode()

        async def checked(request: Request) -> Response:
            scheme, _, given = request.headers.get("authorization", "").strip().partition(" ")
            given_bytes = given.strip().encode("latin-1", "replace")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given_bytes, wanted):
                raise errors.control_unauthorized()
            return await endpoint(request)

        return checked

    async def _body(self, request: Request) -> dict[str, Any]:
        body = await read_json_body(request, self.state.settings.max_body_bytes)
        if not isinstance(body, dict):
            raise errors.invalid_request("The request body must be a JSON object.")
        return body

    def _fenced(self, request: Request) -> Guard:
        """Around each change: a control call that started before a reset changes nothing."""
        return self.state.fence.guard_request(request.scope)

    async def health(self, request: Request) -> Response:
        return HEALTHY

    async def reset(self, request: Request) -> Response:
        with self._fenced(request):  # a reset asked for before another one is not carried out
            self.state.reset()
        return json_response({"status": "reset"})

    def _clock_body(self) -> dict[str, Any]:
        clock = self.state.clock
        now = clock.now()
        return {
            "now": format_timestamp(now),
            "epoch": math.floor(now.timestamp()),
            "frozen": clock.frozen,
        }

    async def read_clock(self, request: Request) -> Response:
        return json_response(self._clock_body())

    async def set_clock(self, request: Request) -> Response:
        change = parse_clock_change(await self._body(request))
        with self._fenced(request):
            change.apply(self.state.clock)
        return json_response(self._clock_body())

    async def list_applications(self, request: Request) -> Response:
        registry = self.state.registry
        live = self.state.live
        windows = {w.key: w for w in self.state.limiter.states()}
        apps = []
        for app in registry.applications():
            workspace = registry.workspace(app.workspace_id)
            entry = _application_json(app, workspace)
            if workspace is not None:
                principal = Principal(app, workspace, self.state.settings.rate_limit_per_minute)
                entry["rateKey"] = principal.rate_key
                entry["rateLimit"] = principal.rate_limit
            apps.append(entry)
        workspaces = []
        for ws in registry.workspaces():
            entry = serialize.workspace(ws)
            if ws.kind != "sandbox":
                entry["linksUsed"] = live.count(ws.id)
            workspaces.append(entry)
        rate_windows = [
            {"key": w.key, "used": w.used, "limit": w.limit, "resetEpoch": w.reset_epoch}
            for w in windows.values()
        ]
        return json_response(
            {"applications": apps, "workspaces": workspaces, "rateWindows": rate_windows}
        )

    async def register_application(self, request: Request) -> Response:
        registration = parse_registration(await self._body(request))
        with self._fenced(request):
            app, workspace = self.state.registry.register(registration)
        return json_response(_application_json(app, workspace), status=201)

    async def record_visits(self, request: Request) -> Response:
        state = self.state
        body = await self._body(request)
        with self._fenced(request):
            recorded, link_id = state.record_visits(parse_bulk_visits(body, state.clock.now()))
        return json_response({"recorded": recorded, "linkId": link_id}, status=201)

    async def load_scenario(self, request: Request) -> Response:
        """Reset to the fixtures, then load the scenario in the body (YAML or JSON); 422
        `invalid_scenario` naming the line and path of the first problem, with nothing changed."""
        from emulator import scenario, scenario_source

        content_type = request.headers.get("content-type", "")
        if not (is_json_media(content_type) or is_yaml_media(content_type)):
            raise errors.unsupported_media_type(content_type)
        raw = await read_body(request, scenario_source.MAX_BYTES)
        state = self.state

        def compiled() -> scenario.Scenario:
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                problem = f"not UTF-8 text ({exc.reason})"
                raise scenario_source.ScenarioError("request body", None, "", problem) from None
            document = scenario_source.parse_text(text, "request body")
            return scenario.load([document], state.settings, state.sandbox)

        try:
            loaded = await run_in_threadpool(compiled)
        except scenario_source.ScenarioError as error:
            raise scenario.as_api_error(error) from None
        with self._fenced(request):
            state.load_scenario(loaded)
        return json_response(_scenario_summary(loaded))

    async def export_scenario(self, request: Request) -> Response:
        """The state as a scenario: YAML, or JSON with `?format=json`."""
        from emulator import scenario, scenario_source

        wanted = request.query_params.get("format", "yaml")
        if wanted not in ("yaml", "json"):
            raise errors.invalid_parameter("format", "format must be yaml or json.")
        document = scenario.export(self.state)
        if wanted == "json":
            return json_response(document)
        return Response(scenario_source.dump_yaml(document), media_type="application/yaml")

    async def list_scenarios(self, request: Request) -> Response:
        """The shipped scenarios (name, description) and the name of the one loaded."""
        from emulator import scenario_source

        loaded = self.state.scenario
        return json_response(
            {
                "loaded": loaded.name if loaded is not None else None,
                "shipped": [
                    {"name": name, "description": description}
                    for name, description in scenario_source.shipped_descriptions().items()
                ],
            }
        )

    async def scenario_schema(self, request: Request) -> Response:
        from emulator import scenario_source

        return Response(scenario_source.schema_text(), media_type="application/schema+json")

    async def list_requests(self, request: Request) -> Response:
        """`?after=N` gives only entries newer than sequence N (for polling);
        `?detail=1` adds masked headers and bodies."""
        params = request.query_params
        detail = params.get("detail") in ("1", "true")
        after = _sequence(params.get("after", "0"))
        if after is None:
            raise errors.invalid_parameter("after", "after must be a sequence number.")
        entries = [
            entry.to_json(detail=detail)
            for entry in self.state.journal.entries()
            if entry.sequence > after
        ]
        return json_response({"requests": entries})

    def _workspace_param(self, request: Request) -> str:
        workspace_id = request.query_params.get("workspace", SANDBOX_WORKSPACE_ID)
        if self.state.registry.workspace(workspace_id) is None:
            raise errors.invalid_parameter("workspace", f"No workspace {workspace_id!r}.")
        return workspace_id

    async def browse_links(self, request: Request) -> Response:
        """Any workspace's links, with the public list's filters, sorts and pagination."""
        workspace_id = self._workspace_param(request)
        query = parse_link_query(request.query_params)
        if workspace_id == SANDBOX_WORKSPACE_ID:
            page = self.state.sandbox.query(query)
        else:
            page = self.state.live.query(workspace_id, query)
        return json_response(serialize.page(page, self.state.settings.short_base))

    async def browse_link(self, request: Request) -> Response:
        workspace_id = self._workspace_param(request)
        link_id = request.path_params["linkId"]
        if workspace_id == SANDBOX_WORKSPACE_ID:
            link = self.state.sandbox.get(link_id)
        else:
            link = self.state.live.get(workspace_id, link_id)
        if link is None:
            raise errors.link_not_found()
        return json_response(serialize.link_detail(link, self.state.settings.short_base))

    async def one_request(self, request: Request) -> Response:
        sequence = _sequence(request.path_params["sequence"])
        entry = self.state.journal.find(sequence) if sequence is not None else None
        if entry is None:
            raise errors.ApiError(404, "not_found", "No journal entry with that sequence.")
        return json_response(entry.to_json(detail=True))

    async def clear_requests(self, request: Request) -> Response:
        with self._fenced(request):
            self.state.journal.clear()
        return Response(status_code=204)

    async def list_checks(self, request: Request) -> Response:
        """The proxy's differences grouped by operation, kind and location (`target` is null and
        nothing is found under `serve`)."""
        return json_response(self.state.checks.to_json())

    async def clear_checks(self, request: Request) -> Response:
        self.state.checks.clear()
        return Response(status_code=204)

    async def list_faults(self, request: Request) -> Response:
        return json_response({"faults": [f.to_json() for f in self.state.faults.pending()]})

    async def add_fault(self, request: Request) -> Response:
        fault = parse_fault(await self._body(request))
        require_socket(fault, connection_of(request.scope) is not None)
        with self._fenced(request):
            self.state.faults.add(fault)
        return json_response(fault.to_json(), status=201)

    async def clear_faults(self, request: Request) -> Response:
        with self._fenced(request):
            self.state.faults.clear()
        return Response(status_code=204)


def _scenario_summary(loaded: Any) -> dict[str, Any]:
    return {
        "status": "loaded",
        "name": loaded.name,
        "workspaces": len(loaded.workspaces),
        "applications": len(loaded.registrations),
        "links": len(loaded.links),
        "visits": sum(bulk.count for link in loaded.links for bulk in link.visits),
        "faults": len(loaded.faults),
        "latency": loaded.latency is not None,
    }


def _sequence(text: str) -> int | None:
    """A journal sequence number from its digits (a longer number: past every entry)."""
    if not (text.isascii() and text.isdigit()):
        return None
    return int(text) if len(text) <= _SEQUENCE_DIGITS else 10**_SEQUENCE_DIGITS


def _application_json(app: Application, workspace: Workspace | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "clientId": app.client_id,
        "environment": app.environment,
        "workspaceId": app.workspace_id,
        "name": app.name,
        "rateLimitPerMinute": app.rate_limit_per_minute,
    }
    if workspace is not None:
        body["workspace"] = serialize.workspace(workspace)
    return body
