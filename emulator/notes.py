"""What one request's handler and the request layer tell each other: its `RequestNotes`.

The request layer (emulator/middleware.py) makes the notes when a request starts and puts them in
the ASGI scope; a handler reads its request's fence ticket from them and writes what only it
learns (whose request it was, the page it answered, the rate-limit decision, the proxy's check).
The layer journals the notes with the exchange and puts the rate-limit headers on the response,
whatever the handler answers, errors included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emulator.journal import EntryCheck
    from emulator.ratelimit import Decision

SCOPE_KEY = "emulator.notes"


@dataclass(slots=True)
class RequestNotes:
    request_id: str
    # The fence's generation when the request started (emulator/fence.py).
    ticket: int
    # The first value of each request header, by its lowercase name (as `Headers.get` gives).
    headers: dict[bytes, bytes]
    client_id: str | None = None
    # The fingerprint of the bearer token the request carried, or of the one it was issued.
    token_fingerprint: str | None = None
    # The pagination of the page a list answered.
    pagination: dict[str, Any] | None = None
    # The caller's rate-limit window after this request was counted (or refused).
    rate_limit: Decision | None = None
    # The delay the emulator added (latency profile and fault), in milliseconds.
    latency_ms: float = 0.0
    # What the proxy checked about the exchange it forwarded.
    check: EntryCheck | None = None

    def header(self, name: bytes) -> str | None:
        """The first value of the request header `name` (lowercase), as `Headers.get` gives."""
        value = self.headers.get(name)
        return value.decode("latin-1") if value is not None else None


def notes_of(scope: Mapping[str, Any]) -> RequestNotes:
    """The notes of the request in `scope` (a Starlette `request.scope`)."""
    notes: RequestNotes = scope[SCOPE_KEY]
    return notes
