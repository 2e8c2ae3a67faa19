"""Recognising secrets wherever a client puts them, so that journals and logs never show one.

Recognised: the emulator's own bearer tokens (`eh_…`) anywhere; the credentials after an HTTP
authentication scheme (`Bearer …`, `Basic …`) in any header; the values of headers, query
parameters and JSON keys whose names say they hold a secret; and the secrets the emulator knows
(registered client secrets, the control token) wherever they appear.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote_plus

MASK = "***"
# Known secrets shorter than this are not searched for in free text: they would mask ordinary
# words. (Such secrets are still masked where a name or a scheme says they are secrets.)
KNOWN_SECRET_MIN = 8

_EMULATOR_TOKEN = re.compile(r"eh_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# RFC 9110 credentials: a scheme, then a token68 standing alone (so `Bearer error="…"` is kept).
_SCHEME_CREDENTIALS = re.compile(
    r"(?i)\b(bearer|basic|digest|token|negotiate|apikey)(\s+)[A-Za-z0-9._~+/-]+=*(?=$|[\s,;])"
)
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
# A header, parameter or JSON key whose name ends so holds a secret (names are folded first).
_SECRET_NAME = re.compile(r"(secret|password|passwd|token|apikey|credentials?|sessionid|cookie)$")
_SECRET_TEXT = re.compile(r"secret|token|password|\\u", re.IGNORECASE)


def _folded(name: str) -> str:
    return re.sub(r"[-_.\s]", "", name.casefold())


def secret_name(name: str) -> bool:
    return name.casefold() in _SECRET_HEADERS or bool(_SECRET_NAME.search(_folded(name)))


@functools.lru_cache(maxsize=8)
def _known_pattern(known: frozenset[str]) -> re.Pattern[str] | None:
    long_enough = sorted((s for s in known if len(s) >= KNOWN_SECRET_MIN), key=len, reverse=True)
    if not long_enough:
        return None
    return re.compile("|".join(map(re.escape, long_enough)))


class Masker:
    """Masks text, headers, query strings and bodies, knowing the secrets in `known`."""

    def __init__(self, known: Iterable[str] = ()) -> None:
        self._known = _known_pattern(frozenset(known))

    def text(self, text: str) -> str:
        text = _EMULATOR_TOKEN.sub(MASK, text)
        text = _SCHEME_CREDENTIALS.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
        if self._known is not None:
            text = self._known.sub(MASK, text)
        return text

    def _holds_secret(self, text: str) -> bool:
        return self.text(text) != text

    def header(self, name: str, value: str) -> str:
        if secret_name(name):
            scheme, space, credentials = value.strip().partition(" ")
            return f"{scheme} {MASK}" if space and credentials else MASK
        return self.text(value)

    def query(self, query: str) -> str:
        """Each `name=value` pair with its value masked when the name says secret or the value
        holds one; the rest of the query string as sent."""
        pairs = []
        for pair in query.split("&"):
            name, equals, value = pair.partition("=")
            decoded = unquote_plus(value)
            if equals and (secret_name(unquote_plus(name)) or self._holds_secret(decoded)):
                value = MASK
            pairs.append(f"{self.text(name)}{equals}{value}")
        return "&".join(pairs)

    def json_value(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                key: MASK if secret_name(str(key)) else self.json_value(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self.json_value(item) for item in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def body(self, raw: bytes, *, truncated: bool) -> str:
        """A JSON body with every secret-bearing value masked; another body only when it cannot
        be hiding a secret (a truncated or escaped key defeats any pattern, so those are
        withheld)."""
        try:
            return json.dumps(self.json_value(json.loads(raw)), ensure_ascii=False)
        except (ValueError, RecursionError):
            pass
        text = raw.decode("utf-8", "replace")
        if _SECRET_TEXT.search(text) or self._holds_secret(text):
            return f"[{len(raw)} bytes withheld: not JSON, and may hold a secret]"
        return text + ("…(truncated)" if truncated else "")


class AccessLogMasking(logging.Filter):
    """Masks secrets in the request target of uvicorn's access log lines ("%s - "%s %s HTTP/%s"
    %d": client, method, target, version, status)."""

    def __init__(self, known: Callable[[], Iterable[str]] = tuple) -> None:
        super().__init__()
        self._known = known

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path, question, query = args[2].partition("?")
            masker = Masker(self._known())
            target = masker.text(path) + question + (masker.query(query) if question else "")
            record.args = (*args[:2], target, *args[3:])
        return True
