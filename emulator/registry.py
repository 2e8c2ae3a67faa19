"""Workspaces and applications: loaded from the fixtures file, extended through the control API."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from emulator.errors import ApiError
from emulator.models import (
    SANDBOX_WORKSPACE_ID,
    Application,
    Environment,
    Workspace,
    WorkspaceKind,
    check_application,
)


@dataclass(frozen=True)
class WorkspaceDefaults:
    rate_limit_per_minute: int = 60
    link_quota: int = 100


class FixtureError(ValueError):
    """The applications fixtures file is not what the emulator can load."""


class Registry:
    def __init__(
        self,
        workspaces: list[Workspace],
        applications: list[Application],
        defaults: WorkspaceDefaults,
    ) -> None:
        self._lock = threading.Lock()
        self.defaults = defaults
        self._workspaces = {ws.id: ws for ws in workspaces}
        self._applications = {app.client_id: app for app in applications}

    @classmethod
    def from_file(cls, path: Path) -> Registry:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            defaults = WorkspaceDefaults(**_snake(raw.get("defaults", {})))
            workspaces = [Workspace(**_snake(item)) for item in raw["workspaces"]]
            applications = [Application(**_snake(item)) for item in raw["applications"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FixtureError(f"cannot load applications from {path}: {exc}") from exc
        known = {workspace.id for workspace in workspaces}
        for app in applications:
            try:
                check_application(app)
            except ApiError as exc:
                raise FixtureError(
                    f"{path}: application {app.client_id!r}: {exc.message}"
                ) from None
            if app.workspace_id not in known:
                raise FixtureError(
                    f"{path}: application {app.client_id!r} names workspace "
                    f"{app.workspace_id!r}, which the file does not define"
                )
        return cls(workspaces, applications, defaults)

    def application(self, client_id: str) -> Application | None:
        return self._applications.get(client_id)

    def workspace(self, workspace_id: str) -> Workspace | None:
        return self._workspaces.get(workspace_id)

    def applications(self) -> list[Application]:
        return list(self._applications.values())

    def workspaces(self) -> list[Workspace]:
        return list(self._workspaces.values())

    def register(
        self,
        application: Application,
        *,
        workspace_kind: WorkspaceKind = "personal",
        api_access: bool = True,
        link_quota: int | None = None,
        workspace_rate_limit: int | None = None,
    ) -> tuple[Application, Workspace]:
        """Add or replace an application; an unknown workspace is created with the defaults."""
        check_application(application)
        with self._lock:
            workspace = self._workspaces.get(application.workspace_id)
            if workspace is None:
                workspace = Workspace(
                    id=application.workspace_id,
                    kind=workspace_kind,
                    api_access=api_access,
                    rate_limit_per_minute=workspace_rate_limit
                    or self.defaults.rate_limit_per_minute,
                    link_quota=self.defaults.link_quota if link_quota is None else link_quota,
                )
                self._workspaces[workspace.id] = workspace
            self._applications[application.client_id] = application
            return application, workspace


def workspace_for_environment(environment: Environment, workspace_id: str) -> str:
    return SANDBOX_WORKSPACE_ID if environment == "sandbox" else workspace_id


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
