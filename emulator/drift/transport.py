"""The one way requests reach a target: guarded (reads, token exchanges, allowed creates only),
paced under the rate limit, counted for progress, and retried after a 429's `Retry-After`.

Schemathesis sends through it too (it accepts a `requests.Session`), so fuzzed cases, the probes
that schemathesis's auth check sends on its own, and the differential probes share one pace.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import requests

from emulator.drift.pacing import Pacer, Progress, parse_retry_after
from emulator.paths import LINKS_PATH, TOKEN_PATH

MAX_RETRIES_AFTER_429 = 3
# Longer than any per-minute window; a target asking for more is out of quota for this run.
MAX_RETRY_AFTER_SECONDS = 300.0


class UnsafeRequest(Exception):
    """A request that could change data on the target, refused before it was sent."""


class TargetRateLimited(Exception):
    """The target asks to wait longer than the drift check will."""


class RequestBudgetSpent(Exception):
    """The session has sent as many requests as it was allowed (`max_requests`)."""


@dataclass(frozen=True)
class SafetyPolicy:
    """What may be sent: token exchanges and reads always; creates only when `allow_create`.

    The contract has no update or delete; anything outside its four operations is refused.
    """

    base_path: str = ""
    allow_create: bool = False

    def check(self, method: str, url: str) -> None:
        path = urlsplit(url).path
        if self.base_path and path.startswith(self.base_path):
            path = path[len(self.base_path) :] or "/"
        decoded = unquote(path)
        if posixpath.normpath(decoded) != decoded.rstrip("/") and decoded != "/":
            raise UnsafeRequest(f"{method} {path}: dot segments could reach another resource")
        method = method.upper()
        if method == "GET" and (path == LINKS_PATH or path.startswith(LINKS_PATH + "/")):
            return
        if method == "POST" and path == TOKEN_PATH:
            return
        if method == "POST" and path == LINKS_PATH:
            if self.allow_create:
                return
            raise UnsafeRequest(f"{method} {path}: creates on a live target need --allow-writes")
        raise UnsafeRequest(f"{method} {path}: not one of the contract's read or create calls")


class PacedSession(requests.Session):
    """A `requests.Session` whose every send is checked, paced, counted and 429-aware."""

    def __init__(
        self,
        pacer: Pacer,
        policy: SafetyPolicy,
        progress: Progress | None = None,
        *,
        timeout: float = 30.0,
        max_requests: int | None = None,
    ) -> None:
        super().__init__()
        self.pacer = pacer
        self.policy = policy
        self.progress = progress
        self.timeout = timeout
        self.max_requests = max_requests
        self.sent = 0
        self.last_sent_at = 0.0
        self.last_received_at = 0.0

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.policy.check(str(request.method), str(request.url))
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        attempt = 0
        while True:
            if self.max_requests is not None and self.sent >= self.max_requests:
                raise RequestBudgetSpent(f"{self.sent} requests sent, the most allowed")
            self.pacer.wait()
            self.last_sent_at = time.time()
            response = super().send(request, **kwargs)
            self.last_received_at = time.time()
            self.sent += 1
            if self.progress is not None:
                self.progress.tick()
            if response.status_code != 429 or attempt >= MAX_RETRIES_AFTER_429:
                return response
            wait = parse_retry_after(response.headers.get("Retry-After"))
            if wait is None:
                wait = max(self.pacer.interval, 1.0)
            if wait > MAX_RETRY_AFTER_SECONDS:
                raise TargetRateLimited(
                    f"the target answered 429 with Retry-After {wait:.0f} s, longer than the "
                    f"{MAX_RETRY_AFTER_SECONDS:.0f} s this check waits"
                )
            if self.progress is not None:
                self.progress.note(
                    f"429 from {urlsplit(str(request.url)).netloc}: waiting "
                    f"{wait:.0f} s (Retry-After), then sending it again"
                )
                self.progress.plan(1)
            self.pacer.defer(wait)
            attempt += 1


class SetupError(Exception):
    """The drift check cannot run (unreachable, bad credentials, ...); the message says which."""


# Refresh a token well before the hour the contract gives it.
TOKEN_REFRESH_SECONDS = 50 * 60


class Side:
    """One end of the comparison: `target` or `emulator`, its session, credentials and token."""

    def __init__(
        self,
        name: str,
        base_url: str,
        session: PacedSession,
        client_id: str,
        client_secret: str,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.client_id = client_id
        self.client_secret = client_secret
        self.environment = "unknown"
        self._clock = clock
        self._token: str | None = None
        self._token_at = 0.0

    def url(self, path: str) -> str:
        return self.base_url + path

    def exchange_token(self) -> dict[str, Any]:
        """Exchange the credentials; a `SetupError` says why when that fails."""
        where = f"the {self.name} at {self.base_url}"
        try:
            response = self.session.post(
                self.url(TOKEN_PATH),
                json={"clientId": self.client_id, "clientSecret": self.client_secret},
            )
        except requests.ConnectionError as exc:
            raise SetupError(f"{where} is unreachable ({_reason(exc)})") from None
        except requests.Timeout:
            raise SetupError(
                f"{where} did not answer within {self.session.timeout:.0f} s"
            ) from None
        except requests.RequestException as exc:
            raise SetupError(f"{where} could not be reached ({_reason(exc)})") from None
        body = _json(response)
        code = body.get("error", {}).get("code") if isinstance(body.get("error"), dict) else None
        if response.status_code in (401, 403):
            raise SetupError(
                f"{where} rejected the credentials for client id {self.client_id!r} "
                f"({response.status_code} {code or 'error'})"
            )
        token = body.get("accessToken")
        if response.status_code != 200 or not isinstance(token, str) or not token:
            raise SetupError(
                f"{where} answered the token exchange with {response.status_code} and no "
                "accessToken; is this the 8here Open Links API?"
            )
        self._token = token
        self._token_at = self._clock()
        environment = body.get("environment")
        self.environment = environment if environment in ("sandbox", "live") else "unknown"
        return body

    def bearer(self) -> str:
        if self._token is None or self._clock() - self._token_at > TOKEN_REFRESH_SECONDS:
            self.exchange_token()
        assert self._token is not None
        return self._token


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for marker in (
        "Connection refused",
        "Name or service not known",
        "No route to host",
        "timed out",
        "Temporary failure in name resolution",
        "nodename nor servname",
    ):
        if marker in text:
            return marker.lower()
    return type(exc).__name__
