"""What the emulator would have answered to a forwarded request: the shadow answer.

The request goes, in process, through the same request layer `serve` uses, on a throwaway copy
of the proxy's emulator state (`EmulatorState.throwaway_copy`): a forwarded create stores nothing
here, and nothing is ever sent to the target. It is the client's request, except for what the
emulator cannot know, which is made to match what the target's answer says:

- credentials and tokens: the target's are unknown here, so an accepted token exchange uses an
  emulator application of the same environment (the client's own, if the emulator has it), and a
  request with a token the target accepted carries an emulator token of the application the
  token was issued to (learned from the token exchanges seen, else a sandbox one); a token the
  target refused is sent as it came, or, if the target said it expired, as an expired one;
- the target's data: a link the target found is one the copy has (a sample link, or one made in
  the copy), a link it did not find is one the copy lacks, and a slug it found taken is taken.

Where no such match exists (a quota used up, API access off, a rate limit, a server error) there
is no shadow answer, and the exchange is checked against the contract only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.types import Message

from emulator.app import request_layer
from emulator.auth import fingerprint
from emulator.errors import ApiError
from emulator.models import Application, Environment, NewLink
from emulator.paths import LINKS_PATH, TOKEN_PATH
from emulator.proxy.exchange import ClientRequest, RawHeaders, TargetAnswer
from emulator.routes import PublicApi
from emulator.state import EmulatorState
from emulator.store import LinkQuery

REMEMBERED_TOKENS = 4096
SHADOW_BODY_BYTES = 8 * 1024 * 1024
ABSENT_LINK_ID = "lnk_8here_proxy_absent"
WRONG_SECRET = "8here-proxy-not-the-secret"
# The client's headers the shadow does not send: hop-by-hop ones, and those the emulator must
# not see (the target's credentials) or that would make the answer differ for no reason.
_DROPPED = {
    b"host",
    b"connection",
    b"keep-alive",
    b"transfer-encoding",
    b"te",
    b"upgrade",
    b"content-length",
    b"authorization",
    b"cookie",
    b"origin",
    b"x-request-id",
    b"accept-encoding",
}


@dataclass(frozen=True)
class ShadowAnswer:
    status: int
    headers: RawHeaders
    body: bytes
    environment: Environment
    path: str
    requested_id: str | None
    sent_at: float
    received_at: float
    # What was made to match the target's answer, for the reader of a difference.
    matched: tuple[str, ...]


class NoShadow(Exception):
    """Why there is no shadow answer to compare with."""


class Identities:
    """The application each token the target issued through the proxy belongs to (its client id
    and environment), by the token's fingerprint; the oldest are forgotten past a bound."""

    def __init__(self, most: int = REMEMBERED_TOKENS) -> None:
        self._known: OrderedDict[str, tuple[str, Environment]] = OrderedDict()
        self._most = most

    def learn(self, token: str, client_id: str, environment: Environment) -> None:
        key = fingerprint(token)
        self._known[key] = (client_id, environment)
        self._known.move_to_end(key)
        while len(self._known) > self._most:
            self._known.popitem(last=False)

    def of(self, token: str) -> tuple[str, Environment] | None:
        return self._known.get(fingerprint(token))


def bearer_token(request: ClientRequest) -> str | None:
    scheme, _, token = request.header_map.get("authorization", "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _error_code(answer: TargetAnswer) -> str | None:
    body = answer.json
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


class Shadow:
    """Answers forwarded requests on throwaway copies of `state`."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.identities = Identities()

    def learn(self, request: ClientRequest, answer: TargetAnswer) -> None:
        """Remember whose token an accepted token exchange issued."""
        sent, got = request.json, answer.json
        if not (isinstance(sent, dict) and isinstance(got, dict)):
            return
        token, client_id = got.get("accessToken"), sent.get("clientId")
        environment = got.get("environment")
        if isinstance(token, str) and isinstance(client_id, str):
            self.identities.learn(token, client_id, "live" if environment == "live" else "sandbox")

    async def answer(
        self, request: ClientRequest, target: TargetAnswer, operation: str
    ) -> ShadowAnswer:
        if request.body is None:
            raise NoShadow("the request body was too large to hold")
        if target.status == 429:
            raise NoShadow("the target rate-limited it; the emulator's copy has its own windows")
        if target.status >= 500:
            raise NoShadow(f"the target failed ({target.status}); the emulator would not have")
        copy = self.state.throwaway_copy()
        try:
            plan = _Plan(copy, request, target, self.identities)
            plan.make(operation)
            return await plan.send()
        finally:
            copy.close()


class _Plan:
    """The shadow request for one exchange, built against one throwaway copy."""

    def __init__(
        self,
        copy: EmulatorState,
        request: ClientRequest,
        target: TargetAnswer,
        identities: Identities,
    ) -> None:
        self.copy = copy
        self.request = request
        self.target = target
        self.identities = identities
        self.path = request.path
        self.body = request.body or b""
        self.authorization: str | None = request.header_map.get("authorization")
        self.environment: Environment = "sandbox"
        self.requested_id: str | None = None
        self.matched: list[str] = []

    # -- what to send ---------------------------------------------------------------------

    def make(self, operation: str) -> None:
        target = self.target
        if target.status == 403:
            raise NoShadow(f"the target refused it ({_error_code(target) or 403}) for its data")
        if operation == "createToken" or self.request.path == TOKEN_PATH:
            self._credentials()
            return
        self._environment()
        self._token()
        if operation == "getLink":
            self._link()
        elif operation == "createLink":
            self._slug()

    def _environment(self) -> None:
        token = bearer_token(self.request)
        known = self.identities.of(token) if token else None
        body = self.target.json
        if known is not None:
            self.environment = known[1]
        elif isinstance(body, dict) and isinstance(body.get("persisted"), bool):
            self.environment = "live" if body["persisted"] else "sandbox"

    def _application(self, client_id: str | None = None) -> Application:
        """An emulator application of the environment: the client's own if the emulator has
        it, else the first with API access."""
        registry = self.copy.registry
        candidates = [registry.application(client_id)] if client_id else []
        candidates += registry.applications()
        for app in candidates:
            if app is None or app.environment != self.environment:
                continue
            workspace = registry.workspace(app.workspace_id)
            if workspace is not None and workspace.api_access:
                return app
        raise NoShadow(f"the emulator has no {self.environment} application to answer as")

    def _credentials(self) -> None:
        sent, got, status = self.request.json, self.target.json, self.target.status
        if not isinstance(sent, dict) or not all(
            isinstance(sent.get(k), str) for k in ("clientId", "clientSecret")
        ):
            return  # refused for its shape: the emulator sees the same body
        if status == 200:
            if isinstance(got, dict) and got.get("environment") == "live":
                self.environment = "live"
            try:
                self.copy.tokens.exchange(sent["clientId"], sent["clientSecret"])
                return  # the emulator knows these credentials too
            except ApiError:
                pass
            app = self._application(sent["clientId"])
            self._send_json({**sent, "clientId": app.client_id, "clientSecret": app.client_secret})
            self.matched.append(f"credentials of {app.client_id}")
        elif status == 401:
            self._send_json({**sent, "clientSecret": WRONG_SECRET})
            self.matched.append("a wrong secret")

    def _token(self) -> None:
        target, token = self.target, bearer_token(self.request)
        if target.status == 401:
            if _error_code(target) == "token_expired" and token is not None:
                app = self._application()
                issued = self.copy.tokens.exchange(app.client_id, app.client_secret)
                self.copy.clock.advance(issued.expires_in + 1)
                self.authorization = f"Bearer {issued.access_token}"
                self.matched.append("an expired token")
            return  # otherwise the emulator refuses the client's token as it came
        if token is None:
            return
        known = self.identities.of(token)
        app = self._application(known[0] if known else None)
        issued = self.copy.tokens.exchange(app.client_id, app.client_secret)
        self.authorization = f"Bearer {issued.access_token}"
        self.matched.append(f"a token of {app.client_id}")

    def _workspace(self) -> Any:
        app = self._application(self._client_id())
        workspace = self.copy.registry.workspace(app.workspace_id)
        # The copy's links are throwaway: one made only to match the target ignores the quota.
        return dataclasses.replace(workspace, link_quota=10**9)

    def _client_id(self) -> str | None:
        token = bearer_token(self.request)
        known = self.identities.of(token) if token else None
        return known[0] if known else None

    def _has(self, link_id: str) -> bool:
        copy = self.copy
        if self.environment == "sandbox":
            return copy.sandbox.get(link_id) is not None
        return copy.live.get(self._workspace().id, link_id) is not None

    def _link(self) -> None:
        link_id = self.request.path.rsplit("/", 1)[-1]
        self.requested_id = link_id
        status = self.target.status
        if status == 200 and not self._has(link_id):
            if self.environment == "sandbox":
                first = self.copy.sandbox.query(LinkQuery(limit=1)).items
                if not first:
                    raise NoShadow("the emulator's sample set is empty")
                link_id = first[0].id
            else:
                new = NewLink("A link the target has", "https://example.com/8here-proxy")
                link_id = self.copy.live.create(self._workspace(), new, self.copy.clock.now()).id
            self.matched.append("a link the emulator has")
        elif status == 404 and self._has(link_id):
            link_id = ABSENT_LINK_ID
            self.matched.append("a link the emulator lacks")
        else:
            return
        self.requested_id = link_id
        self.path = f"{LINKS_PATH}/{quote(link_id, safe='')}"

    def _slug(self) -> None:
        sent = self.request.json
        slug = sent.get("slug") if isinstance(sent, dict) else None
        if not isinstance(slug, str):
            return
        copy, code = self.copy, _error_code(self.target)
        taken_here = (
            copy.sandbox.by_slug(slug) is not None
            if self.environment == "sandbox"
            else copy.live.find_slug(slug) is not None
        )
        if self.target.status == 409 and code == "slug_taken" and not taken_here:
            if self.environment == "sandbox":
                first = copy.sandbox.query(LinkQuery(limit=1)).items
                if not first:
                    raise NoShadow("the emulator's sample set is empty")
                self._send_json({**sent, "slug": first[0].slug})
            else:
                new = NewLink("A link with the slug the target has", "https://example.com/", slug)
                copy.live.create(self._workspace(), new, copy.clock.now())
            self.matched.append("a taken slug")
        elif self.target.status == 201 and taken_here:
            self._send_json({key: value for key, value in sent.items() if key != "slug"})
            self.matched.append("a free slug")

    def _send_json(self, body: Any) -> None:
        self.body = json.dumps(body).encode()

    # -- sending --------------------------------------------------------------------------

    def _headers(self) -> list[tuple[bytes, bytes]]:
        headers = [(k, v) for k, v in self.request.headers if k.lower() not in _DROPPED]
        if self.authorization is not None:
            headers.append((b"authorization", self.authorization.encode("latin-1", "replace")))
        if self.body:
            headers.append((b"content-length", str(len(self.body)).encode()))
        headers.append((b"host", b"emulator"))
        return headers

    async def send(self) -> ShadowAnswer:
        copy = self.copy
        app = request_layer(copy, list(PublicApi(copy).routes()))
        raw_path = (
            self.request.raw_path if self.path == self.request.path else self.path.encode("ascii")
        )
        sent_at = copy.clock.timestamp()
        status, headers, body = await call_asgi(
            app,
            self.request.method,
            self.path,
            raw_path,
            self.request.query_string,
            self._headers(),
            self.body,
        )
        return ShadowAnswer(
            status=status,
            headers=headers,
            body=body,
            environment=self.environment,
            path=self.path,
            requested_id=self.requested_id,
            sent_at=sent_at,
            received_at=copy.clock.timestamp(),
            matched=tuple(self.matched),
        )


async def call_asgi(
    app: Any,
    method: str,
    path: str,
    raw_path: bytes,
    query_string: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
) -> tuple[int, RawHeaders, bytes]:
    """One request to an ASGI app in this process: its status, headers and (bounded) body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": raw_path,
        "query_string": query_string,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 0),
        "server": ("emulator", 80),
        "state": {},
    }
    done = asyncio.Event()
    sent_body = False
    status = 500
    out_headers: RawHeaders = ()
    chunks: list[bytes] = []
    size = 0

    async def receive() -> Message:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status, out_headers, size
        if message["type"] == "http.response.start":
            status = message["status"]
            out_headers = tuple((bytes(k), bytes(v)) for k, v in message.get("headers", ()))
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            if size + len(chunk) <= SHADOW_BODY_BYTES:
                chunks.append(chunk)
            size += len(chunk)
            if not message.get("more_body", False):
                done.set()

    try:
        await app(scope, receive, send)
    finally:
        done.set()
    return status, out_headers, b"".join(chunks)
