"""EnvOptions: a flag, its variable and its help from one call; the command line wins."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from emulator.cli_options import EnvOptions

VARIABLES = ("TOOL_PORT", "TOOL_LEVEL", "TOOL_TOKEN", "OTHER_WHERE", "TOOL_OFF", "TOOL_OUT")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tool")
    options = EnvOptions(parser, prefix="TOOL_")
    options.add("--port", type=int, default=8080, help="port")
    options.add("--level", choices=("low", "high"), default="low", help="level")
    options.add("--token", secret=True, shown="none", help="a secret")
    options.add("--where", type=Path, env="OTHER_WHERE", help="a path")
    options.flag("--off", help="switch")
    options.repeatable("--out", help="outputs")
    options.add("--target", required=True, help="required")
    return parser


def _parse(monkeypatch: pytest.MonkeyPatch, argv: list[str], **env: str) -> argparse.Namespace:
    for name in (*VARIABLES, "TOOL_TARGET"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return _parser().parse_args(argv)


def test_defaults_variables_and_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    args = _parse(monkeypatch, ["--target", "t"])
    assert (args.port, args.level, args.token, args.where, args.off, args.out) == (
        8080,
        "low",
        None,
        None,
        False,
        [],
    )
    env = {
        "TOOL_PORT": "9",
        "TOOL_LEVEL": "high",
        "TOOL_TOKEN": "s",
        "OTHER_WHERE": "/x",
        "TOOL_OFF": "Yes",
        "TOOL_OUT": "a.md, b.json,",
        "TOOL_TARGET": "from-env",
    }
    args = _parse(monkeypatch, [], **env)
    assert (args.port, args.level, args.token, args.where, args.off, args.out, args.target) == (
        9,
        "high",
        "s",
        Path("/x"),
        True,
        ["a.md", "b.json"],
        "from-env",
    )
    args = _parse(monkeypatch, ["--port", "7", "--out", "c.xml", "--out", "d.md"], **env)
    assert (args.port, args.out) == (7, ["c.xml", "d.md"])


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    args = _parse(monkeypatch, ["--target", "t"], TOOL_PORT="", TOOL_OFF="", TOOL_TOKEN="")
    assert (args.port, args.off, args.token) == (8080, False, None)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TOOL_PORT": "x"}, "argument --port: TOOL_PORT='x' is not a whole number"),
        ({"TOOL_LEVEL": "mid"}, "argument --level: TOOL_LEVEL='mid' is not one of: low, high"),
        ({"TOOL_OFF": "perhaps"}, "argument --off: TOOL_OFF='perhaps' is not one of: 1, true"),
    ],
)
def test_a_bad_variable_is_a_usage_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    message: str,
) -> None:
    with pytest.raises(SystemExit) as exited:
        _parse(monkeypatch, ["--target", "t"], **env)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_a_bad_value_on_the_command_line_is_named_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        _parse(monkeypatch, ["--target", "t", "--port", "x"])
    assert "argument --port: 'x' is not a whole number" in capsys.readouterr().err


def test_help_names_default_and_variable_but_never_a_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("TOOL_TOKEN", "hunter2")
    monkeypatch.setenv("TOOL_PORT", "9090")
    help_text = _parser().format_help()
    assert "port (default: 8080; env TOOL_PORT, now '9090')" in help_text
    assert "a secret (default: none; env TOOL_TOKEN, now set)" in help_text
    assert "switch (default: off; env TOOL_OFF=1)" in help_text
    assert "a path (default: none; env OTHER_WHERE)" in help_text
    assert "required (default: none, required; env TOOL_TARGET)" in help_text
    assert "hunter2" not in help_text
    monkeypatch.setenv("TOOL_TOKEN", "not-a-number")
    parser = argparse.ArgumentParser()
    EnvOptions(parser, "TOOL_").add("--token", type=int, secret=True, help="a 100% secret")
    assert "a 100% secret" in parser.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args([])
    err = capsys.readouterr().err
    assert "TOOL_TOKEN is not a whole number" in err
    assert "not-a-number" not in err
