"""`--record FILE`: every exchange appended to a JSON Lines file, with no secret in it.

The first line is a header (format name, version, target, the contract's SHA-256); each further
line is one exchange: the request and the target's answer (bodies decompressed, JSON as JSON) and
what the check found. An existing file is appended to only when its header names the same
format, target and contract.

Secrets never reach the file, by two means. Redaction: the `Authorization` header's credentials,
every header not on a short allowlist, and every secret-named JSON field or query parameter
(`clientSecret`, `accessToken`, `password`, ...) are masked (`***`, as `masking.py` masks them
in the journal). Then a scan: each
line is searched, before it is written, for every secret and token the proxy has seen (sent or
issued, as is and JSON- or URL-escaped); a hit means redaction missed one, and the line is not
written: the proxy says so on stderr and in the journal entry, and carries on.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qsl, quote, quote_plus

from emulator.masking import MASK, Masker, secret_name
from emulator.paths import TOKEN_PATH
from emulator.proxy.checks import ExchangeCheck
from emulator.proxy.exchange import NOT_JSON, ClientRequest, RawHeaders, TargetAnswer, parse_json

FORMAT = "8here-emulator-proxy-record"
VERSION = 1
KEPT_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "allow",
        "cache-control",
        "content-encoding",
        "content-length",
        "content-type",
        "date",
        "location",
        "retry-after",
        "vary",
        "www-authenticate",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "x-request-id",
    }
)
# Shorter ones would match everywhere: they are redacted where they are known, not searched for.
SHORTEST_SCANNED = 8
MOST_REMEMBERED = 1024


class RecordError(Exception):
    """The record file cannot be used; the message says which and why."""


class Secrets:
    """Every secret and token seen, newest kept past the bound, with the forms it can take in a
    JSON line."""

    def __init__(self, most: int = MOST_REMEMBERED) -> None:
        self._seen: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._most = most

    def add(self, secret: str) -> None:
        secret = secret.strip()
        if len(secret) < SHORTEST_SCANNED:
            return
        forms = {secret, json.dumps(secret)[1:-1], quote(secret, safe=""), quote_plus(secret)}
        self._seen[secret] = tuple(forms)
        self._seen.move_to_end(secret)
        while len(self._seen) > self._most:
            self._seen.popitem(last=False)

    def found_in(self, line: str) -> bool:
        return any(form in line for forms in self._seen.values() for form in forms)

    def __len__(self) -> int:
        return len(self._seen)


def _secrets_in(value: Any) -> Iterable[str]:
    """The values of secret-named fields anywhere in a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            if secret_name(str(key)) and isinstance(item, str):
                yield item
            else:
                yield from _secrets_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _secrets_in(item)


_MASKER = Masker()


def _headers(raw: RawHeaders) -> list[list[str]]:
    """Each header by name; the value only when the header is on the allowlist (credentials
    masked even there), else the mask."""
    shown = []
    for name, value in raw:
        key, text = name.decode("latin-1"), value.decode("latin-1")
        secret = secret_name(key)
        kept = key.lower() in KEPT_HEADERS or secret
        shown.append([key, _MASKER.header(key, text) if kept else MASK])
    return shown


def _body(body: bytes | None, *, secret_if_not_json: bool = False) -> dict[str, Any]:
    if body is None:
        return {"bodyOmitted": "not held: larger than the proxy's bound, or not decodable"}
    if not body:
        return {}
    parsed = parse_json(body)
    if parsed is not NOT_JSON:
        return {"body": _MASKER.json_value(parsed)}
    if secret_if_not_json:
        return {"bodyOmitted": f"{len(body)} bytes, not JSON, of a token exchange"}
    try:
        return {"bodyText": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"bodyBase64": base64.b64encode(body).decode("ascii")}


def contract_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Recorder:
    """Appends exchanges to `path`; `to_json()` says how many were written and refused."""

    def __init__(
        self,
        path: Path,
        *,
        target: str,
        contract_sha256: str,
        started_at: str,
        version: str,
        errors: TextIO | None = None,
    ) -> None:
        self.path = path
        self.secrets = Secrets()
        self.written = 0
        self.refused = 0
        self._lock = threading.Lock()
        self._errors = errors
        header = {
            "format": FORMAT,
            "version": VERSION,
            "target": target,
            "contract": {"sha256": contract_sha256},
            "emulator": version,
            "startedAt": started_at,
        }
        self._file = _open(path, header)

    def to_json(self) -> dict[str, Any]:
        return {"file": str(self.path), "written": self.written, "refused": self.refused}

    def learn(self, request: ClientRequest, answer: TargetAnswer | None) -> None:
        """Remember the secrets of an exchange: its credentials, tokens and secret fields."""
        for name, value in request.headers:
            if name.lower() in (b"authorization", b"proxy-authorization"):
                _, _, credentials = value.decode("latin-1").strip().partition(" ")
                self.secrets.add(credentials or value.decode("latin-1"))
        for name, value in parse_qsl(request.query_string.decode("latin-1")):
            if secret_name(name):
                self.secrets.add(value)
        for value in (request.json, answer.json if answer is not None else NOT_JSON):
            if value is not NOT_JSON:
                for secret in _secrets_in(value):
                    self.secrets.add(secret)

    def write(
        self,
        sequence: int,
        time: str,
        request: ClientRequest,
        answer: TargetAnswer | None,
        check: ExchangeCheck,
    ) -> bool:
        """Append one exchange; `False` (and a message on stderr) when its line held a secret."""
        self.learn(request, answer)
        token_exchange = request.path == TOKEN_PATH
        line: dict[str, Any] = {
            "entry": sequence,
            "time": time,
            "request": {
                "method": request.method,
                "path": request.path,
                "query": _MASKER.query(request.query_string.decode("latin-1")),
                "headers": _headers(request.headers),
                **_body(request.body, secret_if_not_json=token_exchange),
            },
            "response": None
            if answer is None
            else {
                "status": answer.status,
                "headers": _headers(answer.headers),
                **_body(answer.body, secret_if_not_json=token_exchange),
            },
            "check": {
                **check.summary(),
                "found": [
                    {
                        "kind": d.kind,
                        "location": d.aspect,
                        "emulator": d.emulator,
                        "target": d.target,
                        "contractAgreesWith": d.contract,
                    }
                    for d in check.differences
                ],
            },
        }
        text = json.dumps(line, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            if self.secrets.found_in(text):
                self.refused += 1
                self._say(
                    f"8here-emulator proxy: entry {sequence} was not recorded: its line held a "
                    "secret or token the proxy has seen (redaction missed it)"
                )
                return False
            self._file.write(text + "\n")
            self._file.flush()
            self.written += 1
        return True

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def _say(self, message: str) -> None:
        stream = self._errors or sys.stderr
        try:
            stream.write(message + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass


def _open(path: Path, header: dict[str, Any]) -> TextIO:
    """The file to append to: new (with `header` as its first line), or one whose first line is
    the same format's header for the same target and contract."""
    try:
        if path.exists() and path.stat().st_size > 0:
            with path.open(encoding="utf-8") as existing:
                first = existing.readline(64 * 1024)
            _same_recording(path, first, header)
            return path.open("a", encoding="utf-8")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        file = os.fdopen(descriptor, "a", encoding="utf-8")
        file.write(json.dumps(header, ensure_ascii=False, separators=(",", ":")) + "\n")
        file.flush()
        return file
    except OSError as exc:
        raise RecordError(f"cannot record to {path}: {exc.strerror or exc}") from exc


def _same_recording(path: Path, first: str, header: dict[str, Any]) -> None:
    try:
        found = json.loads(first)
    except ValueError:
        found = None
    if not isinstance(found, dict) or found.get("format") != FORMAT:
        raise RecordError(f"{path} is not a {FORMAT} file; record to a new file")
    if found.get("version") != VERSION:
        raise RecordError(f"{path} has version {found.get('version')!r}, not {VERSION}")
    if found.get("target") != header["target"]:
        raise RecordError(
            f"{path} was recorded against {found.get('target')}, not {header['target']}; "
            "record to a new file"
        )
    if found.get("contract") != header["contract"]:
        raise RecordError(f"{path} was recorded with another contract; record to a new file")
