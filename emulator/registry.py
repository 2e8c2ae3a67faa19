"""Workspaces and applications: loaded from the fixtures file, extended by registrations (control
API and test handle, both through `parse_registration`)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

from emulator import errors, fields
from emulator.errors import ApiError
from emulator.models import (
    SANDBOX_WORKSPACE_ID,
    Application,
    Environment,
    Workspace,
    WorkspaceKind,
    check_application,
    check_identifier,
)


@dataclass(frozen=True)
class WorkspaceDefaults:
    rate_limit_per_minute: int = 60
    link_quota: int = 100


@dataclass(frozen=True)
class WorkspaceSettings:
    """The workspace settings a registration gives; None where it gives none."""

    kind: WorkspaceKind | None = None
    api_access: bool | None = None
    rate_limit_per_minute: int | None = None
    link_quota: int | None = None

    def _given(self) -> dict[str, Any]:
        return {
            name: value
            for name, value in (
                ("kind", self.kind),
                ("api_access", self.api_access),
                ("rate_limit_per_minute", self.rate_limit_per_minute),
                ("link_quota", self.link_quota),
            )
            if value is not None
        }

    def differences(self, workspace: Workspace) -> list[tuple[str, object, object]]:
        """(wire name, the workspace's value, the given value) of each setting that differs."""
        return [
            (_WORKSPACE_FIELDS[name], getattr(workspace, name), value)
            for name, value in self._given().items()
            if getattr(workspace, name) != value
        ]

    def applied_to(self, workspace: Workspace) -> Workspace:
        return replace(workspace, **self._given())


@dataclass(frozen=True)
class Registration:
    """An application to register, the settings of its workspace, and whether it may replace
    what exists."""

    application: Application
    workspace: WorkspaceSettings = WorkspaceSettings()
    replace: bool = False


_WORKSPACE_FIELDS = {
    "kind": "workspaceKind",
    "api_access": "apiAccess",
    "rate_limit_per_minute": "workspaceRateLimitPerMinute",
    "link_quota": "linkQuota",
}
_LIMIT_MAX = 10**9


def parse_registration(body: object) -> Registration:
    """`{clientId, clientSecret, environment?, workspaceId?, name?, rateLimitPerMinute?,
    linkQuota?, workspaceRateLimitPerMinute?, workspaceKind?, apiAccess?, replace?}`.

    A sandbox application always belongs to the shared sandbox workspace, so the workspace
    settings are for live applications only; a live one needs its `workspaceId`."""
    if not isinstance(body, dict):
        raise errors.invalid_request("The request body must be a JSON object.")
    client_id = fields.text(body, "clientId", required=True)
    secret = fields.text(body, "clientSecret", required=True)
    assert client_id is not None and secret is not None
    environment = fields.text(body, "environment") or "sandbox"
    if environment not in ("sandbox", "live"):
        raise errors.validation_failed("environment", "environment must be sandbox or live.")
    workspace_id = fields.text(body, "workspaceId", required=environment == "live")
    kind = fields.text(body, "workspaceKind")
    if kind is not None and kind not in ("personal", "company"):
        raise errors.validation_failed(
            "workspaceKind", "workspaceKind must be personal or company."
        )
    settings = WorkspaceSettings(
        kind=cast(WorkspaceKind | None, kind),
        api_access=fields.flag(body, "apiAccess", None),
        rate_limit_per_minute=fields.whole(body, "workspaceRateLimitPerMinute", 1, _LIMIT_MAX),
        link_quota=fields.whole(body, "linkQuota", 0, _LIMIT_MAX),
    )
    if environment == "sandbox":
        given = [_WORKSPACE_FIELDS[name] for name in settings._given()]
        if given:
            raise errors.validation_failed(
                given[0],
                f"{given[0]} is for live applications: sandbox applications share the "
                "sandbox workspace.",
            )
        workspace_id = SANDBOX_WORKSPACE_ID
    assert workspace_id is not None
    application = Application(
        client_id=client_id,
        client_secret=secret,
        environment=cast(Environment, environment),
        workspace_id=workspace_id,
        name=fields.text(body, "name") or client_id,
        rate_limit_per_minute=fields.whole(body, "rateLimitPerMinute", 1, _LIMIT_MAX),
    )
    check_application(application)
    return Registration(application, settings, fields.flag(body, "replace", False))


@dataclass(frozen=True)
class WorkspaceChange:
    """A workspace to create, or to change where it exists (scenario files' `workspaces`)."""

    id: str
    settings: WorkspaceSettings


def parse_workspace(body: object) -> WorkspaceChange:
    """`{id, kind?, apiAccess?, rateLimitPerMinute?, linkQuota?}`, the shape in which
    `GET /_emulator/applications` shows a workspace. The sandbox workspace is the sample set's
    and cannot be changed."""
    if not isinstance(body, dict):
        raise errors.invalid_request("A workspace must be an object.")
    workspace_id = fields.text(body, "id", required=True)
    assert workspace_id is not None
    check_identifier("id", workspace_id)
    if workspace_id == SANDBOX_WORKSPACE_ID:
        raise errors.validation_failed(
            "id", "The sandbox workspace serves the sample set and cannot be changed."
        )
    kind = fields.text(body, "kind")
    if kind is not None and kind not in ("personal", "company"):
        raise errors.validation_failed("kind", "kind must be personal or company.")
    return WorkspaceChange(
        workspace_id,
        WorkspaceSettings(
            kind=cast(WorkspaceKind | None, kind),
            api_access=fields.flag(body, "apiAccess", None),
            rate_limit_per_minute=fields.whole(body, "rateLimitPerMinute", 1, _LIMIT_MAX),
            link_quota=fields.whole(body, "linkQuota", 0, _LIMIT_MAX),
        ),
    )


class FixtureError(ValueError):
    """A fixtures file (applications or sample set) is not what the emulator can load; the
    one-line message names the file and the problem."""


class Registry:
    def __init__(
        self,
        workspaces: list[Workspace],
        applications: list[Application],
        defaults: WorkspaceDefaults,
    ) -> None:
        self._lock = threading.Lock()
        # Moves on with every change, so that what was derived from the registry can be kept.
        self.version = 0
        self.defaults = defaults
        self._workspaces = {ws.id: ws for ws in workspaces}
        self._applications = {app.client_id: app for app in applications}

    @classmethod
    def from_file(cls, path: Path) -> Registry:
        """The registry of an applications file; a `FixtureError` names the file, the place and
        the problem (`applications[2].environment: ...`)."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise FixtureError(f"{path}: cannot read it ({exc.strerror or exc})") from None
        except ValueError as exc:  # not UTF-8, or not JSON
            raise FixtureError(f"{path}: not valid JSON ({exc})") from None
        try:
            return cls(*_read_applications(raw))
        except ValueError as exc:
            raise FixtureError(f"{path}: {exc}") from None

    def application(self, client_id: str) -> Application | None:
        return self._applications.get(client_id)

    def workspace(self, workspace_id: str) -> Workspace | None:
        return self._workspaces.get(workspace_id)

    def applications(self) -> list[Application]:
        return list(self._applications.values())

    def workspaces(self) -> list[Workspace]:
        return list(self._workspaces.values())

    def register(self, registration: Registration) -> tuple[Application, Workspace]:
        """Add an application; its workspace is created from the registration's settings and the
        defaults when new. An existing client id, or an existing workspace whose settings differ
        from those given, is a 409 unless the registration says `replace`."""
        application, settings = registration.application, registration.workspace
        with self._lock:
            if application.client_id in self._applications and not registration.replace:
                raise errors.application_exists(application.client_id)
            workspace = self._workspaces.get(application.workspace_id)
            if workspace is None:
                workspace = self._new_workspace(application.workspace_id, settings)
            else:
                differences = settings.differences(workspace)
                if differences and not registration.replace:
                    name, have, given = differences[0]
                    raise errors.workspace_conflict(workspace.id, name, have, given)
                workspace = settings.applied_to(workspace)
            self._workspaces[workspace.id] = workspace
            self._applications[application.client_id] = application
            self.version += 1
            return application, workspace

    def put_workspace(self, change: WorkspaceChange) -> Workspace:
        """Create the workspace with the given settings and the defaults, or change the given
        settings of the one that exists."""
        with self._lock:
            workspace = self._workspaces.get(change.id)
            if workspace is None:
                workspace = self._new_workspace(change.id, change.settings)
            else:
                workspace = change.settings.applied_to(workspace)
            self._workspaces[workspace.id] = workspace
            self.version += 1
            return workspace

    def _new_workspace(self, workspace_id: str, settings: WorkspaceSettings) -> Workspace:
        return Workspace(
            id=workspace_id,
            kind=settings.kind or "personal",
            api_access=settings.api_access is not False,
            rate_limit_per_minute=settings.rate_limit_per_minute
            or self.defaults.rate_limit_per_minute,
            link_quota=self.defaults.link_quota
            if settings.link_quota is None
            else settings.link_quota,
        )


def workspace_for_environment(environment: Environment, workspace_id: str) -> str:
    return SANDBOX_WORKSPACE_ID if environment == "sandbox" else workspace_id


def _read_applications(
    raw: object,
) -> tuple[list[Workspace], list[Application], WorkspaceDefaults]:
    if not isinstance(raw, dict):
        raise ValueError('expected a JSON object with "workspaces" and "applications"')
    defaults = WorkspaceDefaults(**_checked(raw.get("defaults", {}), "defaults", _DEFAULTS))
    lists = {}
    for key in ("workspaces", "applications"):
        if not isinstance(raw.get(key), list):
            raise ValueError(f'"{key}" must be a list')
        lists[key] = raw[key]
    workspaces = [
        Workspace(**_checked(item, f"workspaces[{i}]", _WORKSPACE))
        for i, item in enumerate(lists["workspaces"])
    ]
    applications = [
        Application(**_checked(item, f"applications[{i}]", _APPLICATION))
        for i, item in enumerate(lists["applications"])
    ]
    known = {workspace.id for workspace in workspaces}
    for i, application in enumerate(applications):
        where = f"applications[{i}]: application {application.client_id!r}"
        try:
            check_application(application)
        except ApiError as exc:
            raise ValueError(f"{where}: {exc.message}") from None
        if application.workspace_id not in known:
            raise ValueError(
                f"{where} names workspace {application.workspace_id!r}, "
                "which the file does not define"
            )
    return workspaces, applications, defaults


# Each fixtures field: its type (or the strings it may be), and whether it is required.
_DEFAULTS: dict[str, tuple[Any, bool]] = {
    "rate_limit_per_minute": (int, False),
    "link_quota": (int, False),
}
_WORKSPACE: dict[str, tuple[Any, bool]] = {
    "id": (str, True),
    "kind": (("sandbox", "personal", "company"), True),
    "api_access": (bool, False),
    "rate_limit_per_minute": (int, False),
    "link_quota": (int, False),
}
_APPLICATION: dict[str, tuple[Any, bool]] = {
    "client_id": (str, True),
    "client_secret": (str, True),
    "environment": (("sandbox", "live"), True),
    "workspace_id": (str, True),
    "name": (str, False),
    "rate_limit_per_minute": (int | None, False),
}


def _checked(item: object, where: str, spec: dict[str, tuple[Any, bool]]) -> dict[str, Any]:
    """`item`'s fields in snake case, each of the type `spec` gives; ValueError names the first
    that is missing, unknown or of another type."""
    if not isinstance(item, dict):
        raise ValueError(f"{where}: expected an object")
    fields = _snake(item)
    camel = {snake: camel for camel, snake in _RENAMES.items()}
    for name, (_, required) in spec.items():
        if required and name not in fields:
            raise ValueError(f"{where}: no {camel.get(name, name)!r}")
    for name, value in fields.items():
        here = f"{where}.{camel.get(name, name)}"
        if name not in spec:
            raise ValueError(f"{where}: unknown key {camel.get(name, name)!r}")
        kind = spec[name][0]
        if isinstance(kind, tuple):
            if value not in kind:
                raise ValueError(f"{here}: {value!r} is not one of {', '.join(kind)}")
        elif value is None and kind == int | None:
            continue
        elif kind in (int, int | None):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{here}: expected a whole number >= 0, got {value!r}")
        elif not isinstance(value, kind):
            raise ValueError(f"{here}: expected a {_KIND_NAMES[kind]}, got {value!r}")
    return fields


_KIND_NAMES = {str: "string", bool: "boolean (true or false)"}
_RENAMES = {
    "clientId": "client_id",
    "clientSecret": "client_secret",
    "workspaceId": "workspace_id",
    "apiAccess": "api_access",
    "rateLimitPerMinute": "rate_limit_per_minute",
    "linkQuota": "link_quota",
}


def _snake(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise TypeError(f"expected an object, got {type(item).__name__}")
    return {_RENAMES.get(key, key): value for key, value in cast(dict[str, Any], item).items()}
