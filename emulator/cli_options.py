"""Command-line options that also read an environment variable, and say both in `--help`.

    options = EnvOptions(parser, prefix="EMULATOR_")
    options.add("--port", type=int, default=8080, metavar="PORT", help="port to listen on")

adds `--port`, whose value comes from the command line, else from `EMULATOR_PORT`, else 8080, and
whose help line ends "(default: 8080; env EMULATOR_PORT)". An empty variable counts as unset. A
bad value in a variable is a usage error that names the variable (exit 2), like a bad flag.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
_KINDS: dict[Any, str] = {int: "a whole number", float: "a number"}


class EnvValue(str):
    """A default read from the environment: a string that remembers its variable, so that
    argparse (which converts string defaults with the option's type) can name it in an error."""

    variable: str
    secret: bool

    def __new__(cls, value: str, variable: str, secret: bool = False) -> EnvValue:
        text = super().__new__(cls, value)
        text.variable = variable
        text.secret = secret
        return text


class Bounded:
    """A `type=` for a whole number (`int`) or a number (`float`) from `low` to `high`."""

    def __init__(self, number: type[int] | type[float], low: float, high: float) -> None:
        low, high = number(low), number(high)
        self.number = number
        self.kind = _KINDS[number]
        self.low, self.high = low, high

    def __call__(self, text: str) -> float:
        value = self.number(text)
        if not (math.isfinite(value) and self.low <= value <= self.high):
            raise argparse.ArgumentTypeError(f"must be from {self.low} to {self.high}")
        return value


def _source(text: str, secret: bool = False) -> str:
    if isinstance(text, EnvValue):
        return text.variable if text.secret else f"{text.variable}={str(text)!r}"
    return "the value given" if secret else repr(text)


def _converter(
    convert: Callable[[str], Any], choices: Sequence[Any] | None = None, secret: bool = False
) -> Callable[[str], Any]:
    """`convert` with errors that say where the bad value came from, and choices checked (argparse
    does not check a string default against them)."""
    kind = getattr(convert, "kind", None) or _KINDS.get(
        convert, f"a valid {getattr(convert, '__name__', 'value')}"
    )

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"{_source(text, secret)}: {exc}") from None
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{_source(text, secret)} is not {kind}") from None
        if choices is not None and value not in choices:
            allowed = ", ".join(str(choice) for choice in choices)
            raise argparse.ArgumentTypeError(f"{_source(text)} is not one of: {allowed}")
        return value

    return parse


def _switch(text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(
        f"{_source(text)} is not one of: {', '.join(TRUE_WORDS + FALSE_WORDS)}"
    )


class _Switch(argparse.Action):
    """`store_true` whose default may be a variable's text, converted by argparse like any other."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, type=_switch, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        setattr(namespace, self.dest, True)


class _Append(argparse.Action):
    """Repeatable: the command line's values replace the variable's (comma-separated) ones."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        current = getattr(namespace, self.dest, None)
        items = [] if current is self.default or current is None else list(current)
        setattr(namespace, self.dest, [*items, values])


class EnvOptions:
    """Adds options to `parser`, each with its variable: `prefix` + the flag's name in capitals
    (`--sandbox-size` → `EMULATOR_SANDBOX_SIZE`), unless `env=` names another."""

    def __init__(self, parser: argparse.ArgumentParser, prefix: str) -> None:
        self.parser = parser
        self.prefix = prefix

    def variable(self, flag: str) -> str:
        return self.prefix + flag.lstrip("-").upper().replace("-", "_")

    def add(
        self,
        flag: str,
        *,
        help: str,
        default: Any = None,
        shown: str | None = None,
        type: Callable[[str], Any] = str,
        choices: Sequence[Any] | None = None,
        metavar: str | None = None,
        required: bool = False,
        secret: bool = False,
        env: str | None = None,
    ) -> argparse.Action:
        """An option with a value. `shown` is how the default reads in the help (else `default`);
        `secret` keeps the variable's value out of the help and of error messages."""
        variable = env or self.variable(flag)
        raw = os.environ.get(variable) or None
        return self.parser.add_argument(
            flag,
            default=default if raw is None else EnvValue(raw, variable, secret),
            type=_converter(type, choices, secret),
            choices=choices,
            metavar=metavar,
            required=required and raw is None,
            help=_help(
                help, "none, required" if required else _shown(default, shown), variable, secret
            ),
        )

    def flag(self, flag: str, *, help: str, env: str | None = None) -> argparse.Action:
        """An on/off switch: given, or its variable set to 1/true/yes/on."""
        variable = env or self.variable(flag)
        raw = os.environ.get(variable) or None
        return self.parser.add_argument(
            flag,
            action=_Switch,
            default=False if raw is None else EnvValue(raw, variable),
            help=_help(help, "off", variable, secret=False, on=True),
        )

    def repeatable(
        self,
        flag: str,
        *,
        help: str,
        type: Callable[[str], Any] = str,
        metavar: str | None = None,
        env: str | None = None,
    ) -> argparse.Action:
        """Given any number of times; its variable holds comma-separated values."""
        variable = env or self.variable(flag)
        convert = _converter(type)
        try:
            default = [convert(EnvValue(item, variable)) for item in _items(variable)]
        except argparse.ArgumentTypeError as exc:
            self.parser.error(f"argument {flag}: {exc}")
        return self.parser.add_argument(
            flag,
            action=_Append,
            default=default,
            type=convert,
            metavar=metavar,
            help=_help(help, "none", variable, secret=False, many=True),
        )


def _items(variable: str) -> Iterable[str]:
    return (item.strip() for item in os.environ.get(variable, "").split(",") if item.strip())


def _shown(default: Any, shown: str | None) -> str:
    if shown is not None:
        return shown
    return "none" if default is None else str(default)


def _help(
    text: str, default: str, variable: str, secret: bool, on: bool = False, many: bool = False
) -> str:
    env = f"env {variable}" + ("=1" if on else "") + (", values joined by commas" if many else "")
    value = os.environ.get(variable)
    if value:
        env += ", now set" if secret else f", now {value!r}"
    # argparse formats help with %: a literal one must be doubled.
    return f"{text} (default: {default}; {env})".replace("%", "%%")
