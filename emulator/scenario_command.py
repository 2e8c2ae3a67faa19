"""`8here-emulator scenario list` and `scenario show NAME`: the scenarios shipped in the package."""

from __future__ import annotations

import argparse
import sys
from typing import Any

DESCRIPTION = """\
The scenarios shipped with the emulator: states and networks a frontend must be tested against.
Load one with `serve --scenario NAME`, POST /_emulator/scenario, the inspector's menu, or
emulator.load_scenario(NAME) in a test; copy one (`scenario show NAME > my.yaml`) to start a file
of your own."""


def add_parser(commands: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "scenario", help="list or show the shipped scenarios", description=DESCRIPTION
    )
    actions = parser.add_subparsers(dest="action", title="actions", metavar="ACTION")
    listing = actions.add_parser(
        "list", help="name each shipped scenario with its one-line description"
    )
    listing.set_defaults(run=run_list)
    show = actions.add_parser("show", help="print a shipped scenario's file")
    show.add_argument("name", metavar="NAME", help="a name that `scenario list` gives")
    show.set_defaults(run=run_show)
    parser.set_defaults(run=lambda args: parser.print_help() or 2)
    return parser


def run_list(args: argparse.Namespace) -> int:
    from emulator.scenario_source import shipped_descriptions

    described = shipped_descriptions()
    width = max(map(len, described))
    for name, description in described.items():
        print(f"{name:<{width}}  {description}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from emulator.scenario_source import shipped_names, shipped_text

    if args.name not in shipped_names():
        print(
            f"8here-emulator: no shipped scenario {args.name!r} "
            f"(shipped: {', '.join(shipped_names())})",
            file=sys.stderr,
        )
        return 2
    sys.stdout.write(shipped_text(args.name))
    return 0
