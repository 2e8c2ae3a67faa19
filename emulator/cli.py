"""Command line: `8here-emulator serve`, `proxy`, `drift`, `snapshot` and `scenario`. It only
gathers options.

Each command is a subparser whose `run` default is the function that runs it; each of its flags
is one `EnvOptions` call (flag, default, variable and help together).

A bad flag, `EMULATOR_*` value, fixture file or database, or an address it cannot listen on, stops
`serve` (or `proxy`) before it listens, with one line `8here-emulator: …` on stderr and exit
status 2.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from emulator.cli_options import Bounded, EnvOptions
from emulator.drift.command import add_parser as add_drift_parser
from emulator.drift.command import run as run_drift
from emulator.scenario_command import add_parser as add_scenario_parser
from emulator.settings import Settings
from emulator.snapshot.command import add_parser as add_snapshot_parser
from emulator.snapshot.command import run as run_snapshot

PACKAGE = "8here-emulator"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
EXIT_USAGE = 2
SEED_MAX = 2**64 - 1
TIMEOUT_MAX_SECONDS = 3600.0

DESCRIPTION = "A local, deterministic emulator of the 8here Open Links API."
EPILOG = f"Start with `{PACKAGE} serve`; `{PACKAGE} COMMAND --help` tells each command's flags."
SERVE_DESCRIPTION = """\
Serve the emulated API, its control API and the inspector page until Ctrl-C (or SIGTERM). Once it
listens, a few lines on stderr say where everything is; on stop, one line says what was kept.
Every flag can also be set with the environment variable named in its help."""
PROXY_DESCRIPTION = """\
Forward every request under /api/ to --target and return its answer unchanged, plus
X-Emulator-Check: `ok`, or `differences=N; entry=SEQ`. Each exchange is checked against the
contract and against what the emulator would have answered (on a throwaway copy of its state:
nothing is sent to the target on the proxy's own account, nothing is retried). The differences are
grouped at /_emulator/checks and in the inspector; --record FILE keeps every exchange. Every flag
can also be set with the environment variable named in its help."""


def package_version() -> str:
    """The installed distribution's version (emulator.__version__ when run from a bare source
    tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        from emulator import __version__

        return __version__


def _fail(message: str) -> NoReturn:
    one_line = " ".join(message.splitlines())
    print(f"{PACKAGE}: {one_line}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line and exit status 2 (the commands' parsers are of this class too)."""

    def error(self, message: str) -> NoReturn:
        _fail(f"{message} (see {self.prog} --help)")


PORT = Bounded(int, 1, 65535)
SANDBOX_SIZE = Bounded(int, 1, 1_000_000)
SEED = Bounded(int, 0, SEED_MAX)
TIMEOUT = Bounded(float, 0.001, TIMEOUT_MAX_SECONDS)
LATENCY_SCALE = Bounded(float, 0, 1000)


def control_token(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("is blank: give a token, or leave it out")
    if not all("!" <= char <= "~" for char in text):
        raise argparse.ArgumentTypeError("must be printable ASCII with no spaces")
    return text


def host_names(text: str) -> tuple[str, ...]:
    """Comma-separated names for --allowed-hosts."""
    from emulator.hosts import valid_host_pattern

    names = tuple(name.strip().lower() for name in text.split(",") if name.strip())
    for name in names:
        if not valid_host_pattern(name):
            raise argparse.ArgumentTypeError(
                f"holds {name!r}, not a host name, '*.' and a host name, an IP address or '*'"
            )
    return names


class _VersionAction(argparse.Action):
    """`--version`, looking the version up only when asked (importlib.metadata costs ~20 ms)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        print(f"{PACKAGE} {package_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PACKAGE, description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    add_serve_parser(commands)
    add_proxy_parser(commands)
    add_drift_parser(commands).set_defaults(run=run_drift)
    add_snapshot_parser(commands).set_defaults(run=run_snapshot)
    add_scenario_parser(commands)
    return parser


def add_serve_parser(commands: Any) -> argparse.ArgumentParser:
    serve = commands.add_parser(
        "serve",
        help="serve the API, the control API and the inspector",
        description=SERVE_DESCRIPTION,
    )
    add_server_options(EnvOptions(serve, prefix="EMULATOR_"))
    serve.set_defaults(run=run_serve)
    return serve


def add_proxy_parser(commands: Any) -> argparse.ArgumentParser:
    proxy = commands.add_parser(
        "proxy",
        help="forward the API to a real target, checking every exchange",
        description=PROXY_DESCRIPTION,
    )
    options = EnvOptions(proxy, prefix="EMULATOR_")
    options.add(
        "--target",
        required=True,
        metavar="URL",
        help="base URL to forward /api/ to, e.g. https://8here.in",
    )
    options.add(
        "--record",
        metavar="FILE",
        shown="off",
        help="append every exchange to this JSON Lines file, secrets redacted",
    )
    options.add(
        "--target-timeout",
        type=TIMEOUT,
        default=30.0,
        metavar="SECONDS",
        help="how long to wait for the target before answering 504 upstream_timeout",
    )
    add_server_options(options)
    proxy.set_defaults(run=run_proxy)
    return proxy


def add_server_options(options: EnvOptions) -> None:
    """The flags `serve` and `proxy` share: where to listen, what the emulator holds (under
    `proxy`, what its shadow answers are computed on), the control API, CORS and logging."""
    options.add("--host", default="127.0.0.1", metavar="HOST", help="address to listen on")
    options.add(
        "--port", type=PORT, default=8080, metavar="PORT", help="port to listen on (1-65535)"
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
        type=SANDBOX_SIZE,
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
    options.flag(
        "--no-request-faults",
        help="ignore the X-Emulator-Fault header of API requests (--no-control implies it)",
    )
    options.add(
        "--control-token",
        type=control_token,
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
    options.repeatable(
        "--allowed-hosts",
        type=host_names,
        metavar="NAMES",
        help="Host names the control API also answers for, besides IP addresses, localhost and "
        "*.localhost: a compose service name such as 'emulator' ('*.example.com' for subdomains)",
    )
    options.add(
        "--seed",
        type=SEED,
        metavar="N",
        shown="a random secret, kept in the --db file",
        help="derive live link ids and generated slugs from N, the same on every run",
    )
    options.repeatable(
        "--scenario",
        metavar="NAME|FILE",
        help="start from this scenario, and return to it on every reset: a shipped name "
        "(`8here-emulator scenario list`) or a YAML/JSON file; several are merged in order. Its "
        "live links are kept in memory: a --db file is left untouched",
    )
    options.add(
        "--latency-scale",
        type=LATENCY_SCALE,
        default=1.0,
        metavar="X",
        help="multiply every delay of a scenario's latency profile by X (0 to 1000; 0: none)",
    )
    options.add(
        "--request-timeout",
        type=TIMEOUT,
        default=Settings.request_timeout_seconds,
        metavar="SECONDS",
        help="close a connection whose request has not arrived in full this long after it began",
    )
    options.add(
        "--log-level",
        default="info",
        choices=LOG_LEVELS,
        metavar="LEVEL",
        help=f"uvicorn's log level: {', '.join(LOG_LEVELS)}",
    )
    options.flag(
        "--access-log",
        help="log a line per request (uvicorn's access log on stdout, tokens masked; with "
        "--log-level info or lower); it costs 30-60% of the request rate, and the inspector and "
        "the journal show every API request without it",
    )
    options.flag("--quiet", help="print no greeting and no farewell (uvicorn's log: --log-level)")


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        host=args.host,
        port=args.port,
        db_path=args.db,
        fixtures_dir=Path(args.fixtures) if args.fixtures else None,
        sandbox_size=args.sandbox_size,
        short_base=args.short_base,
        control=not args.no_control,
        request_faults=not args.no_request_faults,
        control_token=args.control_token,
        cors_origins=tuple(o.strip() for o in args.cors_origins.split(",") if o.strip()),
        allowed_hosts=tuple(name for names in args.allowed_hosts for name in names),
        seed=args.seed,
        request_timeout_seconds=args.request_timeout,
        scenarios=tuple(args.scenario),
        latency_scale=args.latency_scale,
        warm_up=True,
    )


def run_serve(args: argparse.Namespace) -> int:
    return serve(settings_from(args), args.log_level, quiet=args.quiet, access_log=args.access_log)


def _check_can_listen(host: str, port_number: int) -> None:
    """Bind and release the address uvicorn will bind, so that a bad host or a port in use is a
    one-line error here rather than uvicorn's log lines."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port_number, type=socket.SOCK_STREAM
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port_number}: {exc.strerror or exc}")


def serve(
    settings: Settings, log_level: str = "info", *, quiet: bool = False, access_log: bool = False
) -> int:
    from emulator.app import create_app
    from emulator.greeting import serve_farewell, serve_greeting

    _check_can_listen(settings.host, settings.port)
    try:
        app = create_app(settings)
    except Exception as exc:  # a fixture file, a database, or anything else: one line, no trace
        _fail(str(exc) or type(exc).__name__)
    return serve_until_stopped(
        app,
        log_level,
        quiet=quiet,
        access_log=access_log,
        greeting=serve_greeting,
        farewell=serve_farewell,
    )


def serve_until_stopped(
    app: Any,
    log_level: str,
    *,
    quiet: bool,
    access_log: bool = False,
    greeting: Callable[[Any, Any], tuple[str, list[Any]]],
    farewell: Callable[[Any], str],
    date_header: bool = True,
) -> int:
    """Serve `app` (`serve`'s or `proxy`'s) with the emulator's protocol, greeting once it listens
    and saying farewell once it stops (unless `quiet`); uvicorn's access log, masked, only with
    `access_log`."""
    import logging

    from emulator.greeting import print_greeting, say
    from emulator.masking import AccessLogMasking
    from emulator.protocol import http_protocol
    from emulator.serving import Listening, serve_app

    state = app.state.emulator
    settings = state.settings
    if access_log:
        logging.getLogger("uvicorn.access").addFilter(AccessLogMasking(state.known_secrets))

    def listening(where: Listening) -> None:
        if not quiet:
            print_greeting(*greeting(state, where))

    def stopped() -> None:
        said = None if quiet else farewell(state)
        state.close()
        if said:
            say(said)

    try:
        serve_app(
            app,
            host=settings.host,
            port=settings.port,
            log_level=log_level,
            access_log=access_log,
            on_listening=listening,
            on_stopped=stopped,
            http=http_protocol(settings),
            date_header=date_header,
        )
    finally:
        state.close()
    return 0


def run_proxy(args: argparse.Namespace) -> int:
    from emulator.proxy.command import run

    return run(settings_from(args), args, log_level=args.log_level, quiet=args.quiet)


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
