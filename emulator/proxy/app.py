"""create_proxy_app(settings, target): the proxy as an ASGI app, on `serve`'s request layer.

The same request layer as `serve` (request ids, CORS, journal, faults, error envelopes), the same
contract, control API and inspector; only `/api/` is answered by forwarding to the target
(`forward.py`) instead of by the emulator. The emulator's state is still built from the settings:
it is what the shadow answers are computed on (a throwaway copy for each).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route

from emulator import __version__
from emulator.app import contract_routes, control_routes, request_layer
from emulator.clock import format_timestamp
from emulator.drift.contract import Contract
from emulator.paths import API_PREFIX
from emulator.proxy.checks import Checker
from emulator.proxy.forward import BODY_BYTES, DEFAULT_TIMEOUT_SECONDS, Forwarder, Target
from emulator.proxy.record import Recorder, contract_digest
from emulator.settings import Settings, contract_path
from emulator.state import EmulatorState
from emulator.store import SandboxStore


def create_proxy_app(
    settings: Settings,
    target: str | Target,
    *,
    record: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    body_bytes: int = BODY_BYTES,
    sandbox: SandboxStore | None = None,
) -> Starlette:
    """The proxy. `app.state.emulator` is its EmulatorState (`.checks` holds what the checks
    found), `app.state.forwarder` its Forwarder. Raises TargetError for a bad target and
    RecordError for a record file it cannot use."""
    target = target if isinstance(target, Target) else Target.parse(target)
    state = EmulatorState(settings, sandbox)
    state.checks.target = target.shown
    recorder = None
    if record is not None:
        try:
            recorder = Recorder(
                record,
                target=target.shown,
                contract_sha256=contract_digest(contract_path()),
                started_at=format_timestamp(state.clock.now()),
                version=__version__,
            )
        except Exception:
            state.close()
            raise
        if settings.control_token:
            recorder.secrets.add(settings.control_token)
        state.checks.recording = recorder
    checker = Checker(state, Contract.load(contract_path()))
    forwarder = Forwarder(
        state, target, checker, state.checks, recorder, timeout=timeout, body_bytes=body_bytes
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await forwarder.close()
            if recorder is not None:
                recorder.close()

    routes: list[BaseRoute] = [Route(API_PREFIX + "{rest:path}", forwarder)]
    routes += contract_routes() + control_routes(state)
    app = request_layer(state, routes, lifespan=lifespan)
    app.state.forwarder = forwarder
    return app
