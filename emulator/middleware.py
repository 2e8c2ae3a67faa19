"""The request layer: one ASGI layer around every route, doing what each request needs once.

For every request it takes the request id (the client's well-formed `X-Request-Id`, else a new
one), the request's ticket at the reset fence, and the bounds of its head (limits.oversized);
it puts them in the request's notes (emulator/notes.py), which the handler reads and adds to.
Then, by path:

- the control API (everything under /_emulator): same-origin only and without CORS (see
  `RequestLayer.control_refusal`); never journaled, never faulted;
- the public API and the short links: CORS (Starlette's rules, its refused preflights in the
  error envelope); a preflight is answered here, never journaled, never faulted; every other
  request but the contract's is journaled, and the latency profile's delay and the injected
  faults (planned, or the request's own `X-Emulator-Fault`) apply to it
  (`RequestLayer._journaled`).

Every answer leaves with the rate-limit headers of the handler's decision, the CORS headers and
`X-Request-Id` (unless the answer has one: a proxied answer keeps its server's), set in one pass
over its headers. A journaled answer's entry is recorded before its first byte is sent: a client
that reads the journal once it has a status finds its request.
"""

from __future__ import annotations

import dataclasses
import operator
import time
from typing import TYPE_CHECKING, Any

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator import errors, limits
from emulator.auth import bearer_fingerprint
from emulator.control import HEALTH_PATH, HEALTHY
from emulator.control import PREFIX as CONTROL_PREFIX
from emulator.errors import ApiError
from emulator.faults import Fault, injected_error, take_fault
from emulator.fence import wait
from emulator.hosts import HostPolicy, same_origin
from emulator.journal import BODY_CAPTURE_BYTES, Exchange
from emulator.limits import HEAD_CHECKED
from emulator.network_faults import cut, faulted_send, no_response_bytes, read_request
from emulator.notes import SCOPE_KEY, RequestNotes
from emulator.parsing import YAML_PATHS, is_json_media, is_yaml_media
from emulator.request_ids import client_request_id, new_request_id
from emulator.responses import error_response

if TYPE_CHECKING:
    from emulator.state import EmulatorState

RawHeaders = list[tuple[bytes, bytes]]

UNJOURNALED_PREFIXES = (CONTROL_PREFIX, "/openapi.", "/favicon.ico")
# The one state-changing method a page elsewhere can send without a preflight (a form, a "simple"
# fetch); DELETE and the others are always preflighted, and a preflight here is refused.
_UNPREFLIGHTED_WRITES = ("POST",)
_VARY = b"vary"
_REQUEST_ID = b"x-request-id"
_FAULT_HEADER = b"x-emulator-fault"
_name = operator.itemgetter(0)
# The headers CORS sets on an answer; when the answer has none of them, they are just appended.
_CORS_SET = frozenset(
    {
        b"access-control-allow-origin",
        b"access-control-allow-credentials",
        b"access-control-expose-headers",
        _VARY,
    }
)


def _keep(target: list[bytes], chunk: bytes) -> None:
    """Add `chunk` to a body's first BODY_CAPTURE_BYTES."""
    room = BODY_CAPTURE_BYTES - sum(map(len, target))
    if room > 0 and chunk:
        target.append(chunk[:room])  # the chunk itself when it fits: no copy


def _client_request_id(first: bytes, headers: RawHeaders) -> str | None:
    """The first well-formed `X-Request-Id` of a request whose first one is `first`."""
    found = client_request_id(first)
    if found is None:  # a later one may be well formed
        for name, value in headers:
            if name == b"x-request-id" and (found := client_request_id(value)) is not None:
                break
    return found


def _set_header(raw: RawHeaders, name: bytes, value: bytes) -> None:
    """`MutableHeaders.__setitem__` on a raw list: the first `name` takes `value` in its place,
    any other `name` goes; appended when there is none."""
    found = [index for index, (key, _) in enumerate(raw) if key == name]
    for index in reversed(found[1:]):
        del raw[index]
    if found:
        raw[found[0]] = (name, value)
    else:
        raw.append((name, value))


def _vary_once(values: list[bytes]) -> bytes:
    """`Vary` values joined, each token named once (a proxied answer may vary by Origin
    already); joined as they are when no token repeats."""
    joined = b", ".join(values)
    tokens = [token.strip() for token in joined.split(b",")]
    tokens = [token for token in tokens if token]
    unique: dict[bytes, bytes] = {}
    for token in tokens:
        unique.setdefault(token.lower(), token)
    return b", ".join(unique.values()) if len(unique) < len(tokens) else joined


class CorsPolicy(CORSMiddleware):
    """Starlette's CORS rules for the public API, used by the request layer rather than as a
    layer of their own: the same preflight answers (a refused one in the error envelope) and the
    same headers on every other answer (CORSMiddleware.send's)."""

    def __init__(self, **cors: Any) -> None:
        super().__init__(app=_no_app, **cors)
        self.allowed_header_names = ", ".join(cors.get("allow_headers", ()))
        self._simple = {
            name.lower().encode("latin-1"): value.encode("latin-1")
            for name, value in self.simple_headers.items()
        }
        self._for_any_origin = list(self._simple.items())

    def answer_headers(self, origin: str | None) -> RawHeaders:
        """What CORS sets on an answer to a request from `origin` (None: no `Origin`), Vary
        aside."""
        if origin is None:
            return []
        if self.allow_all_origins:
            explicit = self.allow_credentials  # then the origin itself, never "*"
        else:
            explicit = self.is_allowed_origin(origin)
        if not explicit:
            return self._for_any_origin
        allowed = {**self._simple, b"access-control-allow-origin": origin.encode("latin-1")}
        return list(allowed.items())

    def apply(self, raw: RawHeaders, origin: str | None) -> None:
        """Set CORS's headers on an answer's raw headers, and `Origin` in its Vary."""
        setting = self.answer_headers(origin)
        if _CORS_SET.isdisjoint(map(_name, raw)):
            raw += setting
            raw.append((_VARY, b"Origin"))
            return
        for name, value in setting:
            _set_header(raw, name, value)
        vary = [value for name, value in raw if name == _VARY]
        _set_header(raw, _VARY, _vary_once([*vary, b"Origin"]))

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


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("CorsPolicy is not a layer: RequestLayer answers for it")


class RequestLayer:
    """The one layer of the emulator's request path (see the module's docstring).

    The control API is refused unless the request's `Host` is one HostPolicy allows (DNS
    rebinding), any `Origin` it carries is the emulator's own, it is no preflight, and, when it
    can change state, a POST declares its body JSON (or YAML, where a scenario is read): a page
    elsewhere can send a form or a "simple" request without a preflight, but never one with
    `Content-Type: application/json`."""

    def __init__(self, app: ASGIApp, *, state: EmulatorState, cors: CorsPolicy) -> None:
        self.app = app
        self.state = state
        self.cors = cors
        self.hosts = HostPolicy(state.settings.allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: RawHeaders = scope["headers"]
        first = dict(reversed(headers))  # the first value of each header
        request_id = first.get(_REQUEST_ID)
        if request_id is not None:
            request_id = _client_request_id(request_id, headers)
        notes = RequestNotes(request_id or new_request_id(), self.state.fence.ticket(), first)
        scope[SCOPE_KEY] = notes
        path: str = scope["path"]
        refusal = None
        head_bytes = scope.get(HEAD_CHECKED)
        if head_bytes is None:  # not served by emulator.protocol: an in-process client
            head_bytes = limits.header_bytes(headers)
            raw_path: bytes = scope.get("raw_path") or path.encode("utf-8", "replace")
            refusal = limits.oversized(head_bytes, raw_path, scope["query_string"])
        if path.startswith(CONTROL_PREFIX):
            refusal = refusal or self.control_refusal(scope, first)
            if refusal is not None:
                answer = error_response(refusal)
            elif path == HEALTH_PATH and scope["method"] == "GET":
                answer = HEALTHY  # what health checks poll: answered here, without the router
            else:
                answer = self.app
            await answer(scope, receive, self._sender(send, notes, False, None))
            return
        origin = first.get(b"origin")
        if origin is not None:
            origin = origin.decode("latin-1")
        cors = True
        if refusal is not None:  # with CORS headers, so that a page can read why
            answer = error_response(refusal)
        elif (
            origin is not None
            and scope["method"] == "OPTIONS"
            and b"access-control-request-method" in first
        ):  # the preflight's answer has CORS's headers already
            answer, cors = self.cors.preflight_response(Headers(scope=scope)), False
        elif path.startswith(UNJOURNALED_PREFIXES):
            answer = self.app
        else:
            await self._journaled(scope, receive, send, notes, origin, head_bytes)
            return
        await answer(scope, receive, self._sender(send, notes, cors, origin))

    def finish(self, message: Message, notes: RequestNotes, cors: bool, origin: str | None) -> None:
        """An answer's headers as they leave: the handler's rate-limit decision first, then the
        handler's own, CORS's (public paths), and the request id (unless the handler gave one:
        a proxied answer keeps its server's, and the journal names the request by it)."""
        headers: RawHeaders = notes.rate_limit.raw_headers() if notes.rate_limit else []
        headers += message.get("headers", ())
        if cors:
            self.cors.apply(headers, origin)
        given = next((value for name, value in headers if name == _REQUEST_ID), None)
        if given is None:
            headers.append((_REQUEST_ID, notes.request_id.encode()))
        else:
            notes.request_id = given.decode("latin-1")
        message["headers"] = headers

    def _sender(self, send: Send, notes: RequestNotes, cors: bool, origin: str | None) -> Send:
        finish = self.finish

        async def send_finished(message: Message) -> None:
            if message["type"] == "http.response.start":
                finish(message, notes, cors, origin)
            await send(message)

        return send_finished

    async def _journaled(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        notes: RequestNotes,
        origin: str | None,
        head_bytes: int,
    ) -> None:
        state = self.state
        fence = state.fence
        finish = self.finish
        started = time.perf_counter()
        received_at = state.clock.timestamp()
        request_body: list[bytes] = []
        response_body: list[bytes] = []
        status = 500  # if no answer starts (the handler failed, the client went)
        response_headers: RawHeaders = []
        held: Message | None = None
        recorded = False
        fault: Fault | None = None
        deliver: Send = send  # `send`, or what truncates or dribbles the answer

        def record() -> int | None:
            """Journal the request once; its sequence (None when already journaled, or when a
            reset came since it began)."""
            nonlocal recorded
            if recorded:
                return None
            recorded = True
            exchange = Exchange(
                notes.request_id, received_at, scope["method"], scope["path"],
                scope["query_string"], scope["headers"], head_bytes, request_body, status,
                response_headers, response_body, time.perf_counter() - started,
                notes.client_id, notes.token_fingerprint, notes.pagination, notes.latency_ms,
                fault.effect_json() if fault is not None else None, notes.check,
            )  # fmt: skip
            # Into the journal of the generation the request started in, or nowhere.
            return fence.if_current(notes.ticket, lambda: state.journal.record_exchange(exchange))

        async def receive_kept() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                _keep(request_body, message.get("body", b""))
            return message

        async def send_journaled(message: Message) -> None:
            # The start is held until the body comes, so that the entry is recorded before the
            # client sees any byte.
            nonlocal held, status, response_headers
            kind = message["type"]
            if kind == "http.response.start":
                finish(message, notes, True, origin)
                status, response_headers, held = message["status"], message["headers"], message
                return
            if kind == "http.response.body":
                _keep(response_body, message.get("body", b""))
                if not message.get("more_body", False):
                    sequence = record()
                    check = notes.check
                    if check is not None and sequence is not None and held is not None:
                        # The answer says where its entry is: known only now, before any byte.
                        held["headers"] = [
                            *held["headers"],
                            *[
                                (name.lower().encode("latin-1"), value.encode("latin-1"))
                                for name, value in check.recorded(sequence)
                            ],
                        ]
                if held is not None:
                    await deliver(held)
                    held = None
            await deliver(message)

        try:
            answer = self.app
            # Without a fault pending or asked for, a latency profile, or a reset since the
            # request began, the handler answers at once.
            if (
                state.faults.armed
                or _FAULT_HEADER in notes.headers
                or state.latency.active
                or not fence.is_current(notes.ticket)
            ):
                try:
                    fault = take_fault(state, scope, notes.ticket)
                except ApiError as refused:  # a bad X-Emulator-Fault, a socket kind without one
                    await error_response(refused)(scope, receive_kept, send_journaled)
                    return
                await self._delay(scope, notes, fault)
                if not fence.is_current(notes.ticket):
                    answer = error_response(errors.emulator_reset())
                elif fault is not None and fault.sends_no_response:
                    await read_request(receive_kept, state.settings.max_body_bytes)
                    sent = no_response_bytes(fault, state.settings.seed or 0)
                    status = 0  # no HTTP response at all
                    _keep(response_body, sent)
                    record()  # before the client can see the connection go
                    cut(fault, scope, sent)
                    return
                elif fault is not None:
                    deliver = faulted_send(fault, scope, send, fence, notes.ticket)
                    if fault.status is not None:
                        authorization = notes.header(b"authorization")
                        answer = error_response(injected_error(state, fault, authorization))
            await answer(scope, receive_kept, send_journaled)
        finally:
            record()  # an answer that never finished (client gone, handler failed)

    async def _delay(self, scope: Scope, notes: RequestNotes, fault: Fault | None) -> None:
        """Wait out the latency profile's delay and the fault's on top of it (until a reset at
        the latest), noting it for the journal. The profile's is drawn at the fence: a request
        of an earlier generation draws nothing from the new profile's generators. A fault that
        answers for the handler notes whose request it was, for the journal."""
        state = self.state
        fence, ticket, latency = state.fence, notes.ticket, state.latency
        latency_ms = 0.0
        if latency.active:
            method, path = scope["method"], scope["path"]
            latency_ms = fence.if_current(ticket, lambda: latency.delay_ms(method, path)) or 0.0
        delay_ms = latency_ms + (fault.delay_ms if fault is not None else 0)
        if delay_ms:
            notes.latency_ms = round(delay_ms, 3)
            await wait(fence, ticket, delay_ms)
        if fault is not None and (fault.status or fault.sends_no_response):
            authorization = notes.header(b"authorization")
            if authorization:  # the handler never sees the request
                notes.token_fingerprint = bearer_fingerprint(authorization)

    def control_refusal(self, scope: Scope, first: dict[bytes, bytes]) -> ApiError | None:
        """Why a control request is refused (see the class's docstring), or None. `first`: the
        first value of each of its headers."""
        host = first.get(b"host")
        host_text = host.decode("latin-1") if host is not None else None
        if not self.hosts.allows(host_text):
            return errors.host_refused(host_text or "")
        origin = first.get(b"origin")
        if origin is not None and not same_origin(origin.decode("latin-1"), host_text):
            return errors.cross_origin_refused(origin.decode("latin-1"))
        method = scope["method"]
        if method == "OPTIONS" and b"access-control-request-method" in first:
            return errors.cross_origin_refused(origin.decode("latin-1") if origin else "null")
        if method in _UNPREFLIGHTED_WRITES:
            content_type = first.get(b"content-type", b"").decode("latin-1")
            yaml_ok = scope["path"] in YAML_PATHS and is_yaml_media(content_type)
            if not (is_json_media(content_type) or yaml_ok):
                return errors.unsupported_media_type(content_type)
        return None
