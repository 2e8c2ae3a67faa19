"""Command line: `8here-emulator serve` and `8here-emulator drift`. It only gathers options."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from emulator.drift.command import add_parser as add_drift_parser
from emulator.settings import Settings


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"EMULATOR_{name}", default)


def _env_flag(name: str) -> bool:
    return (_env(name) or "").lower() in ("1", "true", "yes", "on")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="8here-emulator",
        description="A local, deterministic emulator of the 8here Open Links API.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the API (every flag also as EMULATOR_<FLAG>)")
    serve.add_argument("--host", default=_env("HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(_env("PORT", "8080") or 8080))
    serve.add_argument("--db", default=_env("DB"), help="SQLite file for durable live links")
    serve.add_argument("--fixtures", default=_env("FIXTURES"), help="folder of fixtures files")
    serve.add_argument(
        "--sandbox-size",
        type=int,
        default=int(_env("SANDBOX_SIZE") or 0) or None,
        help="serve a generated sample set of N links instead of the committed one",
    )
    serve.add_argument(
        "--short-base",
        default=_env("SHORT_BASE", "https://8here.in"),
        help="base of shortUrl (point it at this emulator to resolve short links locally)",
    )
    serve.add_argument("--no-control", action="store_true", default=_env_flag("NO_CONTROL"))
    serve.add_argument("--control-token", default=_env("CONTROL_TOKEN"))
    serve.add_argument(
        "--cors-origins",
        default=_env("CORS_ORIGINS", "*"),
        help="comma-separated allowed origins (default: any)",
    )
    serve.add_argument("--log-level", default=_env("LOG_LEVEL", "info"))
    add_drift_parser(commands)
    return parser


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


def serve(settings: Settings, log_level: str = "info") -> int:
    import uvicorn

    from emulator.app import create_app
    from emulator.live_store import StoreError
    from emulator.registry import FixtureError

    try:
        app = create_app(settings)
    except (StoreError, FixtureError, OSError) as exc:
        print(f"8here-emulator: {exc}", file=sys.stderr)
        return 2
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level=log_level,
            server_header=False,
            timeout_graceful_shutdown=5,
        )
    finally:
        app.state.emulator.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(settings_from(args), args.log_level)
    if args.command == "drift":
        from emulator.drift.command import run as run_drift

        return run_drift(args)
    raise SystemExit(f"unknown command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
