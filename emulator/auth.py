"""Credentials → bearer token → Principal, on the emulator's clock.

Tokens are stateless and signed with a key that changes on every reset, so a reset invalidates
them all and the emulator keeps no per-token memory however many a client asks for.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from emulator import errors
from emulator.clock import Clock
from emulator.models import Application, Principal
from emulator.registry import Registry

TOKEN_PREFIX = "eh_"
_SIGNATURE_BYTES = 24
# Compared against when the client is unknown, so both failures take the same time.
_DUMMY_SECRET = b"\x00" * 32
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
# Tokens whose signature was checked: (client id, expiry epoch) by token, so a client's every
# call does not pay base64 and HMAC again. Cleared when full; the key, so the cache, goes on reset.
_VERIFIED_TOKENS = 4096
_CALLER_HEADER_MAX = 512
# Fingerprints of tokens seen (every API request journals one): of tokens up to a few hundred
# characters, as the emulator's own are, so the memo stays small whatever clients send.
_FINGERPRINTS: dict[str, str] = {}
_FINGERPRINTS_KEPT = 4096
_FINGERPRINTED_TOKEN_MAX = 512


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    expires_at: datetime
    application: Application


class TokenService:
    def __init__(
        self,
        registry: Registry,
        clock: Clock,
        ttl_seconds: int = 3600,
        rate_limit_override: int | None = None,
    ) -> None:
        self._registry = registry
        self._clock = clock
        self._ttl = ttl_seconds
        self._rate_limit_override = rate_limit_override
        self._key = secrets.token_bytes(32)
        self._verified: dict[str, tuple[str, int]] = {}
        # The caller of each client id, made again when its application or workspace changes.
        self._principals: dict[str, Principal] = {}
        # Callers found, by their Authorization value: (principal, the token's expiry epoch, the
        # registry's version then). Every API request authenticates; most repeat a header.
        self._callers: dict[str, tuple[Principal, int, int]] = {}

    def exchange(self, client_id: str, client_secret: str) -> IssuedToken:
        application = self._registry.application(client_id)
        expected = application.client_secret.encode() if application else _DUMMY_SECRET
        secret_ok = hmac.compare_digest(expected, client_secret.encode("utf-8", "surrogatepass"))
        if application is None or not secret_ok:
            raise errors.invalid_client()
        workspace = self._registry.workspace(application.workspace_id)
        if workspace is None or not workspace.api_access:
            raise errors.api_access_disabled()
        expires_epoch = math.floor(self._clock.timestamp()) + self._ttl
        payload = f"{client_id}\n{expires_epoch}\n{secrets.token_hex(8)}".encode()
        token = TOKEN_PREFIX + _b64(payload) + "." + _b64(self._sign(payload))
        return IssuedToken(
            access_token=token,
            expires_in=self._ttl,
            expires_at=datetime.fromtimestamp(expires_epoch, UTC),
            application=application,
        )

    def authenticate(self, authorization: str | None) -> Principal:
        """The caller behind an `Authorization` header, or an ApiError (401/403)."""
        known = self._callers.get(authorization) if authorization else None
        if known is not None and known[2] == self._registry.version:
            principal, expires_epoch, _ = known
            if self._clock.timestamp() >= expires_epoch:
                raise errors.token_expired()
            return principal
        return self._authenticate(authorization)

    def _authenticate(self, authorization: str | None) -> Principal:
        version = self._registry.version  # before the look-ups: a change meanwhile is not kept
        if not authorization or not authorization.strip():
            raise errors.missing_token()
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise errors.missing_token()
        token = token.strip()
        verified = self._verified.get(token)
        if verified is None:
            try:
                client_id, expires_text, _nonce = self._verify(token).decode().split("\n")
                verified = (client_id, int(expires_text))
            except ValueError:  # signed by this emulator, yet not its payload: refuse, never fail
                raise errors.invalid_token() from None
            if len(self._verified) >= _VERIFIED_TOKENS:
                self._verified.clear()
            self._verified[token] = verified
        client_id, expires_epoch = verified
        application = self._registry.application(client_id)
        workspace = self._registry.workspace(application.workspace_id) if application else None
        if application is None or workspace is None:
            raise errors.invalid_token()
        if self._clock.timestamp() >= expires_epoch:
            raise errors.token_expired()
        if not workspace.api_access:
            raise errors.api_access_disabled()
        principal = self._principals.get(client_id)
        if principal is None or (principal.application, principal.workspace) != (
            application,
            workspace,
        ):
            principal = Principal(application, workspace, self._rate_limit_override)
            self._principals[client_id] = principal  # one per registered client id at most
        if len(authorization) <= _CALLER_HEADER_MAX:
            if len(self._callers) >= _VERIFIED_TOKENS:
                self._callers.clear()
            self._callers[authorization] = (principal, expires_epoch, version)
        return principal

    def _verify(self, token: str) -> bytes:
        if not token.startswith(TOKEN_PREFIX) or token.count(".") != 1:
            raise errors.invalid_token()
        body, _, signature = token[len(TOKEN_PREFIX) :].partition(".")
        try:
            payload = _unb64(body)
            given = _unb64(signature)
        except ValueError:
            raise errors.invalid_token() from None
        if not hmac.compare_digest(given, self._sign(payload)):
            raise errors.invalid_token()
        return payload

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]


def fingerprint(token: str) -> str:
    """A short, stable, non-reversible name for a token, for journals and logs."""
    known = _FINGERPRINTS.get(token)
    if known is not None:
        return known
    digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
    named = "tok_" + digest[:12]
    if len(token) <= _FINGERPRINTED_TOKEN_MAX:
        if len(_FINGERPRINTS) >= _FINGERPRINTS_KEPT:
            _FINGERPRINTS.clear()
        _FINGERPRINTS[token] = named
    return named


def bearer_fingerprint(authorization: str) -> str:
    """The fingerprint of the token in an `Authorization` header's value."""
    return fingerprint(authorization.partition(" ")[2].strip())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """Strict: only the one spelling `_b64` gives (no padding, no other characters, no stray
    bits in the last character)."""
    if not _B64URL.fullmatch(text):
        raise ValueError("not unpadded base64url")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(raw) != text:
        raise ValueError("not the canonical spelling")
    return raw
