"""Emulator: what the `emulator` and `emulator_app` fixtures hand a test.

It works on the EmulatorState in this process directly (no HTTP), so setting up a test leaves no
trace in the journal and costs microseconds. It is also an ASGI app, so
`httpx.ASGITransport(app=emulator_app)` serves the same state with no socket.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from emulator.assertions import JournalRecord
from emulator.clock import format_timestamp, parse_timestamp

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from emulator.state import EmulatorState


@dataclass(frozen=True)
class Credentials:
    """An application's credentials, as a client under test needs them."""

    client_id: str
    client_secret: str = field(repr=False)
    environment: Literal["sandbox", "live"] = "sandbox"
    workspace_id: str = "sandbox"


DEFAULT_CREDENTIALS = Credentials("sb_demo_client", "sbs_demo_secret")


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
        """Move the clock on. A client's `sleep` can be this, to wait on the emulator's time."""
        step = seconds.total_seconds() if isinstance(seconds, timedelta) else seconds
        self._state.clock.advance(step)

    def set(self, moment: datetime | str, *, frozen: bool = True) -> None:
        """Jump to `moment` (a datetime or an ISO 8601 instant), frozen there unless told not."""
        when = parse_timestamp(moment) if isinstance(moment, str) else moment
        self._state.clock.set(when, frozen=frozen)

    def freeze(self) -> None:
        """Stop the clock at the next whole second (the wire's resolution), so waits, windows and
        expiries come out in whole seconds."""
        self.set(datetime.fromtimestamp(math.ceil(self.now().timestamp()), UTC))

    def resume(self) -> None:
        self._state.clock.resume()


class Emulator:
    """A test's handle on an emulator: its `url`, default `credentials`, `token()`, `clock`,
    `journal`, `fault()`, `register_application()`, `visit()` and `reset()`."""

    credentials = DEFAULT_CREDENTIALS

    def __init__(self, app: ASGIApp, url: str) -> None:
        self.app = app
        self.url = url
        self.state: EmulatorState = app.state.emulator  # type: ignore[attr-defined]
        self.clock = ClockControl(self.state)
        self._numbers = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def reset(self) -> None:
        """Back to the start: live links, applications, tokens, rate windows, journal, faults,
        clock. The fixtures do this before every test."""
        self.state.reset()
        self._numbers = itertools.count(1)

    @property
    def journal(self) -> list[JournalRecord]:
        """The API requests received since the last reset, oldest first."""
        return [
            JournalRecord.from_json(e.to_json(detail=True)) for e in self.state.journal.entries()
        ]

    def clear_journal(self) -> None:
        self.state.journal.clear()

    def token(self, app: Credentials | str | None = None) -> str:
        """A fresh bearer token for `app` (credentials or a client id; default: `credentials`).
        Issued directly, so it is not in the journal."""
        if isinstance(app, str):
            known = self.state.registry.application(app)
            if known is None:
                raise LookupError(f"no application {app!r} is registered")
            client_id, secret = known.client_id, known.client_secret
        else:
            chosen = app or self.credentials
            client_id, secret = chosen.client_id, chosen.client_secret
        return self.state.tokens.exchange(client_id, secret).access_token

    def fault(
        self,
        status: int | None = None,
        *,
        method: str | None = None,
        path: str | None = None,
        delay_ms: int = 0,
        times: int = 1,
    ) -> None:
        """Make the next `times` API requests matching `method` and `path` (a glob) fail with
        `status` and/or wait `delay_ms`."""
        from emulator.faults import parse_fault

        body = {"status": status, "method": method, "path": path, "delayMs": delay_ms}
        self.state.faults.add(parse_fault({**body, "times": times}))

    def register_application(
        self,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        environment: Literal["sandbox", "live"] = "sandbox",
        workspace_id: str | None = None,
        rate_limit_per_minute: int | None = None,
        link_quota: int | None = None,
        workspace_kind: Literal["personal", "company"] = "personal",
        api_access: bool = True,
    ) -> Credentials:
        """Register an application and return its credentials. Without a client id one is made
        up; a live application without a workspace gets a workspace of its own, so its links,
        quota and rate window are its test's alone."""
        from emulator.models import Application

        if environment not in ("sandbox", "live"):
            raise ValueError("environment must be sandbox or live")
        if workspace_kind not in ("personal", "company"):
            raise ValueError("workspace_kind must be personal or company")
        number = next(self._numbers)
        client_id = client_id or f"{'sb' if environment == 'sandbox' else 'lv'}_test_{number}"
        client_secret = client_secret or f"{client_id}_secret"
        if environment == "sandbox":
            workspace_id = "sandbox"
        elif workspace_id is None:
            workspace_id = f"ws_{client_id}"
        application, _workspace = self.state.registry.register(
            Application(
                client_id=client_id,
                client_secret=client_secret,
                environment=environment,
                workspace_id=workspace_id,
                name=client_id,
                rate_limit_per_minute=rate_limit_per_minute,
            ),
            workspace_kind=workspace_kind,
            api_access=api_access,
            link_quota=link_quota,
        )
        return Credentials(client_id, client_secret, environment, application.workspace_id)

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
        from emulator.errors import ApiError
        from emulator.visits import parse_bulk_visits

        body: dict[str, Any] = {"slug": slug, "count": count, "country": country}
        body |= {"referrer": referrer, "device": device}
        body["at"] = format_timestamp(at) if isinstance(at, datetime) else at
        state = self.state
        bulk = parse_bulk_visits(body, state.clock.now())
        try:
            recorded, _link_id = state.record_visits(bulk)
        except ApiError:
            raise LookupError(f"no live link has the slug {slug!r}") from None
        return recorded
