"""Bad scenario files: each kind is one line naming the file, the line and the path of the
offending value, at start (`serve --scenario`, exit 2) and over HTTP (422 `invalid_scenario`),
and leaves the state as it was."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import CONTROL, assert_error, client_settings, free_port
from starlette.testclient import TestClient

from emulator.app import create_app
from emulator.cli import main
from emulator.settings import Settings
from emulator.state import load_sandbox

_SAMPLE = load_sandbox(Settings())
YAML = {"Content-Type": "application/yaml"}
LINK = "  - {workspace: ws_personal_demo, title: T, destination: 'https://t.example'"

# (kind, file text, line, path, words of the problem)
BAD: list[tuple[str, str, int, str, str]] = [
    ("yaml syntax", "version: 1\nclock: {now: '2026-01-01T00:00:00Z'\n", 3, "", "not valid YAML"),
    ("no version", "clock: {frozen: true}\n", 1, "version", "version is required"),
    ("version 2", "version: 2\n", 1, "version", "1 was expected"),
    (
        "unknown key",
        "version: 1\nworkspaces:\n  - {id: ws_personal_demo, linkQouta: 3}\n",
        3,
        "workspaces[0].linkQouta",
        "unknown key 'linkQouta' (did you mean 'linkQuota'?)",
    ),
    (
        "wrong type",
        "version: 1\nworkspaces:\n  - id: ws_personal_demo\n    linkQuota: ten\n",
        4,
        "workspaces[0].linkQuota",
        "'ten' is not of type 'integer'",
    ),
    (
        "missing field",
        "version: 1\nlinks:\n  - {workspace: ws_personal_demo, destination: 'https://t.ex'}\n",
        3,
        "links[0].title",
        "title is required",
    ),
    (
        "duplicate key",
        "version: 1\nclock:\n  now: '2026-01-01T00:00:00Z'\n  now: '2026-02-01T00:00:00Z'\n",
        4,
        "clock.now",
        "the key 'now' is given twice",
    ),
    (
        "unknown workspace",
        "version: 1\nlinks:\n  - {workspace: ws_nowhere, title: T, destination: 'https://t.ex'}\n",
        3,
        "links[0].workspace",
        "No workspace 'ws_nowhere'",
    ),
    (
        "visit before creation",
        "version: 1\nlinks:\n"
        + LINK
        + ",\n     createdAt: '2026-02-01T00:00:00Z',\n"
        + "     visits: [{count: 2, at: '2026-01-31T23:59:59Z'}]}\n",
        5,
        "links[0].visits[0].at",
        "is before the link was created (2026-02-01T00:00:00Z)",
    ),
    (
        "slug of the sample set",
        "version: 1\nlinks:\n" + LINK + ", slug: launch}\n",
        3,
        "links[0].slug",
        "taken by a link of the sample set",
    ),
    (
        "slug given twice",
        "version: 1\nlinks:\n" + LINK + ", slug: twice}\n" + LINK + ", slug: twice}\n",
        4,
        "links[1].slug",
        "The slug 'twice' is taken: links[0] has it",
    ),
    (
        "bad destination",
        "version: 1\nlinks:\n  - workspace: ws_personal_demo\n    title: T\n"
        "    destination: ftp://t.example\n",
        5,
        "links[0].destination",
        "destination must be an absolute http or https URL",
    ),
    (
        "bad instant",
        "version: 1\nclock: {now: yesterday}\n",
        2,
        "clock.now",
        "now is not an ISO 8601 instant: 'yesterday'",
    ),
    (
        "client id taken",
        "version: 1\napplications:\n  - {clientId: sb_demo_client, clientSecret: other}\n",
        3,
        "applications[0].clientId",
        "set replace to replace it",
    ),
    (
        "fault that does nothing",
        "version: 1\nfaults:\n  - {path: /api/*, times: 2}\n",
        3,
        "faults[0].status",
        "A fault needs a status, a network, a delayMs",
    ),
    (
        "p99 below the median",
        "version: 1\nlatency:\n  default:\n    lognormal: {median: 80, p99: 60}\n",
        4,
        "latency.default.lognormal.p99",
        "p99 (60) is below median (80)",
    ),
    (
        "two distributions",
        "version: 1\nlatency:\n  operations:\n    getLink: {fixed: 5, uniform: {min: 1, max: 2}}\n",
        4,
        "latency.operations.getLink.uniform",
        "not both fixed and uniform",
    ),
    (
        "unknown operation",
        "version: 1\nlatency:\n  operations:\n    deleteLink: {fixed: 5}\n",
        4,
        "latency.operations.deleteLink",
        "unknown key 'deleteLink'",
    ),
    (
        "usage of nobody",
        "version: 1\nusage:\n  - {clientId: nobody, at: '2026-01-01T00:00:00Z'}\n",
        3,
        "usage[0].clientId",
        "No application 'nobody'",
    ),
    (
        "a list where a mapping goes",
        "version: 1\nclock: [now]\n",
        2,
        "clock",
        "is not of type 'object'",
    ),
    ("not a mapping", "- version: 1\n", 1, "", "a scenario is a mapping"),
]
IDS = [kind for kind, *_ in BAD]


@pytest.fixture(autouse=True)
def never_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scenario that loads after all fails the test instead of serving until killed."""

    def serve_app(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the scenario loaded and serve started")

    monkeypatch.setattr("emulator.serving.serve_app", serve_app)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _expected(source: str, line: int, path: str, words: str) -> tuple[str, str]:
    prefix = f"{source}:{line}: {path}: " if path else f"{source}:{line}: "
    return prefix, words


@pytest.mark.parametrize(("kind", "text", "line", "path", "words"), BAD, ids=IDS)
def test_at_start_one_line_naming_file_line_and_path_and_exit_2(
    kind: str,
    text: str,
    line: int,
    path: str,
    words: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = _write(tmp_path, text)
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--port", str(free_port()), "--scenario", str(bad), "--quiet"])
    assert exited.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1, stderr
    prefix, problem = _expected(str(bad), line, path, words)
    assert stderr.startswith(f"8here-emulator: {prefix}"), stderr
    assert problem in stderr


def _state(client: TestClient) -> dict[str, Any]:
    return {
        "scenario": client.get(f"{CONTROL}/scenario", params={"format": "json"}).json(),
        "loaded": client.get(f"{CONTROL}/scenarios").json()["loaded"],
        "applications": client.get(f"{CONTROL}/applications").json(),
    }


@pytest.fixture(scope="module")
def client() -> Any:
    # Started from a scenario with a frozen clock, so that "unchanged" can be compared whole.
    base = client_settings(Settings(scenarios=("quota-nearly-full",)))
    with TestClient(create_app(base, sandbox=_SAMPLE)) as test_client:
        test_client.post(f"{CONTROL}/clock", json={"now": "2026-03-14T09:00:00Z"})
        yield test_client


@pytest.mark.parametrize(("kind", "text", "line", "path", "words"), BAD, ids=IDS)
def test_over_http_422_naming_line_and_path_and_nothing_changes(
    kind: str, text: str, line: int, path: str, words: str, client: TestClient
) -> None:
    before = _state(client)
    response = client.post(f"{CONTROL}/scenario", content=text.encode(), headers=YAML)
    error = assert_error(response, 422, "invalid_scenario")
    assert "\n" not in error["message"]
    prefix, problem = _expected("request body", line, path, words)
    assert error["message"].startswith(prefix), error
    assert problem in error["message"]
    assert error.get("field") == (path or None)
    assert _state(client) == before


def test_the_command_exits_2_with_one_line_and_no_trace(tmp_path: Path) -> None:
    bad = _write(tmp_path, BAD[7][1])  # an unknown workspace
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "serve", "--port", str(free_port())],
        env={"EMULATOR_SCENARIO": str(bad), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"8here-emulator: {bad}:3: links[0].workspace: No workspace 'ws_nowhere': define it "
        "under workspaces, or register an application in it.\n"
    )
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("reference", "words"),
    [
        ("no-such-scenario", "no shipped scenario by that name (shipped: api-access-disabled"),
        ("missing.yaml", "missing.yaml: cannot read it"),
    ],
)
def test_a_scenario_that_is_not_there(
    reference: str, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--port", str(free_port()), "--scenario", reference, "--quiet"])
    assert exited.value.code == 2
    assert words in capsys.readouterr().err


def test_an_included_file_is_named_where_it_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "base.yaml").write_text("version: 1\nfaults:\n  - {status: 503}\n")
    top = tmp_path / "top.yaml"
    top.write_text("version: 1\ninclude: [base.yaml]\n")
    with pytest.raises(SystemExit):
        main(["serve", "--port", str(free_port()), "--scenario", str(top), "--quiet"])
    assert capsys.readouterr().err.startswith(
        f"8here-emulator: {tmp_path / 'base.yaml'}:3: faults[0].times: times is required"
    )
