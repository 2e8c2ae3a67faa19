"""Emulator: what the `emulator` and `emulator_app` fixtures hand a test.

It works on the EmulatorState in this process directly (no HTTP), so setting up a test leaves no
trace in the journal and costs microseconds. It is also an ASGI app, so
`httpx.ASGITransport(app=emulator_app)` serves the same state with no socket, and
`sync_transport()` does the same for a sync `httpx.Client`.

Its arguments go through the parsers the control API uses, so a bad one is refused with the
message the control API would answer, as an `InvalidArgument` (a ValueError).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from emulator import assertions
from emulator.assertions import JournalRecord

if TYPE_CHECKING:
    import httpx
    from starlette.types import ASGIApp, Receive, Scope, Send

    from emulator.errors import ApiError
    from emulator.faults import Fault
    from emulator.scenario_source import ScenarioError
    from emulator.state import EmulatorState
    from emulator.sync_transport import LoopThread


class InvalidArgument(ValueError):
    """An argument the emulator refuses; the message, `code` and `field` are those of the
    control API's answer to the same request."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.code = error.code
        self.field = error.field


class RegistrationConflict(InvalidArgument):
    """The client id is registered already (`application_exists`), or the workspace exists with
    other settings (`workspace_conflict`); pass `replace=True` to replace them."""


class InvalidScenario(InvalidArgument):
    """A scenario that cannot be loaded (code `invalid_scenario`); the message is one line that
    names the file, the line and the path of the first problem, also in `source`, `line` and
    `path`."""

    def __init__(self, error: ScenarioError) -> None:
        from emulator.scenario import as_api_error

        super().__init__(as_api_error(error))
        self.source = error.source
        self.line = error.line
        self.path = error.path


@contextmanager
def _arguments() -> Iterator[None]:
    from emulator.errors import ApiError

    try:
        yield
    except ApiError as error:
        kind = RegistrationConflict if error.status == 409 else InvalidArgument
        raise kind(error) from None


@dataclass(frozen=True)
class Credentials:
    """An application's credentials, as a client under test needs them."""

    client_id: str
    client_secret: str = field(repr=False)
    environment: Literal["sandbox", "live"] = "sandbox"
    workspace_id: str = "sandbox"


DEFAULT_CLIENT_ID = "sb_demo_client"


class ClockControl:
    """The emulator's clock: token expiry and rate windows follow it, so tests move time instead
    of sleeping. It runs with real time until `freeze()` or `set()`."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state

    def now(self) -> datetime:
        return self._state.clock.now()

    @property
    def frozen(self) -> bool:
        return self._state.clock.frozen

    def advance(self, seconds: float | timedelta) -> None:
        """Move the clock on (never back: `set` an earlier moment for that). A client's `sleep`
        can be this, to wait on the emulator's time."""
        step = seconds.total_seconds() if isinstance(seconds, timedelta) else seconds
        self._change({"advanceSeconds": step})

    def set(self, moment: datetime | str, *, frozen: bool = True) -> None:
        """Jump to `moment` (a datetime or an ISO 8601 instant), frozen there unless told not."""
        self._change({"now": moment, "frozen": frozen})

    def freeze(self) -> None:
        """Stop the clock at the next whole second (the wire's resolution), so waits, windows and
        expiries come out in whole seconds."""
        self.set(datetime.fromtimestamp(math.ceil(self.now().timestamp()), UTC))

    def resume(self) -> None:
        """Let a frozen clock run on from where it stands."""
        self._change({"frozen": False})

    def _change(self, body: dict[str, Any]) -> None:
        from emulator.clock import parse_clock_change

        with _arguments():
            parse_clock_change(body).apply(self._state.clock)


class Emulator:
    """A test's handle on an emulator: its `url`, default `credentials`, `token()`, `clock`,
    `journal`, `fault()`, `register_application()`, `visit()`, `load_scenario()`, `reset()`,
    the client-behaviour assertions (`assert_token_reused()`...) and `sync_transport()`."""

    def __init__(self, app: ASGIApp, url: str, *, in_process: bool = False) -> None:
        self.app = app
        self.url = url
        self.in_process = in_process  # served with no socket: no fault can cut a connection
        self.state: EmulatorState = app.state.emulator  # type: ignore[attr-defined]
        self.clock = ClockControl(self.state)
        self._numbers = itertools.count(1)
        self._loop: LoopThread | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    @property
    def credentials(self) -> Credentials:
        """The default sandbox application's (`sb_demo_client`), as registered now."""
        return self._credentials_of(DEFAULT_CLIENT_ID)

    def reset(self) -> None:
        """Back to the start: live links, applications, tokens, rate windows, journal, faults,
        clock (and the scenario the server started with, if any). Requests still in flight are
        fenced off: none is journaled or changes anything after the reset. The fixtures do this
        before every test."""
        self.state.reset()
        self._numbers = itertools.count(1)

    def load_scenario(self, scenario: str | os.PathLike[str] | Mapping[str, Any]) -> None:
        """Back to the fixtures, then `scenario`: a shipped scenario's name (`"busy-link"`), a
        scenario file (a path), or a dict of a file's keys (`{"version": 1, ...}`; its `include`
        paths are relative to the working directory). A bad one raises InvalidScenario and
        changes nothing. The next reset goes back to the start, as usual."""
        from emulator import scenario_source
        from emulator.scenario import load

        state = self.state
        try:
            if isinstance(scenario, Mapping):
                document = scenario_source.from_value(dict(scenario), folder=Path.cwd())
            else:
                document = scenario_source.read(
                    scenario if isinstance(scenario, str) else Path(scenario)
                )
            compiled = load([document], state.settings, state.sandbox)
        except scenario_source.ScenarioError as error:
            raise InvalidScenario(error) from None
        state.load_scenario(compiled)
        self._numbers = itertools.count(1)

    @property
    def scenario_name(self) -> str | None:
        """The name of the scenario loaded (a shipped one's, a file's), or None."""
        loaded = self.state.scenario
        return loaded.name if loaded is not None else None

    def export_scenario(self) -> dict[str, Any]:
        """The state as a scenario (what `GET /_emulator/scenario?format=json` gives): a dict
        that `load_scenario` loads into an equal state."""
        from emulator.scenario import export

        return export(self.state)

    def close(self) -> None:
        """Stop what `sync_transport()` started (the fixtures do this at the session's end)."""
        if self._loop is not None:
            self._loop.stop()
            self._loop = None

    # -- the journal and faults

    @property
    def journal(self) -> list[JournalRecord]:
        """The API requests received since the last reset, oldest first."""
        return [
            JournalRecord.from_json(e.to_json(detail=True)) for e in self.state.journal.entries()
        ]

    def clear_journal(self) -> None:
        """Forget the requests journaled so far (a reset does it too)."""
        self.state.journal.clear()

    def fault(
        self,
        status: int | None = None,
        *,
        method: str | None = None,
        path: str | None = None,
        delay_ms: int = 0,
        times: int = 1,
        retry_after: int | None = None,
        network: Literal["reset", "empty", "garbage", "truncated", "dribble"] | None = None,
        dribble_ms: int | None = None,
        every: int | None = None,
        probability: float | None = None,
        seed: int | None = None,
    ) -> None:
        """Make the next `times` API requests matching `method` and `path` (a glob on the path,
        starting with `/`) fail with `status` and/or wait `delay_ms` of real time, and/or meet
        a `network` failure: `reset`, `empty`, `garbage` (no HTTP response at all), `truncated`
        (half the body) or `dribble` (the body spread over `dribble_ms`, default 1000). A 429
        sends `Retry-After: retry_after` (default 1) and the caller's rate-limit headers. The
        in-process `emulator_app` has no socket to cut, so it refuses all network kinds but
        `dribble`. With `every=n` only every n-th matching request meets the fault; with
        `probability=p` each does with that probability, drawn from a generator seeded by
        `seed` (default 0)."""
        from emulator.faults import parse_fault, require_socket

        body = {"status": status, "method": method, "path": path, "delayMs": delay_ms}
        body |= {"network": network, "dribbleMs": dribble_ms}
        body |= {"every": every, "probability": probability, "seed": seed}
        with _arguments():
            fault = parse_fault({**body, "times": times, "retryAfter": retry_after})
            require_socket(fault, has_socket=not self.in_process)
        self.state.faults.add(fault)

    @property
    def pending_faults(self) -> list[Fault]:
        """Faults not used up yet, each with its `times` left and the number it `fired`."""
        return self.state.faults.pending()

    def clear_faults(self) -> None:
        """Drop the pending faults (say, of a test that meant some never to fire)."""
        self.state.faults.clear()

    # -- applications, tokens and visits

    def token(self, app: Credentials | str | None = None) -> str:
        """A fresh bearer token for `app` (credentials or a client id; default: `credentials`).
        Issued directly, so it is not in the journal."""
        chosen = self._credentials_of(app) if isinstance(app, str) else app or self.credentials
        with _arguments():  # wrong credentials, or a workspace without API access
            issued = self.state.tokens.exchange(chosen.client_id, chosen.client_secret)
        return issued.access_token

    def register_application(
        self,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        environment: Literal["sandbox", "live"] = "sandbox",
        workspace_id: str | None = None,
        rate_limit_per_minute: int | None = None,
        link_quota: int | None = None,
        workspace_kind: Literal["personal", "company"] | None = None,
        workspace_rate_limit_per_minute: int | None = None,
        api_access: bool | None = None,
        replace: bool = False,
    ) -> Credentials:
        """Register an application and return its credentials. Without a client id one is made
        up; a live application without a workspace gets a workspace of its own, so its links,
        quota and rate window are its test's alone. The workspace settings (`link_quota`,
        `workspace_kind`, `workspace_rate_limit_per_minute`, `api_access`) are for live
        applications. A registered client id, or an existing workspace with other settings,
        raises RegistrationConflict unless `replace=True`."""
        from emulator.registry import parse_registration

        if client_id is None:
            client_id = self._unused_client_id(environment)
        if environment == "live" and workspace_id is None:
            workspace_id = f"ws_{client_id}"
        body = {
            "clientId": client_id,
            "clientSecret": client_secret or f"{client_id}_secret",
            "environment": environment,
            "workspaceId": workspace_id,
            "rateLimitPerMinute": rate_limit_per_minute,
            "linkQuota": link_quota,
            "workspaceKind": workspace_kind,
            "workspaceRateLimitPerMinute": workspace_rate_limit_per_minute,
            "apiAccess": api_access,
            "replace": replace,
        }
        with _arguments():
            application, _workspace = self.state.registry.register(parse_registration(body))
        return Credentials(
            application.client_id,
            application.client_secret,
            application.environment,
            application.workspace_id,
        )

    def _unused_client_id(self, environment: str) -> str:
        prefix = "sb" if environment == "sandbox" else "lv"
        registry = self.state.registry
        while True:
            candidate = f"{prefix}_test_{next(self._numbers)}"
            if registry.application(candidate) is None:
                return candidate

    def _credentials_of(self, client_id: str) -> Credentials:
        known = self.state.registry.application(client_id)
        if known is None:
            raise LookupError(f"no application {client_id!r} is registered")
        return Credentials(
            known.client_id, known.client_secret, known.environment, known.workspace_id
        )

    def visit(
        self,
        slug: str,
        count: int = 1,
        *,
        country: str | None = None,
        referrer: str | None = None,
        device: Literal["desktop", "mobile", "tablet"] | None = None,
        at: datetime | str | None = None,
    ) -> int:
        """Record `count` visits to the live link `slug` (now on the emulator's clock unless `at`
        is given); returns how many were recorded. Sample links' analytics are static."""
        from emulator.clock import format_timestamp
        from emulator.visits import parse_bulk_visits

        body: dict[str, Any] = {"slug": slug, "count": count, "country": country}
        body |= {"referrer": referrer, "device": device}
        body["at"] = format_timestamp(at) if isinstance(at, datetime) else at
        state = self.state
        with _arguments():
            bulk = parse_bulk_visits(body, state.clock.now())
            if state.live.find_slug(slug) is None:
                raise LookupError(f"no live link has the slug {slug!r}")
            recorded, _link_id = state.record_visits(bulk)
        return recorded

    # -- in process, sync

    def sync_transport(self) -> httpx.BaseTransport:
        """An httpx transport that serves this emulator's state in process, for a sync client:
        `httpx.Client(transport=emulator_app.sync_transport(), base_url=emulator_app.url)`.
        Requests run on an event loop thread of the handle's own, as on a server, so a client's
        timeout works and a reset fences off what is still in flight."""
        from emulator.sync_transport import LoopThread, SyncASGITransport

        if self._loop is None:
            self._loop = LoopThread()
        return SyncASGITransport(self.app, self._loop)

    # -- client-behaviour assertions on this journal (see emulator.assertions)

    def assert_token_reused(
        self,
        *,
        client_id: str | None = None,
        early_refresh_seconds: int = 300,
        require_evidence: bool = True,
    ) -> None:
        """The client kept its token for later calls instead of exchanging credentials again
        while it was good; exchanging anew within `early_refresh_seconds` of its expiry, or
        after it was refused, is fine."""
        assertions.assert_token_reused(
            self.journal,
            client_id=client_id,
            early_refresh_seconds=early_refresh_seconds,
            ttl_seconds=self._ttl,
            require_evidence=require_evidence,
        )

    def assert_token_refreshed_after_expiry(
        self, *, client_id: str | None = None, require_evidence: bool = True
    ) -> None:
        """Once its token expired, the client sent it at most once more (the 401 that told it)
        and then exchanged credentials again."""
        assertions.assert_token_refreshed_after_expiry(
            self.journal,
            client_id=client_id,
            ttl_seconds=self._ttl,
            require_evidence=require_evidence,
        )

    def assert_token_refreshed_before_expiry(
        self, *, client_id: str | None = None, require_evidence: bool = True
    ) -> None:
        """The client renewed its token before it expired: it never sent an expired token."""
        assertions.assert_token_refreshed_before_expiry(
            self.journal,
            client_id=client_id,
            ttl_seconds=self._ttl,
            require_evidence=require_evidence,
        )

    def assert_retry_after_obeyed(
        self, *, client_id: str | None = None, require_evidence: bool = True
    ) -> None:
        """After a 429 with `Retry-After: r` at time t, the client sent no links request before
        t + r on the emulator's clock."""
        assertions.assert_retry_after_obeyed(
            self.journal, client_id=client_id, require_evidence=require_evidence
        )

    def assert_no_page_past_end(
        self, *, client_id: str | None = None, require_evidence: bool = True
    ) -> None:
        """After a page said `hasMore: false`, the client asked for no later page of it."""
        assertions.assert_no_page_past_end(
            self.journal, client_id=client_id, require_evidence=require_evidence
        )

    @property
    def _ttl(self) -> int:
        return self.state.settings.token_ttl_seconds
