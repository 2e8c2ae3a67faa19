"""`8here-emulator snapshot`: options in, a fixture set out; exit 0 (done), 1 (the target's shape
is not the contract's) or 2 (not done: `--resume` goes on from where it stopped)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from emulator.snapshot.run import Snapshot

DESCRIPTION = """\
Copy the target's sample data (the real sandbox's, with a sandbox application's credentials)
into a fixture folder that `8here-emulator serve --fixtures DIR` serves: every list page at
limit=100 and every link's detail, paced under --rate-limit, then DIR/sandbox_links.json,
DIR/applications.json (the default applications, unless DIR has one) and DIR/manifest.json.
The plan and its duration are printed first. A stopped run keeps what it saved in
DIR/.snapshot/; --resume goes on from there. Exit 0: done; 1: the target's answers do not have
the contract's shape (nothing written); 2: not done (the message says why).
"""

EPILOG = """\
Credentials: --client-id/--client-secret, else EIGHTHERE_CLIENT_ID/EIGHTHERE_CLIENT_SECRET,
else the emulator's demo sandbox application (sb_demo_client), which only an emulator knows.
Only token exchanges and reads are sent.
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `snapshot` command to the CLI's subparsers."""
    from emulator.cli_options import EnvOptions
    from emulator.drift.command import add_target_options

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "snapshot",
        help="copy a target's sample links into a fixture folder that serve --fixtures serves",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    options = EnvOptions(parser, prefix="EMULATOR_SNAPSHOT_")
    add_target_options(options)
    options.add(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="the fixture folder to write (made if missing)",
    )
    options.flag(
        "--resume",
        help="go on with the unfinished snapshot in DIR, fetching no saved link again "
        "(without it, an unfinished snapshot is refused)",
    )
    options.flag(
        "--dry-run",
        help="print the plan (requests and duration) after the token exchange and the first "
        "page, and write nothing",
    )
    options.add(
        "--max-requests",
        type=int,
        metavar="N",
        shown="no limit",
        help="stop after N requests, resumable with --resume",
    )
    options.add(
        "--contract",
        type=Path,
        metavar="PATH",
        shown="the packaged one",
        help="the OpenAPI contract the answers must fit",
    )
    options.add(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="seconds to wait per request"
    )
    options.flag("--quiet", help="no progress on stderr")
    return parser


def _not_done(stderr: TextIO, reason: str) -> int:
    stderr.write(f"8here-emulator snapshot: {reason}\n")
    return 2


def run(
    args: argparse.Namespace, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run the snapshot described by parsed `args`; returns the exit code."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    from emulator.drift.command import target_access

    try:
        client_id, client_secret, rate = target_access(args)
    except ValueError as exc:
        return _not_done(err, str(exc))
    base_url = args.base_url.rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return _not_done(err, f"--base-url {args.base_url!r} is not an http(s) URL")
    if args.max_requests is not None and args.max_requests < 1:
        return _not_done(err, "--max-requests must be at least 1")
    if args.out.exists() and not args.out.is_dir():
        return _not_done(err, f"--out {args.out} is not a folder")
    try:
        import requests  # noqa: F401
    except ImportError:
        return _not_done(
            err, "requests is missing; install the drift extra: pip install '8here-emulator[drift]'"
        )
    from emulator.settings import contract_path
    from emulator.snapshot.run import Snapshot, SnapshotOptions

    options = SnapshotOptions(
        base_url=base_url,
        out=args.out,
        client_id=client_id,
        client_secret=client_secret,
        rate=rate,
        contract_path=args.contract or contract_path(),
        resume=args.resume,
        dry_run=args.dry_run,
        max_requests=args.max_requests,
        timeout=args.timeout,
        stdout=out,
        progress=None if args.quiet else err,
    )
    try:
        snapshot = Snapshot(options)
    except (OSError, ValueError) as exc:
        return _not_done(err, f"cannot read the contract: {exc}")
    try:
        return _run(snapshot, args, err)
    finally:
        snapshot.close()


def _run(snapshot: Snapshot, args: argparse.Namespace, err: TextIO) -> int:
    from emulator.drift.command import setup_failure
    from emulator.drift.transport import (
        RequestBudgetSpent,
        SetupError,
        TargetRateLimited,
        UnsafeRequest,
    )
    from emulator.snapshot.run import EXIT_INCOMPLETE, EXIT_SHAPE, ShapeMismatch, Stopped
    from emulator.snapshot.workdir import StateError

    try:
        return snapshot.run()
    except ShapeMismatch as exc:
        err.write(f"8here-emulator snapshot: {exc}\n")
        return EXIT_SHAPE
    except StateError as exc:
        return _not_done(err, str(exc))
    except RequestBudgetSpent:
        reason = f"stopped after {args.max_requests} requests (--max-requests)"
    except SetupError as exc:
        reason = setup_failure(exc, snapshot.options.client_id)
    except (Stopped, TargetRateLimited, UnsafeRequest) as exc:
        reason = f"stopped: {exc}"
    except KeyboardInterrupt:
        _not_done(err, f"interrupted; {snapshot.stop_note()}")
        return 130
    except OSError as exc:
        return _not_done(err, f"cannot write in {args.out}: {exc}")
    _not_done(err, f"{reason}; {snapshot.stop_note()}")
    return EXIT_INCOMPLETE
