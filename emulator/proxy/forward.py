"""Forwarding: every request under `/api/` to the target, and its answer back unchanged.

The request goes as the client sent it (method, path and query byte for byte, headers but the
hop-by-hop ones and `Host`, body); the answer comes back with its status, headers (but the
hop-by-hop ones) and body bytes as the target sent them, plus `X-Emulator-Check` (the journal
adds `X-Request-Id` when the target gave none). Nothing is ever retried or sent on the proxy's
own account. A target that cannot be reached, breaks off or is too slow gets the proxy's own
502 `upstream_unreachable` or 504 `upstream_timeout`.

Every buffer is bounded: a request or answer body is held whole only up to `body_bytes`, to be
checked (and recorded); a larger one is passed through as it streams, unchecked.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from starlette.types import Message, Receive, Scope, Send

from emulator import errors
from emulator.auth import fingerprint
from emulator.clock import format_timestamp
from emulator.notes import RequestNotes, notes_of
from emulator.paths import TOKEN_PATH
from emulator.proxy.checks import CHECK_HEADER, Checker, ExchangeCheck
from emulator.proxy.exchange import (
    ClientRequest,
    RawHeaders,
    TargetAnswer,
    TooLarge,
    UnknownEncoding,
    decode_body,
)
from emulator.proxy.log import CheckLog
from emulator.proxy.shadow import bearer_token
from emulator.responses import error_response

if TYPE_CHECKING:
    from emulator.proxy.record import Recorder
    from emulator.state import EmulatorState

BODY_BYTES = 4 * 1024 * 1024
DECODED_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_TIMEOUT_SECONDS = 30.0
MAX_CONNECTIONS = 64
# RFC 9110 7.6.1, and the old Proxy-Connection.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)


class TargetError(ValueError):
    """`--target` is not a URL the proxy can forward to."""


@dataclass(frozen=True)
class Target:
    """Where requests go: `url` without a trailing slash. `shown` leaves out any user:password."""

    url: str

    @classmethod
    def parse(cls, text: str) -> Target:
        parts = urlsplit(text.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TargetError(f"--target must be an http:// or https:// URL, not {text!r}")
        if parts.query or parts.fragment:
            raise TargetError("--target takes no query or fragment: the client's are forwarded")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise TargetError(f"--target has a bad port: {text!r}") from None
        if not parts.path.isascii():
            raise TargetError("--target's path must be ASCII (percent-encode the rest)")
        return cls(text.strip().rstrip("/"))

    @property
    def shown(self) -> str:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{parts.port}" if parts.port else "")
        return parts._replace(netloc=netloc).geturl()

    @property
    def path_prefix(self) -> bytes:
        return urlsplit(self.url).path.encode("ascii", "strict")


def _without_hop_by_hop(raw: RawHeaders, *also: bytes) -> list[tuple[bytes, bytes]]:
    named = {
        token.strip().lower()
        for name, value in raw
        if name.lower() == b"connection"
        for token in value.split(b",")
    }
    dropped = HOP_BY_HOP | named | set(also)
    return [(name, value) for name, value in raw if name.lower() not in dropped]


@dataclass
class _ClientBody:
    held: bytes
    complete: bool
    disconnected: bool = False


async def _read_client_body(receive: Receive, most: int) -> _ClientBody:
    """The request body, held up to `most` bytes; `complete` when that is all of it."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return _ClientBody(b"".join(chunks), False, disconnected=True)
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return _ClientBody(b"".join(chunks), True)
        if size > most:
            return _ClientBody(b"".join(chunks), False)


async def _rest_of_client_body(held: bytes, receive: Receive) -> AsyncIterator[bytes]:
    yield held
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise httpx.ReadError("the client went away while sending its body")
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


class Forwarder:
    """The ASGI endpoint for `/api/...`: forward, check, answer."""

    def __init__(
        self,
        state: EmulatorState,
        target: Target,
        checker: Checker,
        log: CheckLog,
        recorder: Recorder | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        body_bytes: int = BODY_BYTES,
    ) -> None:
        self.state = state
        self.target = target
        self.checker = checker
        self.log = log
        self.recorder = recorder
        self.timeout = timeout
        self.body_bytes = body_bytes
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
                limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=16),
                follow_redirects=False,
                trust_env=False,
            )
            # No header of httpx's own (Accept-Encoding, User-Agent, ...): only the client's go.
            for name in list(client.headers):
                del client.headers[name]
            self._client = client
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        notes = notes_of(scope)
        body = await _read_client_body(receive, self.body_bytes)
        if body.disconnected:
            return  # the client is gone: nothing is sent on its behalf
        request = ClientRequest(
            method=scope["method"],
            path=scope["path"],
            raw_path=scope.get("raw_path") or scope["path"].encode("utf-8"),
            query_string=scope.get("query_string", b""),
            headers=tuple((bytes(k), bytes(v)) for k, v in scope["headers"]),
            body=body.held if body.complete else None,
        )
        self._name_the_caller(request, notes)
        clock = self.state.clock
        sent_at = clock.timestamp()
        content: Any = body.held if body.complete else _rest_of_client_body(body.held, receive)
        upstream: httpx.Response | None = None
        try:
            async with asyncio.timeout(self.timeout):
                upstream = await self.client.send(self._build(request, content), stream=True)
                held, rest = await self._read_answer(upstream)
        except (TimeoutError, httpx.TimeoutException):
            await self._own_answer(
                scope, send, request, errors.upstream_timeout(self.target.shown, self.timeout)
            )
            await _close(upstream)
            return
        except Exception as exc:  # httpx's errors, and anything a strange request provokes
            reason = _reason(exc)
            await self._own_answer(
                scope, send, request, errors.upstream_unreachable(self.target.shown, reason)
            )
            await _close(upstream)
            return
        assert upstream is not None
        headers = tuple(
            _without_hop_by_hop(tuple((bytes(k), bytes(v)) for k, v in upstream.headers.raw))
        )
        if rest is not None:
            await self._stream(scope, send, request, upstream, headers, held, rest, sent_at)
            return
        await upstream.aclose()
        answer = self._answer(upstream.status_code, headers, held, sent_at, clock.timestamp())
        check = await self._check(request, answer)
        check.on_recorded = self._on_recorded(request, answer)
        notes.check = check
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": held, "more_body": False})

    def _name_the_caller(self, request: ClientRequest, notes: RequestNotes) -> None:
        """The journal's application and token fingerprint, as far as the proxy knows them: the
        client id a token exchange names, the one a token seen issued belongs to."""
        token = bearer_token(request)
        if token is not None:
            notes.token_fingerprint = fingerprint(token)
            known = self.checker.shadow.identities.of(token)
            if known is not None:
                notes.client_id = known[0]
        elif request.path == TOKEN_PATH and isinstance(request.json, dict):
            client_id = request.json.get("clientId")
            if isinstance(client_id, str):
                notes.client_id = client_id[:200]

    def _build(self, request: ClientRequest, content: Any) -> httpx.Request:
        also = (b"host",) if request.body is None else (b"host", b"content-length")
        target = self.target.path_prefix + request.raw_path
        if request.query_string:
            target += b"?" + request.query_string
        return self.client.build_request(
            request.method,
            self.target.url,  # the scheme, host and port; the path is the request-target below
            headers=_without_hop_by_hop(request.headers, *also),
            content=content,
            # The request-target byte for byte: httpx would normalise `..` and re-encode.
            extensions={"target": target},
        )

    async def _read_answer(
        self, upstream: httpx.Response
    ) -> tuple[bytes, AsyncIterator[bytes] | None]:
        """The answer's body as received, held up to `body_bytes`; and, past that, the rest to
        come (`None` when it was all held)."""
        chunks: list[bytes] = []
        size = 0
        iterator = upstream.aiter_raw()
        async for chunk in iterator:
            chunks.append(chunk)
            size += len(chunk)
            if size > self.body_bytes:
                return b"".join(chunks), iterator
        return b"".join(chunks), None

    def _answer(
        self, status: int, headers: RawHeaders, raw: bytes, sent_at: float, received_at: float
    ) -> TargetAnswer:
        encoding = next(
            (v.decode("latin-1") for k, v in headers if k.lower() == b"content-encoding"), None
        )
        notes: tuple[str, ...] = ()
        try:
            body: bytes | None = decode_body(raw, encoding, DECODED_BODY_BYTES)
        except UnknownEncoding as unknown:
            body, notes = (
                None,
                (f"body in an encoding the proxy cannot read ({unknown}): not checked",),
            )
        except TooLarge:
            body, notes = None, ("body over the proxy's bound once decompressed: not checked",)
        except Exception:  # zlib.error and the like: a broken compressed body
            body, notes = None, ("body could not be decompressed: not checked",)
        return TargetAnswer(status, headers, raw, body, sent_at, received_at, notes)

    async def _check(self, request: ClientRequest, answer: TargetAnswer) -> ExchangeCheck:
        try:
            return await self.checker.check(request, answer)
        except Exception as exc:  # a fault in a check never stands between client and target
            _say(f"8here-emulator proxy: the check of {request.describe()} failed: {exc!r}")
            return ExchangeCheck(verdict="unchecked", notes=[f"the check failed: {exc!r}"])

    def _on_recorded(self, request: ClientRequest, answer: TargetAnswer | None) -> Any:
        def recorded(sequence: int, check: ExchangeCheck) -> None:
            if check.verdict in ("ok", "differences"):
                self.log.add(check.occurrences(sequence))
            if self.recorder is not None:
                when = format_timestamp(self.state.clock.now())
                if not self.recorder.write(sequence, when, request, answer, check):
                    check.notes.append("not recorded: its line held a secret the proxy has seen")

        return recorded

    async def _own_answer(
        self, scope: Scope, send: Send, request: ClientRequest, error: errors.ApiError
    ) -> None:
        check = ExchangeCheck(verdict="proxy-answer", notes=[error.message])
        check.on_recorded = self._on_recorded(request, None)
        notes_of(scope).check = check
        response = error_response(error)

        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, nothing, send)

    async def _stream(
        self,
        scope: Scope,
        send: Send,
        request: ClientRequest,
        upstream: httpx.Response,
        headers: RawHeaders,
        held: bytes,
        rest: AsyncIterator[bytes],
        sent_at: float,
    ) -> None:
        """An answer too large to hold: status and headers checked against nothing, the body
        passed on as it comes."""
        answer = TargetAnswer(
            upstream.status_code,
            headers,
            held,
            None,
            sent_at,
            self.state.clock.timestamp(),
            (f"body over {self.body_bytes} bytes: passed through, not checked",),
        )
        check = ExchangeCheck(verdict="unchecked", notes=list(answer.notes), adds_header=False)
        check.on_recorded = self._on_recorded(request, answer)
        notes_of(scope).check = check
        start_headers = [*headers, (CHECK_HEADER.encode(), b"unchecked")]
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": upstream.status_code,
                    "headers": start_headers,
                }
            )
            await send({"type": "http.response.body", "body": held, "more_body": True})
            async for chunk in rest:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (httpx.HTTPError, OSError) as exc:
            check.notes.append(f"the target broke off: {_reason(exc)}")
        finally:
            await upstream.aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _close(upstream: httpx.Response | None) -> None:
    if upstream is not None:
        await upstream.aclose()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "could not connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the target broke the HTTP protocol or closed the connection"
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return "the connection broke"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return "unsupported protocol"
    return type(exc).__name__


def _say(message: str) -> None:
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
