"""`8here-emulator proxy`: build the proxy from the parsed flags, serve it, greet, say goodbye."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urlsplit

from emulator.settings import Settings

PROGRAM = "8here-emulator"
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "::", ""}


def _is_itself(target: str, settings: Settings) -> bool:
    """Whether `target` is this very proxy (every request would come back to it, forever)."""
    parts = urlsplit(target)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = (parts.hostname or "").lower()
    same_host = host == settings.host.lower() or (
        host in _LOOPBACK and settings.host.lower() in _LOOPBACK
    )
    return settings.port != 0 and port == settings.port and same_host


def run(settings: Settings, args: argparse.Namespace, *, log_level: str, quiet: bool) -> int:
    from emulator.greeting import print_greeting, proxy_farewell, proxy_greeting, say
    from emulator.live_store import StoreError
    from emulator.proxy.app import create_proxy_app
    from emulator.proxy.forward import Target, TargetError
    from emulator.proxy.record import RecordError
    from emulator.registry import FixtureError
    from emulator.serving import Listening, serve_app

    try:
        target = Target.parse(args.target)
        if _is_itself(target.url, settings):
            raise TargetError(f"--target {target.shown} is this proxy itself")
        if not args.target_timeout > 0:
            raise TargetError("--target-timeout must be a positive number of seconds")
        app = create_proxy_app(
            settings,
            target,
            record=Path(args.record) if args.record else None,
            timeout=args.target_timeout,
        )
    except (TargetError, RecordError, StoreError, FixtureError, OSError) as exc:
        print(f"{PROGRAM} proxy: {exc}", file=sys.stderr)
        return 2
    state = app.state.emulator

    def listening(where: Listening) -> None:
        if not quiet:
            print_greeting(*proxy_greeting(state, where))

    def stopped() -> None:
        farewell = None if quiet else proxy_farewell(state)
        state.close()
        if farewell:
            say(farewell)

    try:
        serve_app(
            app,
            host=settings.host,
            port=settings.port,
            log_level=log_level,
            on_listening=listening,
            on_stopped=stopped,
            date_header=False,
        )
    finally:
        state.close()
    return 0
