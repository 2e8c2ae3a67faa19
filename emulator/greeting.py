"""What a command tells its user on stderr once it listens, and when it stops.

A greeting is a title and a few labelled lines (`Line`), at most 10 lines of 100 columns, in
colour only on a terminal and never with NO_COLOR set. `serve_greeting` and `serve_farewell` say
what `serve` has to say; another command builds its own lines and prints them with
`print_greeting`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TextIO

from emulator import __version__
from emulator.models import Application
from emulator.registry import Registry
from emulator.settings import default_fixtures_dir

if TYPE_CHECKING:
    from emulator.serving import Listening
    from emulator.state import EmulatorState

PROGRAM = "8here-emulator"
WIDTH = 100
MOST_LINES = 10
ELLIPSIS = "..."
PATH_INDENT = "    "
DEMO_CLIENT_ID = "sb_demo_client"  # shown first when the fixtures hold several sandbox apps

Tone = Literal["plain", "link", "warn"]
_SGR = {"title": "1", "label": "1", "plain": "", "link": "36", "warn": "33"}


@dataclass(frozen=True)
class Line:
    """One labelled line. A `path` ends it, or takes a line of its own when the two do not fit:
    it is never shortened, since a cut path cannot be copied."""

    label: str
    text: str
    tone: Tone = "plain"
    path: str | None = None


def wants_colour(stream: TextIO) -> bool:
    """Colour on a terminal only, never with NO_COLOR set (no-color.org) or on a dumb terminal."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def _paint(text: str, style: str, colour: bool) -> str:
    code = _SGR[style]
    return f"\x1b[{code}m{text}\x1b[0m" if colour and code else text


def fit(text: str, width: int) -> str:
    """`text`, or its start and end around "..." when it is wider than `width`."""
    if len(text) <= width:
        return text
    keep = max(width - len(ELLIPSIS), 2)
    return text[: keep - keep // 2] + ELLIPSIS + text[len(text) - keep // 2 :]


def render(title: str, lines: Sequence[Line], *, colour: bool = False) -> str:
    label_width = max((len(line.label) for line in lines), default=0)
    out = [_paint(fit(title, WIDTH), "title", colour)]
    for line in lines:
        indent = f"  {line.label:<{label_width}}  "
        text = f"{line.text} {line.path}" if line.path else line.text
        if line.path and len(indent) + len(text) > WIDTH:
            out.append(_paint(indent, "label", colour) + _paint(line.text, line.tone, colour))
            out.append(PATH_INDENT + _paint(line.path, line.tone, colour))
        else:
            text = text if line.path else fit(text, WIDTH - len(indent))
            out.append(_paint(indent, "label", colour) + _paint(text, line.tone, colour))
    if len(out) > MOST_LINES:
        raise ValueError(f"a greeting has at most {MOST_LINES} lines")
    return "\n".join(out) + "\n"


def say(text: str, stream: TextIO | None = None) -> None:
    """Write to stderr (or `stream`); a closed or broken stream never stops a server."""
    out = stream or sys.stderr
    try:
        out.write(text if text.endswith("\n") else text + "\n")
        out.flush()
    except (OSError, ValueError):
        pass


def print_greeting(title: str, lines: Sequence[Line], stream: TextIO | None = None) -> None:
    out = stream or sys.stderr
    say(render(title, lines, colour=wants_colour(out)), out)


# -- serve ----------------------------------------------------------------------------------------


def serve_greeting(state: EmulatorState, listening: Listening) -> tuple[str, list[Line]]:
    """The title and lines `serve` prints once it listens."""
    settings = state.settings
    url = listening.url
    where = f"; every interface: {listening.bound}" if listening.every_interface else ""
    lines = [Line("API", f"{url}  (contract: /openapi.json{where})", "link")]
    if settings.control:
        asks = " (asks for the control token)" if settings.control_token else ""
        lines.append(Line("Inspector", f"{url}/_emulator/ui{asks}", "link"))
    else:
        lines.append(Line("Inspector", "control API off (--no-control); /_emulator/health answers"))
    lines += [_sandbox_app(state), _sample_set(state), _live_links(state)]
    if state.start_scenario is not None:
        lines.append(_scenario(state))
    if settings.control:
        lines.append(_control_api(state, listening))
    lines.append(Line("Try it", f"the README's curl examples work here with BASE={url}"))
    title = f"{PROGRAM} {__version__} is serving the 8here Open Links API (Ctrl-C stops it)"
    return title, lines


def serve_farewell(state: EmulatorState) -> str:
    """The line `serve` prints once it has stopped: what happened to the live links."""
    count = state.live.total()
    links = f"{count:,} live link{'' if count == 1 else 's'}"
    if state.start_scenario is not None:
        return f"{PROGRAM}: stopped; {links} were in memory, rebuilt by the scenario at each start"
    db_file = _db_file(state)
    if db_file:
        return f"{PROGRAM}: stopped; {links} kept in {db_file}"
    if count == 0:
        return f"{PROGRAM}: stopped; no live links were made in memory, so none are lost"
    return f"{PROGRAM}: stopped; {links} lost: they were in memory (--db FILE keeps them)"


def _db_file(state: EmulatorState) -> str | None:
    db_path = state.settings.live_db_path
    return os.path.abspath(db_path) if db_path else None


def _sandbox_app(state: EmulatorState) -> Line:
    sandbox = [app for app in state.registry.applications() if app.environment == "sandbox"]
    if not sandbox:
        return Line("Sandbox app", "none in the fixtures' applications.json", "warn")
    app = next((a for a in sandbox if a.client_id == DEMO_CLIENT_ID), sandbox[0])
    if _published(state, app):
        return Line("Sandbox app", f"{app.client_id} / {app.client_secret}")
    return Line("Sandbox app", f"{app.client_id} (its secret is in applications.json)")


def _published(state: EmulatorState, app: Application) -> bool:
    """Whether `app`'s secret is one the packaged fixtures publish (the README lists them). A
    secret from the user's own fixtures may be a real one: it stays out of logs."""
    if state.settings.fixtures_dir is None:
        return True
    packaged = Registry.from_file(default_fixtures_dir() / "applications.json")
    known = packaged.application(app.client_id)
    return known is not None and known.client_secret == app.client_secret


def _sample_set(state: EmulatorState) -> Line:
    settings = state.settings
    count = f"{len(state.sandbox):,}"
    if settings.sandbox_size is not None:
        return Line("Sample set", f"{count} generated links (--sandbox-size)")
    if settings.fixtures_dir is not None:
        return Line("Sample set", f"{count} links from", path=str(settings.fixtures_dir.resolve()))
    return Line("Sample set", f"{count} sample links (the packaged set)")


def _live_links(state: EmulatorState) -> Line:
    if state.start_scenario is not None:
        unused = f" ({state.settings.db_path} is not used)" if state.settings.db_path else ""
        return Line("Live links", f"the scenario's, in memory: every reset rebuilds them{unused}")
    db_file = _db_file(state)
    if db_file:
        return Line("Live links", "kept in", path=db_file)
    return Line("Live links", "in memory: lost on exit (--db FILE keeps them)", "warn")


def _scenario(state: EmulatorState) -> Line:
    scenario = state.start_scenario
    assert scenario is not None
    text = f"{scenario.name or 'unnamed'}: every reset returns to it"
    if scenario.latency is not None:
        scale = state.settings.latency_scale
        text += "; latency off (--latency-scale 0)" if scale == 0 else f"; latency x{scale:g}"
    return Line("Scenario", text)


def _control_api(state: EmulatorState, listening: Listening) -> Line:
    if state.settings.control_token:
        return Line("Control API", "needs the control token (Authorization: Bearer <token>)")
    who = "anyone on this machine" if listening.loopback_only else "anyone who can reach the port"
    return Line("Control API", f"open to {who}: no token (--control-token guards it)", "warn")


# -- proxy ----------------------------------------------------------------------------------------


def proxy_greeting(state: EmulatorState, listening: Listening) -> tuple[str, list[Line]]:
    """The title and lines `proxy` prints once it listens."""
    settings, checks = state.settings, state.checks
    url, target = listening.url, checks.target or "?"
    lines = [
        Line("API", f"{url}/api/… forwarded to", "link", path=target),
        Line("Answers", "the target's, unchanged, plus X-Emulator-Check: ok or differences=N"),
    ]
    if settings.control:
        asks = " (asks for the control token)" if settings.control_token else ""
        lines.append(
            Line("Differences", f"{url}/_emulator/checks, grouped; and in the inspector", "link")
        )
        lines.append(Line("Inspector", f"{url}/_emulator/ui{asks}", "link"))
    else:
        lines.append(
            Line("Differences", "control API off (--no-control): only X-Emulator-Check shows them")
        )
    lines.append(_compared_with(state))
    recording = checks.recording.to_json() if checks.recording is not None else None
    if recording is not None:
        where = os.path.abspath(recording["file"])
        lines.append(Line("Recording", "every exchange, secrets redacted, to", path=where))
    else:
        lines.append(
            Line("Recording", "off (--record FILE keeps every exchange, secrets redacted)")
        )
    lines.append(
        Line(
            "Pace", "nothing retried, nothing sent on the proxy's own: the target counts your calls"
        )
    )
    if settings.control:
        lines.append(_control_api(state, listening))
    title = f"{PROGRAM} {__version__} is proxying the 8here Open Links API (Ctrl-C stops it)"
    return title, lines


def _compared_with(state: EmulatorState) -> Line:
    sample = _sample_set(state).text.replace(" from", "")
    return Line("Compared", f"with the emulator on a throwaway copy: {sample}")


def proxy_farewell(state: EmulatorState) -> str:
    """The line `proxy` prints once it has stopped: what the checks found, what was recorded."""
    found = state.checks.to_json()
    exchanges, differing = found["exchanges"], found["withDifferences"]
    groups = len(found["groups"])
    text = (
        f"{PROGRAM}: stopped; {exchanges:,} exchange{'' if exchanges == 1 else 's'} checked, "
        f"{differing:,} with differences ({groups} group{'' if groups == 1 else 's'})"
    )
    recording = found["recording"]
    if recording is not None:
        text += f"; {recording['written']:,} recorded in {os.path.abspath(recording['file'])}"
        if recording["refused"]:
            text += f" ({recording['refused']:,} held a secret and were not written)"
    return text
