"""Scenarios: a state of the emulator, and its latency, kept in a file.

`compile_scenario` reads a merged document (scenario_source.py) through the parsers the control
API uses (registrations, workspaces, faults, visits, clock changes, latency profiles), and checks
what it names (workspaces, applications, slugs, ids, visit times) against the state a reset to
the fixtures gives. A bad scenario stops there, with nothing changed; a `Scenario` is then applied
to a freshly built state and cannot fail. `export` writes a state back as a scenario document
that loads into an equal state.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from emulator import errors, fields, scenario_source, serialize
from emulator.clock import EARLIEST, LATEST, Clock, ClockChange, parse_clock_change, parse_timestamp
from emulator.errors import ApiError
from emulator.faults import Fault, parse_fault
from emulator.latency import Latency, LatencyProfile, parse_latency
from emulator.live_store import StoredLink
from emulator.models import Application, NewLink, Principal, parse_new_link
from emulator.registry import (
    Registration,
    Registry,
    WorkspaceChange,
    parse_registration,
    parse_workspace,
)
from emulator.scenario_source import Document, Merged, PathKey, ScenarioError
from emulator.visits import BulkVisits, parse_bulk_visits

if TYPE_CHECKING:
    from emulator.settings import Settings
    from emulator.state import EmulatorState
    from emulator.store import SandboxStore

VERSION = 1
MAX_VISITS = 1_000_000  # visits of all links together, each a row
MAX_USAGE = 1_000_000  # requests counted in rate windows, all entries together
MAX_USAGE_ENTRY = 100_000
LINK_ID = re.compile(r"[A-Za-z0-9_.~-]{1,128}")
_FIELD_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True)
class PlannedLink:
    workspace_id: str
    new: NewLink
    created_at: datetime
    link_id: str | None
    visits: tuple[BulkVisits, ...]


@dataclass(frozen=True)
class Usage:
    """Requests counted in a rate window: `count` at `at` (epoch seconds)."""

    key: str
    limit: int
    at: float
    count: int


@dataclass(frozen=True)
class Scenario:
    name: str | None
    description: str | None
    clock: ClockChange | None
    workspaces: tuple[WorkspaceChange, ...]
    registrations: tuple[Registration, ...]
    links: tuple[PlannedLink, ...]
    faults: tuple[Fault, ...]
    latency: LatencyProfile | None
    usage: tuple[Usage, ...]

    def apply(self, state: EmulatorState) -> None:
        """Onto a state just built: its live links are replaced in one transaction."""
        if self.clock is not None:
            self.clock.apply(state.clock)
        for change in self.workspaces:
            state.registry.put_workspace(change)
        for registration in self.registrations:
            state.registry.register(registration)
        given_ids = {link.link_id for link in self.links if link.link_id}
        given_slugs = {link.new.slug for link in self.links if link.new.slug}
        sample = state.sandbox.has_slug

        def reserved(slug: str) -> bool:  # for generated slugs: a later link may give it
            return sample(slug) or slug in given_slugs

        with state.live.replacing() as batch:
            for planned in self.links:
                link = batch.add_link(
                    planned.workspace_id,
                    planned.new,
                    planned.created_at,
                    link_id=planned.link_id,
                    reserved=sample if planned.new.slug else reserved,
                    reserved_ids=given_ids.__contains__,
                )
                for bulk in planned.visits:
                    batch.add_visits(link.id, bulk.visits(batch.visit_count(link.id)))
        for fault in self.faults:
            state.faults.add(fault)
        for usage in self.usage:
            state.limiter.fill(usage.key, usage.limit, [usage.at] * usage.count)
        state.latency = Latency(self.latency, state.settings.latency_scale)


def load(
    references: Sequence[str | Document], settings: Settings, sandbox: SandboxStore
) -> Scenario:
    """Shipped names, files or read documents, merged in order and compiled."""
    documents = [
        ref if isinstance(ref, Document) else scenario_source.read(ref) for ref in references
    ]
    return compile_scenario(scenario_source.merge(documents), settings, sandbox)


def compile_scenario(merged: Merged, settings: Settings, sandbox: SandboxStore) -> Scenario:
    """Everything the scenario says, checked; a ScenarioError names the first problem."""
    doc = merged.value
    registry = Registry.from_file(settings.resolved_fixtures_dir / "applications.json")
    clock = None
    now = Clock().now()
    if doc.get("clock") is not None:
        with _at(merged, ("clock",)):
            clock = parse_clock_change(doc["clock"])
        now = clock.now or now
    workspaces = []
    for index, body in enumerate(doc.get("workspaces") or []):
        with _at(merged, ("workspaces", index)):
            change = parse_workspace(body)
            registry.put_workspace(change)
        workspaces.append(change)
    registrations = []
    for index, body in enumerate(doc.get("applications") or []):
        with _at(merged, ("applications", index)):
            registration = parse_registration(body)
            registry.register(registration)
        registrations.append(registration)
    links = _links(merged, registry, sandbox, now)
    faults = []
    for index, body in enumerate(doc.get("faults") or []):
        with _at(merged, ("faults", index)):
            faults.append(replace(parse_fault(body), source="scenario"))
    latency = None
    if doc.get("latency") is not None:
        with _at(merged, ("latency",)):
            latency = parse_latency(doc["latency"])
    usage = _usage(merged, registry, settings)
    description = doc.get("description")
    return Scenario(
        name=merged.name,
        description=description if isinstance(description, str) else None,
        clock=clock,
        workspaces=tuple(workspaces),
        registrations=tuple(registrations),
        links=tuple(links),
        faults=tuple(faults),
        latency=latency,
        usage=tuple(usage),
    )


@contextmanager
def _at(merged: Merged, path: PathKey) -> Iterator[None]:
    """An ApiError of a parser (naming its field) as a ScenarioError at `path` and that field."""
    try:
        yield
    except ApiError as error:
        raise merged.error((*path, *_field_path(error.field)), error.message) from None


def _field_path(field: str | None) -> PathKey:
    """`default.lognormal.p99` or `visits[2].at` as a path."""
    return tuple(int(index) if index else name for name, index in _FIELD_PART.findall(field or ""))


def _links(
    merged: Merged, registry: Registry, sandbox: SandboxStore, now: datetime
) -> list[PlannedLink]:
    slugs: dict[str, int] = {}
    ids: dict[str, int] = {}
    visits_total = 0
    links = []
    for index, body in enumerate(merged.value.get("links") or []):
        with _at(merged, ("links", index)):
            if not isinstance(body, dict):
                raise errors.invalid_request("A link must be an object.")
            workspace_id = fields.text(body, "workspace", required=True)
            workspace = registry.workspace(workspace_id or "")
            if workspace is None:
                raise errors.validation_failed(
                    "workspace",
                    f"No workspace {workspace_id!r}: define it under workspaces, or register an "
                    "application in it.",
                )
            if workspace.kind == "sandbox":
                raise errors.validation_failed(
                    "workspace",
                    "The sandbox workspace serves the sample set; a scenario's links are live.",
                )
            new = parse_new_link(body)
            if new.slug is not None:
                if sandbox.has_slug(new.slug):
                    raise errors.validation_failed(
                        "slug", f"The slug {new.slug!r} is taken by a link of the sample set."
                    )
                if new.slug in slugs:
                    raise errors.validation_failed(
                        "slug", f"The slug {new.slug!r} is taken: links[{slugs[new.slug]}] has it."
                    )
                slugs[new.slug] = index
            link_id = fields.text(body, "id")
            if link_id is not None:
                if not LINK_ID.fullmatch(link_id):
                    raise errors.validation_failed(
                        "id", "id must be 1 to 128 of A-Z, a-z, 0-9, '_', '.', '~' and '-'."
                    )
                if link_id in ids:
                    raise errors.validation_failed(
                        "id", f"The id {link_id!r} is taken: links[{ids[link_id]}] has it."
                    )
                ids[link_id] = index
            created_at = _instant(body, "createdAt", now)
            visits = []
            for number, visit in enumerate(body.get("visits") or []):
                with fields.within(f"visits[{number}]"):
                    if not isinstance(visit, dict):
                        raise errors.invalid_request("A visit must be an object.")
                    bulk = parse_bulk_visits({**visit, "slug": new.slug or "-"}, now)
                    if bulk.template.at < created_at:
                        raise errors.validation_failed(
                            "at",
                            f"The visit at {format_instant(bulk.template.at)} is before the link "
                            f"was created ({format_instant(created_at)}).",
                        )
                visits_total += bulk.count
                if visits_total > MAX_VISITS:
                    raise errors.validation_failed(
                        f"visits[{number}].count",
                        f"The scenario's links have more than {MAX_VISITS} visits in all.",
                    )
                visits.append(bulk)
        assert workspace_id is not None
        links.append(PlannedLink(workspace_id, new, created_at, link_id, tuple(visits)))
    return links


def _usage(merged: Merged, registry: Registry, settings: Settings) -> list[Usage]:
    usage = []
    total = 0
    for index, body in enumerate(merged.value.get("usage") or []):
        with _at(merged, ("usage", index)):
            if not isinstance(body, dict):
                raise errors.invalid_request("A usage entry must be an object.")
            client_id = fields.text(body, "clientId")
            workspace_id = fields.text(body, "workspace")
            if (client_id is None) == (workspace_id is None):
                raise errors.validation_failed(
                    "clientId", "Give clientId or workspace: whose window the requests count in."
                )
            principal = _window_owner(registry, client_id, workspace_id, settings)
            at = _instant(body, "at", None)
            default = min(principal.rate_limit, MAX_USAGE_ENTRY)
            count = fields.whole(body, "requests", 1, MAX_USAGE_ENTRY) or default
            total += count
            if total > MAX_USAGE:
                raise errors.validation_failed(
                    "requests", f"The scenario's usage has more than {MAX_USAGE} requests in all."
                )
        usage.append(Usage(principal.rate_key, principal.rate_limit, at.timestamp(), count))
    return usage


def _window_owner(
    registry: Registry, client_id: str | None, workspace_id: str | None, settings: Settings
) -> Principal:
    """A principal whose rate window the usage counts in."""
    override = settings.rate_limit_per_minute
    if client_id is not None:
        application = registry.application(client_id)
        if application is None:
            raise errors.validation_failed("clientId", f"No application {client_id!r}.")
        workspace = registry.workspace(application.workspace_id)
        assert workspace is not None
        return Principal(application, workspace, override)
    workspace = registry.workspace(workspace_id or "")
    if workspace is None:
        raise errors.validation_failed("workspace", f"No workspace {workspace_id!r}.")
    if workspace.kind == "sandbox":
        raise errors.validation_failed(
            "workspace", "Sandbox applications have windows of their own: give clientId."
        )
    return Principal(Application("-", "-", "live", workspace.id), workspace, override)


def _instant(body: dict[str, Any], name: str, default: datetime | None) -> datetime:
    value = body.get(name)
    if value is None:
        if default is None:
            raise errors.validation_failed(name, f"{name} is required.")
        return default
    if not isinstance(value, str):
        raise errors.invalid_request(f"{name} must be an ISO 8601 string.", name)
    try:
        moment = parse_timestamp(value)
    except (ValueError, OverflowError):
        raise errors.validation_failed(
            name, f"{name} is not an ISO 8601 instant: {value!r}."
        ) from None
    if not EARLIEST <= moment <= LATEST:
        raise errors.validation_failed(name, f"{name} must be between 1970-01-02 and 9000-01-01.")
    return moment


# -- export ---------------------------------------------------------------------------------------


def format_instant(moment: datetime) -> str:
    """UTC, `Z`, whole seconds unless it has a fraction (then microseconds)."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{moment.microsecond:06d}Z" if moment.microsecond else "Z")


def export(state: EmulatorState) -> dict[str, Any]:
    """The state as a scenario document: what differs from the fixtures (workspaces and
    applications added or changed), the live links with their visits counted per day,
    country, referrer and device, the clock, pending faults, latency and rate windows."""
    baseline = Registry.from_file(state.settings.resolved_fixtures_dir / "applications.json")
    clock = state.clock
    doc: dict[str, Any] = {
        "version": VERSION,
        "description": "Exported from 8here-emulator",
        "clock": {"now": format_instant(clock.now()), "frozen": clock.frozen},
    }
    registry = state.registry
    workspaces = [
        serialize.workspace(ws)
        for ws in registry.workspaces()
        if ws.kind != "sandbox" and baseline.workspace(ws.id) != ws
    ]
    applications = [
        _application_entry(app, replace_it=baseline.application(app.client_id) is not None)
        for app in registry.applications()
        if baseline.application(app.client_id) != app
    ]
    links = [_link_entry(stored) for stored in state.live.stored_links()]
    faults = [_fault_entry(fault) for fault in state.faults.pending()]
    usage = [
        entry
        for key, (_limit, stamps) in state.limiter.windows().items()
        for entry in _usage_entries(key, stamps)
    ]
    for key, items in (
        ("workspaces", workspaces),
        ("applications", applications),
        ("links", links),
        ("faults", faults),
    ):
        if items:
            doc[key] = items
    profile = state.latency.profile
    if profile is not None:
        doc["latency"] = profile.to_json()
    if usage:
        doc["usage"] = usage
    return doc


def _application_entry(app: Application, *, replace_it: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "clientId": app.client_id,
        "clientSecret": app.client_secret,
        "environment": app.environment,
    }
    if app.environment == "live":
        entry["workspaceId"] = app.workspace_id
    entry["name"] = app.name
    if app.rate_limit_per_minute is not None:
        entry["rateLimitPerMinute"] = app.rate_limit_per_minute
    if replace_it:
        entry["replace"] = True
    return entry


def _link_entry(stored: StoredLink) -> dict[str, Any]:
    link = stored.link
    entry: dict[str, Any] = {
        "workspace": stored.workspace_id,
        "id": link.id,
        "slug": link.slug,
        "title": link.title,
        "destination": link.destination,
        "createdAt": format_instant(link.created_at),
    }
    visits = []
    for counted in stored.visits:
        visit: dict[str, Any] = {
            "at": format_instant(counted.at),
            "count": counted.count,
            "country": counted.country,
            "referrer": counted.referrer,
            "device": counted.device,
        }
        if counted.visitor is not None:
            visit["visitor"] = counted.visitor
        visits.append(visit)
    if visits:
        entry["visits"] = visits
    return entry


def _fault_entry(fault: Fault) -> dict[str, Any]:
    body = fault.to_json()
    body.pop("fired")
    if not body["delayMs"]:
        body.pop("delayMs")
    return {name: value for name, value in body.items() if value is not None}


def _usage_entries(key: str, stamps: list[float]) -> Iterator[dict[str, Any]]:
    kind, _, owner = key.partition(":")
    whose = {"clientId": owner} if kind == "app" else {"workspace": owner}
    for stamp, count in sorted(Counter(stamps).items()):
        at = format_instant(datetime.fromtimestamp(stamp, UTC))
        yield {**whose, "at": at, "requests": count}


# -- errors over HTTP and in the handle -----------------------------------------------------------


def as_api_error(error: ScenarioError) -> ApiError:
    return errors.invalid_scenario(str(error), error.path or None)
