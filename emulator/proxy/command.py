"""`8here-emulator proxy`: build the proxy from the parsed flags, serve it, greet, say goodbye.

Like `serve`, a bad target, record file, fixture file or database, or an address it cannot listen
on, stops it before it listens, with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from urllib.parse import urlsplit

from emulator.settings import Settings

_LOOPBACK = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "::", ""}


def is_itself(target: str, settings: Settings) -> bool:
    """Whether `target` is this very proxy (every request would come back to it, for ever)."""
    parts = urlsplit(target)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host, listening = (parts.hostname or "").lower(), settings.host.lower()
    same_host = host == listening or (host in _LOOPBACK and listening in _LOOPBACK)
    return port == settings.port and same_host


def run(settings: Settings, args: argparse.Namespace, *, log_level: str, quiet: bool) -> int:
    from emulator.cli import _check_can_listen, _fail, serve_until_stopped
    from emulator.greeting import proxy_farewell, proxy_greeting
    from emulator.proxy.app import create_proxy_app
    from emulator.proxy.forward import Target, TargetError

    try:
        target = Target.parse(args.target)
    except TargetError as exc:
        _fail(str(exc))
    if is_itself(target.url, settings):
        _fail(f"--target {target.shown} is this proxy itself: every request would come back")
    _check_can_listen(settings.host, settings.port)
    try:
        app = create_proxy_app(
            settings,
            target,
            record=Path(args.record) if args.record else None,
            timeout=args.target_timeout,
        )
    except Exception as exc:  # a record file, fixtures, a database: one line, no trace
        _fail(str(exc) or type(exc).__name__)
    # No Date of uvicorn's own: the target's answer keeps its own.
    return serve_until_stopped(
        app,
        log_level,
        quiet=quiet,
        access_log=args.access_log,
        greeting=proxy_greeting,
        farewell=proxy_farewell,
        date_header=False,
    )
