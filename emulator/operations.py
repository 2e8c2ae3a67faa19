"""The real API's four operations: which one a request is, by the contract's operationIds (which
latency profiles name)."""

from __future__ import annotations

from emulator.paths import LINKS_PATH, TOKEN_PATH

OPERATIONS = ("createToken", "listLinks", "createLink", "getLink")
_LINK_PREFIX = LINKS_PATH + "/"


def operation_of(method: str, path: str) -> str | None:
    """The operationId a request would reach, or None (another path, or a method none has)."""
    if path == LINKS_PATH:
        return "listLinks" if method == "GET" else "createLink" if method == "POST" else None
    if path.startswith(_LINK_PREFIX):
        return "getLink" if method == "GET" and len(path) > len(_LINK_PREFIX) else None
    if path == TOKEN_PATH and method == "POST":
        return "createToken"
    return None
