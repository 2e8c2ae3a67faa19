"""`8here-emulator scenario list` and `show`, and the shipped busy-link file's generator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from emulator.cli import main
from emulator.scenario_source import shipped_descriptions, shipped_text

ROOT = Path(__file__).resolve().parent.parent


def test_list_names_every_shipped_scenario_with_its_description(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["scenario", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    described = shipped_descriptions()
    assert [line.split()[0] for line in lines] == list(described)
    for line, (name, description) in zip(lines, described.items(), strict=True):
        assert line.startswith(name) and line.endswith(description)
    assert {"quota-nearly-full", "api-access-disabled", "rate-limited"} <= set(described)
    assert {"busy-link", "slow-network", "flaky"} <= set(described)


def test_show_prints_the_file_and_refuses_an_unknown_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["scenario", "show", "flaky"]) == 0
    assert capsys.readouterr().out == shipped_text("flaky")
    assert main(["scenario", "show", "nope"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("8here-emulator: no shipped scenario 'nope' (shipped: ")
    assert error.count("\n") == 1


def test_the_command_alone_prints_its_help_and_exits_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "scenario"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "list" in done.stdout and "show" in done.stdout


def test_the_busy_link_generator_reproduces_the_shipped_file() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "fixtures" / "generate_busy_link.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_wheel_ships_the_scenarios_and_the_schema() -> None:
    import fnmatch
    import tomllib

    with (ROOT / "pyproject.toml").open("rb") as file:
        patterns = tomllib.load(file)["tool"]["setuptools"]["package-data"]["emulator"]
    shipped = [f"scenarios/{p.name}" for p in (ROOT / "emulator" / "scenarios").iterdir()]
    for name in [*shipped, "scenario.schema.json"]:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
