"""`8here-emulator drift`: options in, report out, exit 0 (no drift), 1 (drift) or 2 (not run)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from emulator.cli_options import EnvOptions

if TYPE_CHECKING:
    from emulator.drift.pacing import Rate

DEMO_CLIENT_ID = "sb_demo_client"
DEMO_CLIENT_SECRET = "sbs_demo_secret"

EXIT_OK, EXIT_DRIFT, EXIT_NOT_RUN = 0, 1, 2
# emulator.drift.report.FORMATS: that module (and yaml, email) is imported only when drift runs,
# so `serve` does not pay for it at start.
FORMATS = ("markdown", "json", "junit")

DESCRIPTION = """\
Compare a target (the real 8here API, or anything that claims to be it) with the emulator and
the contract. Two layers, both paced under --rate-limit: conformance (schemathesis fuzzes the
target with the contract and all its checks) and differential (a fixed, ordered set of probes
sent to the target and to the emulator, compared by status, error code, headers, JSON shape and
meaning). The report has one row per cause (a missing header, a renamed field), with the probes
it was seen in. Exit 0: no drift; 1: drift found; 2: could not run.
"""

EPILOG = """\
Credentials: --client-id/--client-secret, else EIGHTHERE_CLIENT_ID/EIGHTHERE_CLIENT_SECRET,
else the emulator's demo sandbox application (sb_demo_client), which only an emulator knows.
Creates: sent to a sandbox target (they store nothing there); a live target gets them only with
--allow-writes. Nothing else that could change data is ever sent.
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `drift` command to the CLI's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "drift",
        help="compare a target API with the emulator and the contract",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    options = EnvOptions(parser, prefix="EMULATOR_DRIFT_")
    add_target_options(options)
    options.add(
        "--emulator-url",
        metavar="URL",
        shown="one started in-process",
        help="a running emulator to compare with",
    )
    options.add(
        "--emulator-control-token",
        metavar="TOKEN",
        secret=True,
        help="control token of the --emulator-url emulator, if it was started with one",
    )
    options.add(
        "--max-examples",
        type=int,
        default=10,
        metavar="N",
        help="fuzzed cases per operation and mode (positive, negative)",
    )
    options.add("--seed", type=int, metavar="N", shown="random", help="fuzzing seed")
    options.flag(
        "--allow-writes",
        help="send creates to a live target (they are real links, counted against the quota)",
    )
    options.repeatable(
        "--report",
        metavar="PATH",
        help="write the report here (repeatable; format from --format or the extension: "
        ".md, .json, .xml)",
    )
    options.add(
        "--format",
        choices=FORMATS,
        shown="from the extension, else markdown",
        help=f"report format: {', '.join(FORMATS)}",
    )
    options.add(
        "--known-differences",
        type=Path,
        metavar="PATH",
        help="YAML/JSON list of accepted differences: {location: <glob>, reason: <text>} for "
        "single locations, {group: <glob>, reason: <text>} for a report row (a cause)",
    )
    options.add(
        "--contract",
        type=Path,
        metavar="PATH",
        shown="the packaged one",
        help="the OpenAPI contract to check against",
    )
    options.flag("--no-conformance", help="skip the fuzzing layer")
    options.flag("--no-differential", help="skip the probe layer")
    options.add(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="seconds to wait per request"
    )
    options.flag("--quiet", help="no progress on stderr")
    return parser


def add_target_options(options: EnvOptions) -> None:
    """--base-url, --client-id, --client-secret and --rate-limit: the options of a command that
    talks to a target (read back by `target_access`)."""
    options.add(
        "--base-url", required=True, metavar="URL", help="the target, e.g. https://8here.in"
    )
    options.add(
        "--client-id",
        env="EIGHTHERE_CLIENT_ID",
        metavar="ID",
        shown="the emulator's demo sandbox app",
        help="the target application's client id",
    )
    options.add(
        "--client-secret",
        env="EIGHTHERE_CLIENT_SECRET",
        metavar="SECRET",
        secret=True,
        shown="the emulator's demo sandbox app",
        help="the target application's client secret",
    )
    options.add(
        "--rate-limit",
        default="15/m",
        metavar="RATE",
        help="the most requests the target takes, token exchanges included",
    )


def target_access(args: argparse.Namespace) -> tuple[str, str, Rate]:
    """The credentials and the pace (`--rate-limit`) of a command that talks to a target: the
    given client id and secret (the parser reads EIGHTHERE_CLIENT_ID/_SECRET), else the
    emulator's demo sandbox application; `ValueError` says what is wrong."""
    from emulator.drift.pacing import parse_rate

    client_id = args.client_id or None
    client_secret = args.client_secret or None
    if client_id is None and client_secret is None:
        client_id, client_secret = DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
    elif client_id is None or client_secret is None:
        missing = "client id" if client_id is None else "client secret"
        raise ValueError(
            f"no {missing}: pass --client-id and --client-secret, or set "
            "EIGHTHERE_CLIENT_ID and EIGHTHERE_CLIENT_SECRET"
        )
    try:
        return client_id, client_secret, parse_rate(args.rate_limit)
    except ValueError as exc:
        raise ValueError(f"--rate-limit: {exc}") from None


def setup_failure(exc: Exception, client_id: str) -> str:
    """Why a run could not start, with a hint when the demo credentials were used by default."""
    if "rejected the credentials" in str(exc) and client_id == DEMO_CLIENT_ID:
        return f"{exc} (no credentials were given, so the emulator's demo ones were used)"
    return str(exc)


def _not_run(stderr: TextIO, reason: str) -> int:
    stderr.write(f"8here-emulator drift: could not run: {reason}\n")
    return EXIT_NOT_RUN


def run(
    args: argparse.Namespace, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run the drift check described by parsed `args`; returns the exit code."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        client_id, client_secret, rate = target_access(args)
    except ValueError as exc:
        return _not_run(err, str(exc))
    if args.no_conformance and args.no_differential:
        return _not_run(err, "--no-conformance and --no-differential leave nothing to run")
    if args.max_examples < 1:
        return _not_run(err, "--max-examples must be at least 1")
    try:
        import requests  # noqa: F401
        import schemathesis  # noqa: F401
    except ImportError as exc:
        return _not_run(
            err,
            f"{exc.name} is missing; install the drift extra: pip install '8here-emulator[drift]'",
        )
    from emulator.drift.model import KnownDifferences
    from emulator.drift.report import format_for, headline, render
    from emulator.drift.runner import DriftOptions, run_drift
    from emulator.drift.transport import SetupError, TargetRateLimited
    from emulator.settings import contract_path

    try:
        known = (
            KnownDifferences.load(args.known_differences)
            if args.known_differences
            else KnownDifferences()
        )
    except (OSError, ValueError) as exc:
        return _not_run(err, f"--known-differences: {exc}")
    options = DriftOptions(
        base_url=args.base_url.rstrip("/"),
        client_id=client_id,
        client_secret=client_secret,
        contract_path=args.contract or contract_path(),
        emulator_url=args.emulator_url,
        emulator_control_token=args.emulator_control_token,
        max_examples=args.max_examples,
        seed=args.seed,
        rate=rate,
        allow_writes=args.allow_writes,
        conformance=not args.no_conformance,
        differential=not args.no_differential,
        known=known,
        timeout=args.timeout,
        progress=None if args.quiet else err,
    )
    try:
        result = run_drift(options)
    except SetupError as exc:
        return _not_run(err, setup_failure(exc, client_id))
    except TargetRateLimited as exc:
        return _not_run(err, str(exc))
    for path in args.report:
        fmt = args.format or format_for(path)
        try:
            Path(path).write_text(render(result, fmt), encoding="utf-8")
        except OSError as exc:
            return _not_run(err, f"cannot write the report {path} ({exc.strerror})")
    if args.report:
        out.write(render(result, "markdown"))
    else:
        out.write(render(result, args.format or "markdown"))
    code = result.exit_code()
    drift, accepted = len(result.drift), len(result.accepted)
    summary = {
        EXIT_OK: f"no drift ({accepted} accepted difference{'s' if accepted != 1 else ''})",
        EXIT_DRIFT: f"drift: {headline(result)} ({drift} difference{'s' if drift != 1 else ''})",
        EXIT_NOT_RUN: f"incomplete: {len(result.errors)} error(s), no drift found in what ran",
    }[code]
    written = f"; report: {', '.join(args.report)}" if args.report else ""
    err.write(f"8here-emulator drift: {summary}{written}\n")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m emulator.drift.command …`: the drift command on its own."""
    parser = argparse.ArgumentParser(prog="8here-emulator")
    commands = parser.add_subparsers(dest="command", required=True)
    add_parser(commands)
    return run(parser.parse_args(["drift", *(argv if argv is not None else sys.argv[1:])]))


if __name__ == "__main__":
    sys.exit(main())
