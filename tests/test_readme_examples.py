"""The README's examples run as written against a served emulator: the curl calls (the seed's
four), and the schemathesis commands for a sandbox and a live application."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from test_qr import read_opencv

from emulator.settings import contract_path
from emulator.testing import EmulatorServer

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_curl_block() -> str:
    section = README.read_text(encoding="utf-8").split("## The real API's examples", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match, "the README's examples section has no sh block"
    return match.group(1)


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer() as served:
        yield served


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readme_examples_answer_with_decodable_qr_codes(server: EmulatorServer) -> None:
    script = readme_curl_block().replace("BASE=http://127.0.0.1:8080", f"BASE={server.url}")
    # Each answer on a line of its own, and any HTTP error fails the script.
    prelude = "set -euo pipefail\ncurl() { command curl -sS --fail-with-body -w '\\n' \"$@\"; }\n"
    done = subprocess.run(
        ["bash", "-c", prelude + script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    listed, created, detail = (json.loads(line) for line in done.stdout.splitlines() if line)

    assert len(listed["data"]) >= 3
    assert all(item["hasVisits"] for item in listed["data"])
    assert created["persisted"] is False and created["slug"] == "launch-page"
    assert detail["analytics"]["totalClicks"] == detail["clicks"]
    for link in (*listed["data"][:3], created, detail):
        assert read_opencv(base64.b64decode(link["qrCodeBase64"])) == link["shortUrl"]


# -- fuzzing with plain schemathesis --------------------------------------------------------------

# The README's schemathesis commands pace requests under the real limits (15/m in sandbox); the
# emulator here gives its applications a limit they never reach, so the test paces them no more.
FAST_RATE = "--rate-limit 1000000/m"
FUZZ_APPS = {
    "sandbox": ("readme_fuzz_sandbox", "readme_fuzz_sandbox_secret", "sandbox"),
    "live": ("readme_fuzz_live", "readme_fuzz_live_secret", "ws_readme_fuzz"),
}


def readme_schemathesis_block() -> tuple[str, dict[str, str]]:
    """The README's token prelude, and its schemathesis command for each environment."""
    section = README.read_text(encoding="utf-8").split("### Fuzzing with plain schemathesis", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match, "the README's schemathesis section has no sh block"
    block = match.group(1).replace("\\\n", " ")  # one line per command
    lines = block.splitlines()
    runs = [line for line in lines if line.startswith("schemathesis run ")]
    prelude = [line for line in lines if line not in runs and not line.startswith("#")]
    comments = [line for line in lines if line.startswith("# A ")]
    assert len(runs) == 2 and len(comments) == 2
    commands = {}
    for comment, command in zip(comments, runs, strict=True):
        environment = "sandbox" if "sandbox" in comment else "live"
        commands[environment] = command
    return "\n".join(prelude), commands


def _fuzz(server: EmulatorServer, environment: str, command: str, cwd: Path) -> str:
    client_id, secret, workspace = FUZZ_APPS[environment]
    body: dict[str, object] = {
        "clientId": client_id,
        "clientSecret": secret,
        "environment": environment,
        "rateLimitPerMinute": 1_000_000,
    }
    if environment == "live":  # sandbox applications share the sandbox workspace
        body |= {"workspaceId": workspace, "linkQuota": 1_000_000}
    registered = requests.post(f"{server.url}/_emulator/applications", json=body, timeout=10)
    assert registered.status_code in (201, 409), registered.text
    prelude, _ = readme_schemathesis_block()
    script = prelude.replace("BASE=https://8here.in", f"BASE={server.url}") + "\n" + command
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "EIGHTHERE_CLIENT_ID": client_id,
        "EIGHTHERE_CLIENT_SECRET": secret,
    }
    done = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,
        env=env,
    )
    return f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"


def _as_in_test(command: str) -> str:
    """The README's command with the test's pace, the contract by its full path (the test runs
    in a scratch directory) and a fixed seed; every check option as written."""
    assert "--rate-limit 15/m" in command or "--rate-limit 60/m" in command
    command = re.sub(r"--rate-limit \S+", FAST_RATE, command)
    command = command.replace("contract/openapi.yaml", str(contract_path()))
    return command + " --seed 1 --no-color"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("environment", ["sandbox", "live"])
def test_the_readme_schemathesis_commands_pass_against_the_emulator(
    server: EmulatorServer, environment: str, tmp_path: Path
) -> None:
    _, commands = readme_schemathesis_block()
    command = commands[environment]
    if environment == "sandbox":
        assert "--exclude-checks ensure_resource_availability" in command
    else:
        assert "--checks all" in command and "--exclude-checks" not in command
    output = _fuzz(server, environment, _as_in_test(command), tmp_path)
    assert output.startswith("exit 0\n"), output
    assert "✅ Stateful" in output
    assert "No issues found" in output


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_a_sandbox_fails_only_ensure_resource_availability_without_the_exclusion(
    server: EmulatorServer, tmp_path: Path
) -> None:
    """Why the README leaves that check out: a sandbox create is never stored."""
    _, commands = readme_schemathesis_block()
    command = commands["sandbox"].replace(" --exclude-checks ensure_resource_availability", "")
    output = _fuzz(server, "sandbox", _as_in_test(command) + " --phases stateful", tmp_path)
    assert output.startswith("exit 1\n"), output
    assert "ST302 Created resource not found" in output
    failures = output.split("Failures:", 1)[1].split("Test cases:", 1)[0]
    assert re.findall(r"❌ (ST\d+)", failures) == ["ST302"]
