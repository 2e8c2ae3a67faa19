"""The README's curl examples (the seed's four calls) run as written against a served emulator."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_qr import read_opencv

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
