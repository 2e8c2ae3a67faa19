"""The differential layer: each probe to the target, then to the emulator, and the two answers
compared (`comparison.py`) by status, error code and field, the headers that matter, JSON shape
and meaning."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

from emulator.drift.comparison import Exchange, compare, compare_decreases
from emulator.drift.contract import Contract
from emulator.drift.model import Difference, Skipped
from emulator.drift.probes import INVALID_TOKEN, Probe
from emulator.drift.properties import Answer
from emulator.drift.transport import Side, UnsafeRequest

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass
class SideState:
    """One side during the probes: what later probes need from its earlier answers."""

    side: Side
    context: dict[str, str] = field(default_factory=dict)
    counted: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.context.setdefault("client_id", self.side.client_id)
        self.context.setdefault("client_secret", self.side.client_secret)


class MissingPlaceholder(Exception):
    pass


def _fill(value: Any, context: dict[str, str]) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            if match.group(1) not in context:
                raise MissingPlaceholder(match.group(1))
            return context[match.group(1)]

        return _PLACEHOLDER.sub(replace, value)
    if isinstance(value, dict):
        return {k: _fill(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, context) for v in value]
    return value


# In a reproducing command the credentials are shell variables, never the values themselves.
_CURL_CONTEXT = {"client_id": "$EIGHTHERE_CLIENT_ID", "client_secret": "$EIGHTHERE_CLIENT_SECRET"}


def _shell_double_quoted(text: str) -> str:
    """`text` in double quotes, with only the `$EIGHTHERE_…` variables left to expand."""
    escaped = "".join("\\" + c if c in '"\\`$' else c for c in text)
    for variable in _CURL_CONTEXT.values():
        escaped = escaped.replace("\\" + variable, variable)
    return f'"{escaped}"'


def curl_command(probe: Probe, url: str, headers: dict[str, str], context: dict[str, str]) -> str:
    parts = ["curl", "-X", probe.method]
    for name, value in headers.items():
        if name.lower() == "authorization" and value != f"Bearer {INVALID_TOKEN}":
            parts += ["-H", '"Authorization: Bearer $EIGHTHERE_TOKEN"']
        else:
            parts += ["-H", shlex.quote(f"{name}: {value}")]
    if probe.raw_body is not None:
        parts += ["--data-binary", shlex.quote(probe.raw_body.decode("utf-8", "replace"))]
    elif probe.json_body is not None:
        shown = _fill(probe.json_body, {**context, **_CURL_CONTEXT})
        parts += ["--data-binary", _shell_double_quoted(json.dumps(shown))]
    parts.append(shlex.quote(url))
    return " ".join(parts)


def send(state: SideState, probe: Probe) -> Exchange:
    side = state.side
    path = _fill(probe.path, state.context)
    body_json = _fill(probe.json_body, state.context)
    headers: dict[str, str] = {"Accept": "application/json"}
    if probe.auth == "token":
        headers["Authorization"] = f"Bearer {side.bearer()}"
    elif probe.auth == "invalid":
        headers["Authorization"] = f"Bearer {INVALID_TOKEN}"
    data: bytes | None = None
    if probe.raw_body is not None:
        data = probe.raw_body
    elif body_json is not None:
        data = json.dumps(body_json).encode()
    if data is not None:
        headers["Content-Type"] = probe.content_type or "application/json"
    response = side.session.request(
        probe.method, side.url(path), params=list(probe.query), headers=headers, data=data
    )
    # After any pacing wait; the server handled the request between the two.
    sent_at, received_at = side.session.last_sent_at, side.session.last_received_at
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    requested_id = path.rsplit("/", 1)[-1] if probe.operation == "getLink" else None
    answer = Answer(
        probe=probe,
        status=response.status_code,
        headers={k.lower(): v for k, v in response.headers.items()},
        body=body,
        sent_at=sent_at,
        received_at=received_at,
        environment=side.environment,
        requested_id=requested_id,
    )
    sent_url = str(response.request.url)
    described = probe.method + " " + sent_url[len(side.base_url) :]
    curl = curl_command(probe, sent_url, headers, state.context)
    _learn(state, probe, answer)
    return Exchange(answer, media_type, described, curl)


def _learn(state: SideState, probe: Probe, answer: Answer) -> None:
    """Remember what later probes need from this side: a listed id and slug, a created id."""
    body = answer.body
    if probe.operation == "listLinks" and answer.status == 200 and isinstance(body, dict):
        data = body.get("data")
        if isinstance(data, list) and data and isinstance(data[0], dict):
            first = data[0]
            if isinstance(first.get("id"), str):
                state.context.setdefault("listed_id", first["id"])
            if isinstance(first.get("slug"), str):
                state.context.setdefault("listed_slug", first["slug"])
    created = isinstance(body, dict) and isinstance(body.get("id"), str)
    if probe.name == "create.valid" and answer.status == 201 and created:
        state.context["created_id"] = body["id"]
    if probe.counted and answer.status not in (401, 429):
        state.counted.append(answer)


def run_probes(
    probes: list[Probe],
    target: SideState,
    emulator: SideState,
    contract: Contract,
    *,
    allow_create: bool,
    on_probe: Callable[[Probe], None] | None = None,
) -> Iterator[Difference | Skipped | str]:
    """Sends every probe and yields differences, skipped probes and errors (strings), in order."""
    for probe in probes:
        if on_probe is not None:
            on_probe(probe)
        if probe.writes and not allow_create:
            yield Skipped(probe.name, "a create on a live target: pass --allow-writes to send it")
            continue
        try:
            target_exchange = send(target, probe)
        except MissingPlaceholder as missing:
            yield Skipped(probe.name, f"needs a {missing} from an earlier answer of the target")
            continue
        except UnsafeRequest as exc:
            yield Skipped(probe.name, str(exc))
            continue
        except requests.RequestException as exc:
            yield f"{probe.name}: the target did not answer ({type(exc).__name__})"
            continue
        try:
            emulator_exchange = send(emulator, probe)
        except MissingPlaceholder as missing:
            yield Skipped(probe.name, f"needs a {missing} from an earlier answer of the emulator")
            continue
        except requests.RequestException as exc:
            yield f"{probe.name}: the emulator did not answer ({type(exc).__name__})"
            continue
        statuses = (target_exchange.answer.status, emulator_exchange.answer.status)
        if 429 in statuses and probe.expect_status != 429:
            yield Skipped(probe.name, "rate limited even after waiting Retry-After")
            continue
        yield from compare(contract, probe, target_exchange, emulator_exchange)
    yield from compare_decreases(target.counted, emulator.counted)
