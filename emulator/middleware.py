"""Request ids on every response; the journal and injected faults for API requests."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from typing import TYPE_CHECKING

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.clock import format_timestamp
from emulator.errors import injected_fault
from emulator.responses import error_response

if TYPE_CHECKING:
    from emulator.state import EmulatorState

_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
API_PREFIX = "/api/"


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id" and _REQUEST_ID.fullmatch(value):
            return value.decode("ascii")
    return "req_" + secrets.token_hex(8)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        context = scope.setdefault("state", {})
        context["request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("X-Request-Id", request_id)
            await send(message)

        path: str = scope["path"]
        if not path.startswith(API_PREFIX):
            await self.app(scope, receive, send_with_id)
            return
        state = self.state
        started = time.perf_counter()
        received_at = format_timestamp(state.clock.now())
        try:
            fault = state.faults.take(scope["method"], path)
            if fault is not None and fault.delay_ms:
                await asyncio.sleep(fault.delay_ms / 1000)
            if fault is not None and fault.status is not None:
                await error_response(injected_fault(fault.status))(scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            state.journal.record(
                request_id=request_id,
                time=received_at,
                method=scope["method"],
                path=path,
                query=scope["query_string"].decode("latin-1"),
                status=status,
                client_id=context.get("client_id"),
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
            )
