"""Command line: `8here-emulator serve` and `8here-emulator drift`. It only gathers options.

Each command is a subparser whose `run` default is the function that runs it; each of its flags
is one `EnvOptions` call (flag, default, variable and help together).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from emulator.cli_options import EnvOptions
from emulator.drift.command import add_parser as add_drift_parser
from emulator.drift.command import run as run_drift
from emulator.settings import Settings

PACKAGE = "8here-emulator"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")

DESCRIPTION = "A local, deterministic emulator of the 8here Open Links API."
EPILOG = f"Start with `{PACKAGE} serve`; `{PACKAGE} COMMAND --help` tells each command's flags."
SERVE_DESCRIPTION = """\
Serve the emulated API, its control API and the inspector page until Ctrl-C (or SIGTERM). Once it
listens, a few lines on stderr say where everything is; on stop, one line says what was kept.
Every flag can also be set with the environment variable named in its help."""


def package_version() -> str:
    """The installed distribution's version (emulator.__version__ when run from a bare source
    tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        from emulator import __version__

        return __version__


class _VersionAction(argparse.Action):
    """`--version`, looking the version up only when asked (importlib.metadata costs ~20 ms)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        print(f"{PACKAGE} {package_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PACKAGE, description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    add_serve_parser(commands)
    add_drift_parser(commands).set_defaults(run=run_drift)
    return parser


def add_serve_parser(commands: Any) -> argparse.ArgumentParser:
    serve = commands.add_parser(
        "serve",
        help="serve the API, the control API and the inspector",
        description=SERVE_DESCRIPTION,
    )
    options = EnvOptions(serve, prefix="EMULATOR_")
    options.add("--host", default="127.0.0.1", metavar="HOST", help="address to listen on")
    options.add(
        "--port", type=int, default=8080, metavar="PORT", help="port to listen on; 0: a free one"
    )
    options.add(
        "--db",
        metavar="FILE",
        shown="in memory, lost on exit",
        help="SQLite file that keeps live links across restarts",
    )
    options.add(
        "--fixtures",
        metavar="DIR",
        shown="the packaged ones",
        help="folder with applications.json and sandbox_links.json to serve",
    )
    options.add(
        "--sandbox-size",
        type=int,
        metavar="N",
        shown="the packaged 240 links",
        help="serve a generated, deterministic sample set of N links (1 to 1000000)",
    )
    options.add(
        "--short-base",
        default="https://8here.in",
        metavar="URL",
        help="base of shortUrl (point it at this emulator to resolve short links here)",
    )
    options.flag(
        "--no-control", help="switch the control API and the inspector off (404); health stays"
    )
    options.add(
        "--control-token",
        metavar="TOKEN",
        secret=True,
        shown="none, the control API is open",
        help="require `Authorization: Bearer TOKEN` on the control API",
    )
    options.add(
        "--cors-origins",
        default="*",
        metavar="ORIGINS",
        shown="*, any origin",
        help="comma-separated origins the public API allows (CORS)",
    )
    options.add(
        "--log-level",
        default="info",
        choices=LOG_LEVELS,
        metavar="LEVEL",
        help=f"uvicorn's log level: {', '.join(LOG_LEVELS)}",
    )
    options.flag("--quiet", help="print no greeting and no farewell (uvicorn's log: --log-level)")
    serve.set_defaults(run=run_serve)
    return serve


def settings_from(args: argparse.Namespace) -> Settings:
    if args.sandbox_size is not None and not 1 <= args.sandbox_size <= 1_000_000:
        raise SystemExit("--sandbox-size must be from 1 to 1000000")
    return Settings(
        host=args.host,
        port=args.port,
        db_path=args.db,
        fixtures_dir=Path(args.fixtures) if args.fixtures else None,
        sandbox_size=args.sandbox_size,
        short_base=args.short_base,
        control=not args.no_control,
        control_token=args.control_token or None,
        cors_origins=tuple(o.strip() for o in args.cors_origins.split(",") if o.strip()),
    )


def run_serve(args: argparse.Namespace) -> int:
    return serve(settings_from(args), args.log_level, quiet=args.quiet)


def serve(settings: Settings, log_level: str = "info", *, quiet: bool = False) -> int:
    from emulator.app import create_app
    from emulator.greeting import print_greeting, say, serve_farewell, serve_greeting
    from emulator.live_store import StoreError
    from emulator.registry import FixtureError
    from emulator.serving import Listening, serve_app

    try:
        app = create_app(settings)
    except (StoreError, FixtureError, OSError) as exc:
        print(f"{PACKAGE}: {exc}", file=sys.stderr)
        return 2
    state = app.state.emulator

    def listening(where: Listening) -> None:
        if not quiet:
            print_greeting(*serve_greeting(state, where))

    def stopped() -> None:
        farewell = None if quiet else serve_farewell(state)
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
        )
    finally:
        state.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 2
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
