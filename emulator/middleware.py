"""Request ids on every response; CORS for the public API and the control API's same-origin guard;
the reset fence for every request; the journal and injected faults for API requests."""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import secrets
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator import errors, limits
from emulator.auth import bearer_fingerprint
from emulator.clock import format_timestamp
from emulator.errors import ApiError, emulator_reset
from emulator.faults import Fault, injected_error, take_fault
from emulator.fence import stamp, wait
from emulator.hosts import HostPolicy, same_origin
from emulator.journal import BODY_CAPTURE_BYTES, pack_headers
from emulator.network_faults import cut, faulted_send, no_response_bytes, read_request
from emulator.parsing import YAML_PATHS, is_json_media, is_yaml_media
from emulator.responses import error_response

if TYPE_CHECKING:
    from emulator.state import EmulatorState

_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
CONTROL_PREFIX = "/_emulator"
UNJOURNALED_PREFIXES = (CONTROL_PREFIX, "/openapi.", "/favicon.ico")
# Methods a browser sends without a preflight: the only ones a page elsewhere could use blind.
# The one state-changing method a page elsewhere can send without a preflight (a form, a "simple"
# fetch); DELETE and the others are always preflighted, and a preflight here is refused.
_UNPREFLIGHTED_WRITES = ("POST",)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id" and _REQUEST_ID.fullmatch(value):
            return value.decode("ascii")
    return "req_" + secrets.token_hex(8)


class _Capture:
    """The first BODY_CAPTURE_BYTES of each body, and the response's status and headers."""

    __slots__ = ("request_body", "response_body", "response_headers", "status")

    def __init__(self) -> None:
        self.status = 500
        self.response_headers: list[tuple[bytes, bytes]] = []
        self.request_body: list[bytes] = []
        self.response_body: list[bytes] = []

    @staticmethod
    def keep(target: list[bytes], chunk: bytes) -> None:
        room = BODY_CAPTURE_BYTES - sum(map(len, target))
        if room > 0 and chunk:
            target.append(chunk[:room])  # the chunk itself when it fits: no copy


@functools.lru_cache(maxsize=4)
def _stamp(second: int) -> str:
    """`format_timestamp` of a whole second: requests of the same second share one string."""
    return format_timestamp(datetime.fromtimestamp(second, UTC))


class RequestIdMiddleware:
    """Outermost: every response, CORS preflights included, carries `X-Request-Id`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                # A proxied answer keeps the id its server gave it.
                if "x-request-id" not in headers:
                    headers.append("X-Request-Id", request_id)
            await send(message)

        await self.app(scope, receive, send_with_id)


class GuardedCorsMiddleware(CORSMiddleware):
    """Starlette's CORS for the public API, its refused preflights in the error envelope; the
    control API (everything under /_emulator) same-origin only, with no CORS at all; and the
    bounds of a request's head (limits.oversized) for both.

    A control request is refused unless its `Host` is one HostPolicy allows (DNS rebinding), any
    `Origin` it carries is the emulator's own, it is no preflight, and, when it can change state,
    a POST declares its body JSON: a page elsewhere can send a form or a "simple" request without a
    preflight, but never one with `Content-Type: application/json`."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: tuple[str, ...] = (), **cors: Any) -> None:
        super().__init__(app, **cors)
        self.hosts = HostPolicy(allowed_hosts)
        self.allowed_header_names = ", ".join(cors.get("allow_headers", ()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8", "replace")
        refusal = limits.oversized(scope["headers"], raw_path, scope["query_string"])
        if scope["path"].startswith(CONTROL_PREFIX):
            refusal = refusal or self._control_refusal(scope)
            if refusal is not None:
                await error_response(refusal)(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        if refusal is not None:  # with CORS headers, so that a page can read why
            headers = Headers(scope=scope)
            await error_response(refusal)(
                scope, receive, functools.partial(self.send, send=send, request_headers=headers)
            )
            return
        await super().__call__(scope, receive, send)

    def _control_refusal(self, scope: Scope) -> ApiError | None:
        headers = Headers(scope=scope)
        host = headers.get("host")
        if not self.hosts.allows(host):
            return errors.host_refused(host or "")
        origin = headers.get("origin")
        if origin is not None and not same_origin(origin, host):
            return errors.cross_origin_refused(origin)
        method = scope["method"]
        if method == "OPTIONS" and "access-control-request-method" in headers:
            return errors.cross_origin_refused(origin or "null")
        content_type = headers.get("content-type", "")
        yaml_ok = scope["path"] in YAML_PATHS and is_yaml_media(content_type)
        if method in _UNPREFLIGHTED_WRITES and not (is_json_media(content_type) or yaml_ok):
            return errors.unsupported_media_type(content_type)
        return None

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        failures = bytes(response.body).decode().removeprefix("Disallowed CORS ").split(", ")
        asked = {
            "origin": f"origin {request_headers.get('origin')!r} is not allowed",
            "method": f"method {request_headers.get('access-control-request-method')!r} is not "
            f"allowed (allowed: {', '.join(self.allow_methods)})",
            "headers": f"headers {request_headers.get('access-control-request-headers')!r} are "
            f"not all allowed (allowed: {self.allowed_header_names})",
            "private-network": "private network access is not allowed",
        }
        error = errors.preflight_refused("; ".join(asked.get(f, f) for f in failures))
        kept = {
            name: value
            for name, value in response.headers.items()
            if name not in ("content-length", "content-type")
        }
        return error_response(dataclasses.replace(error, headers=kept))

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        """Starlette's CORS headers, except that `Origin` is never named twice in `Vary`: a
        proxied answer that already varies by Origin keeps its `Vary` as it came."""

        async def without_repeats(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                tokens = [t.strip() for v in headers.getlist("vary") for t in v.split(",")]
                tokens = [token for token in tokens if token]
                unique: dict[str, str] = {}
                for token in tokens:
                    unique.setdefault(token.lower(), token)
                if len(unique) < len(tokens):
                    headers["Vary"] = ", ".join(unique.values())
            await send(message)

        await super().send(message, without_repeats, request_headers)


class JournalMiddleware:
    """Inside CORS: journals what clients send and applies injected faults to it, so a faulted
    response still carries CORS headers and a preflight never uses up a fault. It also gives
    every request its ticket at the reset fence (`emulator.fence`): a request that started before
    a reset is neither journaled nor faulted after it."""

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.state
        ticket = stamp(scope, state.fence)
        # Everything a client sends is journaled; the emulator's own paths are not.
        if scope["path"].startswith(UNJOURNALED_PREFIXES):
            await self.app(scope, receive, send)
            return
        context: dict[str, Any] = scope["state"]
        request_id: str = context.get("request_id") or _request_id(scope)
        capture = _Capture()

        async def receive_captured() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                capture.keep(capture.request_body, message.get("body", b""))
            return message

        pending_start: Message | None = None
        fault: Fault | None = None
        deliver: Send = send  # `send`, or what truncates or dribbles the response

        async def send_captured(message: Message) -> None:
            # The start is held until the body comes, so that the entry is recorded before
            # the client sees any byte: a client that reads the journal once it has a status
            # must find its request there.
            nonlocal pending_start
            nonlocal request_id
            if message["type"] == "http.response.start":
                capture.status = message["status"]
                headers = MutableHeaders(scope=message)
                given = headers.get("x-request-id")  # a proxied answer keeps its server's id
                request_id = given or request_id
                own = [] if given else [(b"x-request-id", request_id.encode())]
                capture.response_headers = [*headers.raw, *own]
                pending_start = message
                return
            if message["type"] == "http.response.body":
                capture.keep(capture.response_body, message.get("body", b""))
                if not message.get("more_body", False):
                    sequence = record()
                    check = context.get("check")
                    if check is not None and sequence is not None and pending_start is not None:
                        # The answer says where its entry is: known only now, before any byte.
                        start = MutableHeaders(scope=pending_start)
                        for name, value in check.recorded(sequence):
                            start.append(name, value)
                if pending_start is not None:
                    await deliver(pending_start)
                    pending_start = None
            await deliver(message)

        fence = state.fence
        started = time.perf_counter()
        received_at = _stamp(math.floor(state.clock.timestamp()))
        recorded = False

        def record() -> int | None:
            """Journal the request once; its sequence (`None` when already journaled)."""
            nonlocal recorded
            if recorded:
                return None
            recorded = True
            retry_after = None
            if capture.status == 429:
                retry_after = dict(capture.response_headers).get(b"retry-after")
            entry = {
                "request_id": request_id,
                "time": received_at,
                "method": scope["method"],
                "path": scope["path"],
                "query": scope["query_string"].decode("latin-1"),
                "status": capture.status,
                "client_id": context.get("client_id"),
                "token_fingerprint": context.get("token_fingerprint"),
                # A proxied target may give an HTTP date; the journal keeps seconds only.
                "retry_after": int(retry_after) if retry_after and retry_after.isdigit() else None,
                "pagination": context.get("pagination"),
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                "latency_ms": context.get("latency_ms", 0.0),
                "request_headers": pack_headers(scope["headers"]),
                "request_body": b"".join(capture.request_body),
                "response_headers": pack_headers(capture.response_headers),
                "response_body": b"".join(capture.response_body),
                "check": context.get("check"),
                "fault": fault.effect_json() if fault is not None else None,
            }
            # Into the journal of the generation the request started in, or nowhere.
            return fence.if_current(ticket, lambda: state.journal.record(**entry))

        try:
            try:
                fault = take_fault(state, scope, ticket)
            except ApiError as refused:  # a bad X-Emulator-Fault, a socket kind without a socket
                await error_response(refused)(scope, receive_captured, send_captured)
                return
            # The latency profile's delay, and a fault's on top of it. Drawn at the fence: a
            # request of an earlier generation draws nothing from the new profile's generators.
            method, path, latency = scope["method"], scope["path"], state.latency
            latency_ms = 0.0
            if latency.active:
                latency_ms = fence.if_current(ticket, lambda: latency.delay_ms(method, path)) or 0.0
            delay_ms = latency_ms + (fault.delay_ms if fault is not None else 0)
            if delay_ms:
                context["latency_ms"] = round(delay_ms, 3)
                await wait(fence, ticket, delay_ms)
            authorization = _header(scope, b"authorization") if fault is not None else None
            if fault is not None and authorization and (fault.status or fault.sends_no_response):
                # The app never sees the request: so that the journal can tell whose it was.
                context["token_fingerprint"] = bearer_fingerprint(authorization)
            if not fence.is_current(ticket):
                response: ASGIApp = error_response(emulator_reset())
            elif fault is not None and fault.sends_no_response:
                await read_request(receive_captured, state.settings.max_body_bytes)
                sent = no_response_bytes(fault, state.settings.seed or 0)
                capture.status = 0  # no HTTP response at all
                capture.keep(capture.response_body, sent)
                record()  # before the client can see the connection go
                cut(fault, scope, sent)
                return
            else:
                deliver = faulted_send(fault, scope, send, fence, ticket)
                response = self.app
                if fault is not None and fault.status is not None:
                    response = error_response(injected_error(state, fault, authorization))
            await response(scope, receive_captured, send_captured)
        finally:
            record()  # a response that never finished (client gone, server error)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None
