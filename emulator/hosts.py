"""Which `Host` names the control API answers for, and whether an `Origin` is the emulator's own.

A web page can reach a server on the loopback interface, and by DNS rebinding it can make its own
name point there: the browser then treats the emulator as the page's own origin. A page's name is
never an IP literal or `localhost` (browsers resolve `*.localhost` to loopback themselves), so
the control API answers only for those, and for names the user allows (a compose service name).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

_NAME_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_ANSWERS_KEPT = 256


def split_host(host: str) -> tuple[str, str | None] | None:
    """`(name, port)` of a Host header value (lowercase name, IPv6 without brackets), or None
    when it is not `name[:port]`."""
    host = host.strip().lower()
    if host.startswith("["):
        name, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] if rest else None
    else:
        name, colon, port_text = host.partition(":")
        port = port_text if colon else None
        if ":" in port_text:
            return None
    if port is not None and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        return None
    return (name, port) if name else None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def valid_host_pattern(pattern: str) -> bool:
    """A name for --allowed-hosts: a DNS name, `*.` and a DNS name, an IP address, or `*`."""
    if pattern == "*" or _is_ip(pattern):
        return True
    name = pattern.removeprefix("*.").rstrip(".")
    labels = name.split(".")
    return bool(name) and all(_NAME_LABEL.fullmatch(label) for label in labels)


class HostPolicy:
    """IP literals, `localhost` and `*.localhost` always; then the allowed names: exact, `*.`
    for any subdomain of a name, or `*` for any name at all."""

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        names = [name.strip().lower().rstrip(".") for name in allowed if name.strip()]
        self.any = "*" in names
        self.exact = frozenset(name for name in names if not name.startswith("*."))
        self.suffixes = tuple(name[1:] for name in names if name.startswith("*."))
        self._answers: dict[str, bool] = {}  # by Host value: a client sends the same one each time

    def allows(self, host: str | None) -> bool:
        if host is None:
            return False
        known = self._answers.get(host)
        if known is None:
            if len(self._answers) >= _ANSWERS_KEPT:
                self._answers.clear()
            known = self._answers[host] = self._allows(host)
        return known

    def _allows(self, host: str) -> bool:
        parts = split_host(host) if host else None
        if parts is None:
            return False
        name = parts[0].rstrip(".")
        if self.any or name == "localhost" or name.endswith(".localhost") or _is_ip(name):
            return True
        return name in self.exact or name.endswith(self.suffixes)


def same_origin(origin: str, host: str | None) -> bool:
    """Whether a browser's `Origin` names the server it was sent to (by its `Host`): an http(s)
    origin whose authority is the Host header. `null` and every other origin are foreign."""
    scheme, sep, authority = origin.strip().lower().partition("://")
    if not sep or scheme not in ("http", "https") or host is None:
        return False
    return authority == host.strip().lower()
