"""The drift check, proved on emulators: clean against an unaltered one, and each kind of drift
reported at the right place against one behind an altering proxy (`tests/drift_proxy.py`).

The target is an emulator serving an application registered with a limit it never reaches, and
the check runs with a rate limit just as high, so nothing waits; the pacing itself is proved with
a fake clock. Most cases run the differential layer alone; the conformance layer runs in three.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import requests
from drift_proxy import (
    LINKS_PATH,
    Alteration,
    AlteringProxy,
    ThreadedServer,
    accept_value,
    bad_parameter_status,
    combine,
    default_limit,
    drop_header,
    ignore_ascending,
    null_every_other,
    rename_field,
    stringify_field,
    too_many_requests,
)

from emulator.app import create_app
from emulator.drift.command import add_parser, run
from emulator.drift.contract import Contract
from emulator.drift.differential import curl_command
from emulator.drift.model import location_matches
from emulator.drift.pacing import Pacer, Progress, Rate, parse_rate, parse_retry_after
from emulator.drift.probes import build_probes
from emulator.drift.properties import Answer, remaining_decreases
from emulator.drift.shapes import diff_shapes, shape_of
from emulator.drift.transport import PacedSession, SafetyPolicy, UnsafeRequest
from emulator.settings import Settings, contract_path

SANDBOX = ("drift_sandbox", "drift_sandbox_secret")
PROBES = build_probes("sandbox")
# The probes whose answer holds links: a page with items (not the one past the end), a detail, a
# create.
WITH_LINKS = (
    *(
        p.name
        for p in PROBES
        if p.operation == "listLinks" and p.expect_status == 200 and "past_end" not in p.name
    ),
    "detail.listed",
    "create.valid",
)
# The probes whose answers carry the rate-limit headers.
COUNTED = tuple(p.name for p in PROBES if p.counted)
ASCENDING = tuple(
    p.name for p in PROBES if p.name.startswith("list.sort.") and p.name.endswith("asc")
)
BAD_LIMIT = ("list.bad.limit.zero", "list.bad.limit.over_max", "list.bad.limit.not_integer")
LIVE = ("drift_live", "drift_live_secret")
FAST = ["--rate-limit", "1000000/m", "--seed", "7"]


def _register(url: str, credentials: tuple[str, str], environment: str) -> None:
    body: dict[str, Any] = {
        "clientId": credentials[0],
        "clientSecret": credentials[1],
        "environment": environment,
        "rateLimitPerMinute": 1_000_000,
    }
    if environment == "live":  # sandbox applications share the sandbox workspace
        body |= {"workspaceId": "ws_drift_target", "linkQuota": 1_000_000}
    response = requests.post(f"{url}/_emulator/applications", json=body, timeout=10)
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    """An independently started emulator, the target: a fast sandbox app, and a fast live app
    whose workspace holds a few links."""
    with ThreadedServer(create_app(Settings()), name="drift-target-emulator") as server:
        _register(server.url, SANDBOX, "sandbox")
        _register(server.url, LIVE, "live")
        token = requests.post(
            f"{server.url}/api/api-applications/token",
            json={"clientId": LIVE[0], "clientSecret": LIVE[1]},
            timeout=10,
        ).json()["accessToken"]
        for number in range(30):
            created = requests.post(
                f"{server.url}{LINKS_PATH}",
                json={
                    "title": f"Target link {number}",
                    "destination": f"https://a.example/{number}",
                },
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            assert created.status_code == 201, created.text
        yield server.url


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None

    @property
    def drift(self) -> list[dict[str, Any]]:
        assert self.report is not None
        return [d for d in self.report["differences"] if d["accepted"] is None]

    def locations(self) -> set[str]:
        return {d["location"] for d in self.drift}

    @property
    def groups(self) -> list[dict[str, Any]]:
        assert self.report is not None
        return list(self.report["groups"])

    def group(self, cause: str) -> dict[str, Any]:
        matches = [g for g in self.groups if g["cause"] == cause]
        assert len(matches) == 1, f"{cause} not one group; got {[g['cause'] for g in self.groups]}"
        return matches[0]

    def probes_by_cause(self) -> dict[str, set[str]]:
        return {g["cause"]: set(g["probes"]) for g in self.groups}

    def rows(self) -> list[str]:
        """The rows of the Markdown report's drift table."""
        return [line for line in self.stdout.splitlines() if re.match(r"\| \d+ \| ", line)]

    def find(self, location: str) -> dict[str, Any]:
        matches = [d for d in self.drift if d["location"] == location]
        assert matches, f"{location} not reported; got {sorted(self.locations())}"
        return matches[0]


def drift(
    tmp_path: Path,
    base_url: str,
    *extra: str,
    credentials: tuple[str, str] | None = SANDBOX,
) -> Outcome:
    """`8here-emulator drift` through the command's own parser and `run`."""
    parser = argparse.ArgumentParser(prog="8here-emulator")
    add_parser(parser.add_subparsers(dest="command", required=True))
    report = tmp_path / "drift.json"
    argv = ["drift", "--base-url", base_url, "--report", str(report), *extra]
    if credentials is not None:
        argv += ["--client-id", credentials[0], "--client-secret", credentials[1]]
    stdout, stderr = io.StringIO(), io.StringIO()
    code = run(parser.parse_args(argv), stdout=stdout, stderr=stderr)
    parsed = json.loads(report.read_text(encoding="utf-8")) if report.exists() else None
    return Outcome(code, stdout.getvalue(), stderr.getvalue(), parsed)


# -- clean ----------------------------------------------------------------------------------------


def test_an_unaltered_emulator_is_clean_on_both_layers(upstream: str, tmp_path: Path) -> None:
    markdown, junit = tmp_path / "drift.md", tmp_path / "drift.xml"
    outcome = drift(
        tmp_path,
        upstream,
        *FAST,
        "--max-examples",
        "5",
        "--report",
        str(markdown),
        "--report",
        str(junit),
    )
    assert outcome.code == 0, outcome.stdout + outcome.stderr
    assert outcome.report is not None
    assert outcome.report["result"] == "no-drift"
    assert outcome.report["differences"] == []
    assert outcome.report["errors"] == []
    assert outcome.report["skipped"] == []
    run_info = outcome.report["run"]
    assert run_info["environment"] == "sandbox"
    assert run_info["layers"] == ["differential", "conformance"]
    assert run_info["requests"]["target"] > 43  # every probe, then the fuzzed cases
    # The estimate and the progress go to stderr; the report to stdout and the files.
    assert "estimated" in outcome.stderr
    assert "requests to the target" in outcome.stderr
    assert "no drift" in outcome.stderr.splitlines()[-1]
    assert outcome.stdout.startswith("## ✅ No contract drift")
    assert markdown.read_text(encoding="utf-8") == outcome.stdout
    suites = ET.parse(junit).getroot()
    assert {s.get("name") for s in suites} == {"drift.differential", "drift.conformance"}
    assert all(s.get("failures") == "0" for s in suites)
    assert len(suites.findall(".//testcase")) == 43 + 4


# -- each kind of drift ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftCase:
    alteration: Alteration
    location: str
    kind: str
    emulator: str
    target: str
    cause: str
    probes: tuple[str, ...]


CASES = [
    DriftCase(
        rename_field("title", "name"),
        "list.default: body $.data[*].title → name",
        "renamed",
        "title: string",
        "name: string",
        "body $..title → name",
        WITH_LINKS,
    ),
    DriftCase(
        stringify_field("clicks"),
        "list.default: body $.data[*].clicks",
        "type",
        "integer",
        "string",
        "body $..clicks",
        WITH_LINKS,
    ),
    DriftCase(
        null_every_other("destination"),
        "list.default: body $.data[*].destination",
        "nullability",
        "string",
        "null | string",
        "body $..destination",
        WITH_LINKS,
    ),
    DriftCase(
        drop_header("X-RateLimit-Remaining"),
        "list.default: header X-RateLimit-Remaining",
        "header-presence",
        "99*",
        "absent",
        "header X-RateLimit-Remaining",
        COUNTED,
    ),
    DriftCase(
        bad_parameter_status("limit", 422),
        "list.bad.limit.zero: status",
        "status",
        "400 invalid_parameter",
        "422 invalid_parameter",
        "status 400 invalid_parameter → 422 invalid_parameter",
        BAD_LIMIT,
    ),
    DriftCase(
        default_limit(20),
        "list.default: meaning default page size",
        "meaning",
        "pagination.limit=25, 25 items of *",
        "pagination.limit=20, 20 items of * (documented default 25)",
        "meaning default page size",
        ("list.default",),
    ),
    DriftCase(
        ignore_ascending(),
        "list.sort.createdAt.asc: meaning sort order",
        "meaning",
        "100 items sorted by createdAt asc",
        "not sorted by createdAt asc: item 0 *",
        "meaning sort order",
        ASCENDING,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.alteration.name for c in CASES])
def test_each_kind_of_drift_is_one_row_reported_where_it_is(
    upstream: str, tmp_path: Path, case: DriftCase
) -> None:
    with AlteringProxy(upstream, case.alteration) as proxy:
        outcome = drift(tmp_path, proxy.url, *FAST, "--no-conformance")
    assert outcome.code == 1, outcome.stderr
    found = outcome.find(case.location)
    assert found["kind"] == case.kind
    assert location_matches(case.emulator, found["emulator"]), found
    assert location_matches(case.target, found["target"]), found
    assert found["contractAgreesWith"] == "emulator"
    assert found["curl"].startswith("curl -X ")
    # One row: the alteration is the only cause, seen in every probe it can be seen in.
    assert outcome.probes_by_cause() == {case.cause: set(case.probes)}
    assert len(outcome.rows()) == 1
    assert f"`{case.cause}`" in outcome.rows()[0]
    assert f"## ❌ Contract drift: 1 cause in {len(case.probes)} probe" in outcome.stdout
    assert f"drift: 1 cause in {len(case.probes)} probe" in outcome.stderr.splitlines()[-1]


def test_the_sort_check_reads_meaning_on_each_side_not_equal_values(
    upstream: str, tmp_path: Path
) -> None:
    with AlteringProxy(upstream, ignore_ascending()) as proxy:
        outcome = drift(tmp_path, proxy.url, *FAST, "--no-conformance")
    assert {d["location"] for d in outcome.drift} == {
        f"list.sort.{key}.asc: meaning sort order"
        for key in ("createdAt", "updatedAt", "title", "clicks")
    }


# The four: a renamed list field, a detail field turned into a string, a missing
# X-RateLimit-Remaining, limit=0 accepted.
FOUR = combine(
    rename_field("hasVisits", "visited", on=("list",)),
    stringify_field("clicks", on=("detail",)),
    drop_header("X-RateLimit-Remaining"),
    accept_value("limit", "0"),
)


def test_four_alterations_are_four_rows_on_both_layers(upstream: str, tmp_path: Path) -> None:
    junit = tmp_path / "drift.xml"
    with AlteringProxy(upstream, FOUR) as proxy:
        outcome = drift(tmp_path, proxy.url, *FAST, "--max-examples", "3", "--report", str(junit))
    assert outcome.code == 1, outcome.stderr
    assert outcome.report is not None
    listed = {p for p in WITH_LINKS if p.startswith("list.")}
    by_cause = outcome.probes_by_cause()
    # The conformance layer's findings of the same drift join the same rows.
    differential = {cause: {p for p in seen if not p.startswith("conformance ")}
                    for cause, seen in by_cause.items()}  # fmt: skip
    assert differential == {
        "header X-RateLimit-Remaining": set(COUNTED) - {"list.bad.limit.zero"},
        "body $..hasVisits → visited": listed,
        "status 400 invalid_parameter → 200": {"list.bad.limit.zero"},
        "body $..clicks": {"detail.listed"},
    }
    rows = outcome.rows()
    assert len(rows) == 4
    renamed = next(row for row in rows if "visited" in row)
    assert "`body $..hasVisits → visited`" in renamed
    assert "| hasVisits: boolean | visited: boolean | emulator |" in renamed
    seen = len(by_cause["body $..hasVisits → visited"])
    assert f"<summary>{seen} probes, 1 operation</summary>" in renamed
    header = outcome.group("header X-RateLimit-Remaining")
    assert header["operations"] == ["listLinks", "getLink", "createLink"]
    assert header["example"]["target"] == "absent"
    assert header["example"]["contractAgreesWith"] == "emulator"
    # The summary line counts causes and the probes affected.
    affected = set().union(*by_cause.values())
    summary = outcome.report["summary"]
    assert (summary["causes"], summary["probesAffected"]) == (4, len(affected))
    assert outcome.stdout.startswith(f"## ❌ Contract drift: 4 causes in {len(affected)} probes")
    # JSON keeps every occurrence under its group.
    assert sum(len(g["occurrences"]) for g in outcome.groups) == summary["differences"]
    assert sum(g["count"] for g in outcome.groups) == len(outcome.drift) > 4
    assert all(o["cause"] == g["cause"] for g in outcome.groups for o in g["occurrences"])
    # JUnit keeps a test per probe, and each failure names its cause.
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert {p.name for p in PROBES} <= set(cases)
    failure = cases["list.default"].find("failure")
    assert failure is not None
    message = failure.get("message", "")
    assert "header X-RateLimit-Remaining" in message
    assert "body $..hasVisits → visited" in message
    assert f"in {len(by_cause['header X-RateLimit-Remaining'])} probes" in message
    zero = cases["list.bad.limit.zero"].find("failure")
    assert zero is not None
    assert zero.get("message") == "cause 3 of 4: status 400 invalid_parameter → 200 (in 1 probe)"


def test_the_seven_kinds_at_once_are_seven_rows(upstream: str, tmp_path: Path) -> None:
    with AlteringProxy(upstream, combine(*(case.alteration for case in CASES))) as proxy:
        outcome = drift(tmp_path, proxy.url, *FAST, "--no-conformance")
    assert outcome.code == 1, outcome.stderr
    assert len(outcome.rows()) == 7
    # The string clicks and the renamed title leave two sort keys that can still be judged, and
    # the 422s for a bad limit hide those answers' headers behind a status difference.
    assert outcome.probes_by_cause() == {
        "body $..title → name": set(WITH_LINKS),
        "body $..clicks": set(WITH_LINKS),
        "body $..destination": set(WITH_LINKS),
        "header X-RateLimit-Remaining": set(COUNTED) - set(BAD_LIMIT),
        "status 400 invalid_parameter → 422 invalid_parameter": set(BAD_LIMIT),
        "meaning default page size": {"list.default"},
        "meaning sort order": {"list.sort.createdAt.asc", "list.sort.updatedAt.asc"},
    }
    assert outcome.stdout.startswith("## ❌ Contract drift: 7 causes in ")


def test_the_junit_and_markdown_reports_name_the_failing_probe(
    upstream: str, tmp_path: Path
) -> None:
    junit, markdown = tmp_path / "r.xml", tmp_path / "r.md"
    with AlteringProxy(upstream, bad_parameter_status("offset", 422)) as proxy:
        outcome = drift(
            tmp_path, proxy.url, *FAST, "--no-conformance", "--report", str(junit),
            "--report", str(markdown),
        )  # fmt: skip
    assert outcome.code == 1
    root = ET.parse(junit).getroot()
    failed = {
        c.get("name"): c.find("failure")
        for c in root.iter("testcase")
        if c.find("failure") is not None
    }
    assert set(failed) == {"list.bad.offset.negative", "list.bad.offset.not_integer"}
    cause = "status 400 invalid_parameter → 422 invalid_parameter"
    for failure in failed.values():
        assert failure is not None
        assert failure.get("message") == f"cause 1 of 1: {cause} (in 2 probes)"
        assert "list.bad.offset." in (failure.text or "")
    text = markdown.read_text(encoding="utf-8")
    assert "| # | Cause | Kind | Seen in | Emulator | Target | Contract agrees with |" in text
    assert (
        f"| 1 | `{cause}` | status | <details><summary>2 probes, 1 operation</summary>"
        "listLinks: <code>list.bad.offset.negative</code>, <code>list.bad.offset.not_integer</code>"
        "</details> | 400 invalid_parameter | 422 invalid_parameter | emulator |" in text
    )
    assert f"**1. `{cause}`** — in `list.bad.offset.negative`" in text


# -- the conformance layer ------------------------------------------------------------------------


def test_conformance_failures_come_with_a_curl_and_the_emulators_answer(
    upstream: str, tmp_path: Path
) -> None:
    with AlteringProxy(upstream, stringify_field("clicks")) as proxy:
        outcome = drift(tmp_path, proxy.url, *FAST, "--no-differential", "--max-examples", "3")
    assert outcome.code == 1
    found = outcome.find("conformance listLinks: Response violates schema")
    assert found["layer"] == "conformance"
    assert found["contractAgreesWith"] == "emulator"
    assert found["emulator"] == "200: passes this check"
    assert found["target"].startswith("200")
    assert "clicks" in found["detail"]
    assert found["curl"].startswith('curl -X GET -H "Authorization: Bearer $EIGHTHERE_TOKEN"')
    assert proxy.url in found["curl"]
    assert {d["layer"] for d in outcome.drift} == {"conformance"}


def test_an_emulator_given_by_url_is_compared_with(upstream: str, tmp_path: Path) -> None:
    with ThreadedServer(create_app(Settings()), name="drift-comparison-emulator") as comparison:
        outcome = drift(
            tmp_path, upstream, *FAST, "--no-conformance", "--emulator-url", comparison.url
        )
    assert outcome.code == 0, outcome.stdout
    assert outcome.report is not None
    assert outcome.report["run"]["emulator"] == comparison.url


def test_reproducing_commands_carry_no_secret_and_run_in_a_shell() -> None:
    probe = next(p for p in build_probes("sandbox") if p.name == "token.good")
    context = {"client_id": "drift_sandbox", "client_secret": "the-real-secret"}
    command = curl_command(
        probe, "http://h/api/api-applications/token", {"Content-Type": "application/json"}, context
    )
    assert "the-real-secret" not in command
    # The shell splits the command as curl would receive it, with the variables expanded.
    env = {**os.environ, "EIGHTHERE_CLIENT_ID": "id-1", "EIGHTHERE_CLIENT_SECRET": "sbs_$ecret-1"}
    script = 'for a in "$@"; do printf "%s\\0" "$a"; done'
    words = subprocess.run(
        ["bash", "-c", f"set -- {command.removeprefix('curl ')}; {script}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    body = json.loads(words[words.index("--data-binary") + 1])
    assert body == {"clientId": "id-1", "clientSecret": "sbs_$ecret-1"}


# -- could not run --------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_target_exits_2_with_a_one_line_reason(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    outcome = drift(tmp_path, url, *FAST)
    assert outcome.code == 2
    assert outcome.stdout == ""
    assert outcome.report is None
    assert outcome.stderr.count("\n") == 1
    assert outcome.stderr.startswith("8here-emulator drift: could not run: ")
    assert f"the target at {url} is unreachable" in outcome.stderr


def test_bad_credentials_exit_2_and_say_so(upstream: str, tmp_path: Path) -> None:
    outcome = drift(tmp_path, upstream, *FAST, credentials=("drift_sandbox", "wrong"))
    assert outcome.code == 2
    assert "rejected the credentials for client id 'drift_sandbox' (401 invalid_client)" in (
        outcome.stderr
    )


def test_half_the_credentials_is_refused_before_any_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EIGHTHERE_CLIENT_ID", raising=False)
    monkeypatch.setenv("EIGHTHERE_CLIENT_SECRET", "only-a-secret")
    outcome = drift(tmp_path, "http://127.0.0.1:9", credentials=None)
    assert outcome.code == 2
    assert "no client id" in outcome.stderr


def test_credentials_come_from_the_environment(
    upstream: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EIGHTHERE_CLIENT_ID", SANDBOX[0])
    monkeypatch.setenv("EIGHTHERE_CLIENT_SECRET", SANDBOX[1])
    outcome = drift(tmp_path, upstream, *FAST, "--no-conformance", credentials=None)
    assert outcome.code == 0, outcome.stdout
    assert outcome.report is not None
    assert outcome.report["run"]["clientId"] == SANDBOX[0]


# -- accepted differences -------------------------------------------------------------------------


def test_known_differences_are_accepted_and_stale_ones_listed(
    upstream: str, tmp_path: Path
) -> None:
    known = tmp_path / "known.yaml"
    known.write_text(
        "accepted:\n"
        "  - location: '*: header X-RateLimit-Remaining'\n"
        "    reason: the real API sends no Remaining header\n"
        "  - location: 'list.default: status'\n"
        "    reason: no longer true\n",
        encoding="utf-8",
    )
    with AlteringProxy(upstream, drop_header("X-RateLimit-Remaining")) as proxy:
        outcome = drift(
            tmp_path, proxy.url, *FAST, "--no-conformance", "--known-differences", str(known)
        )
    assert outcome.code == 0, outcome.stdout
    assert outcome.report is not None
    accepted = [d for d in outcome.report["differences"] if d["accepted"]]
    assert accepted and all(
        d["accepted"] == "the real API sends no Remaining header" for d in accepted
    )
    assert outcome.report["unusedKnownDifferences"] == [
        {"location": "list.default: status", "reason": "no longer true"}
    ]
    assert [k["covered"] for k in outcome.report["knownDifferences"]] == [len(COUNTED), 0]
    assert outcome.report["groups"] == []
    assert [g["cause"] for g in outcome.report["acceptedGroups"]] == [
        "header X-RateLimit-Remaining"
    ]
    assert "### Accepted differences: 1 cause" in outcome.stdout
    assert (
        f"- `location: *: header X-RateLimit-Remaining` covered {len(COUNTED)} occurrences in "
        f"{len(COUNTED)} probes (`header X-RateLimit-Remaining`)" in outcome.stdout
    )


def test_a_known_difference_can_accept_a_whole_group(upstream: str, tmp_path: Path) -> None:
    known = tmp_path / "known.yaml"
    known.write_text(
        "- group: 'body $..hasVisits → visited'\n"
        "  reason: the real API calls it visited\n"
        "- group: 'header X-RateLimit-*'\n"
        "  kind: header-presence\n"
        "  reason: the real API sends no Remaining header\n"
        "- group: 'body $..title'\n"
        "  reason: 'not seen: a group name matches whole'\n",
        encoding="utf-8",
    )
    with AlteringProxy(upstream, FOUR) as proxy:
        outcome = drift(
            tmp_path, proxy.url, *FAST, "--no-conformance", "--known-differences", str(known)
        )
    assert outcome.code == 1, outcome.stderr
    assert outcome.report is not None
    listed = {p for p in WITH_LINKS if p.startswith("list.")}
    covered = {
        k.get("group"): (k["covered"], k["probes"]) for k in outcome.report["knownDifferences"]
    }
    assert covered == {
        "body $..hasVisits → visited": (len(listed), len(listed)),
        "header X-RateLimit-*": (len(COUNTED) - 1, len(COUNTED) - 1),
        "body $..title": (0, 0),
    }
    # What is left open is the two causes no entry names.
    assert [g["cause"] for g in outcome.groups] == [
        "status 400 invalid_parameter → 200",
        "body $..clicks",
    ]
    assert len(outcome.rows()) == 2
    assert outcome.stdout.startswith("## ❌ Contract drift: 2 causes in 2 probes")
    assert "### Accepted differences: 2 causes" in outcome.stdout
    assert f"- `group: body $..hasVisits → visited` covered {len(listed)} occurrences" in (
        outcome.stdout
    )
    assert "- `group: body $..title`: not seen" in outcome.stdout


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("- reason: no location\n", "entry 1 needs a 'location' or a 'group'"),
        ("- group: 3\n", "entry 1: 'group' must be a string"),
        ("just text\n", "expected a list of accepted differences"),
        ("- location: [unclosed\n", "not YAML or JSON"),
    ],
)
def test_a_bad_known_differences_file_is_refused_with_the_reason(
    tmp_path: Path, content: str, problem: str
) -> None:
    known = tmp_path / "known.yaml"
    known.write_text(content, encoding="utf-8")
    outcome = drift(tmp_path, "http://127.0.0.1:9", "--known-differences", str(known))
    assert outcome.code == 2
    assert problem in outcome.stderr


# -- safety and pacing ----------------------------------------------------------------------------


def test_a_live_target_gets_no_create_without_allow_writes(upstream: str, tmp_path: Path) -> None:
    with AlteringProxy(upstream) as proxy:
        outcome = drift(tmp_path, proxy.url, *FAST, "--max-examples", "2", credentials=LIVE)
        sent = list(proxy.seen)
    assert outcome.code == 0, outcome.stdout
    assert outcome.report is not None
    assert outcome.report["run"]["environment"] == "live"
    assert outcome.report["run"]["writesAllowed"] is False
    assert ("POST", LINKS_PATH) not in sent
    assert {method for method, _ in sent} == {"GET", "POST"}
    skipped = {s["location"] for s in outcome.report["skipped"]}
    assert {"create.valid", "create.slug_taken", "conformance createLink"} <= skipped
    assert "creates not sent" in outcome.stderr


def test_a_live_target_gets_creates_with_allow_writes(upstream: str, tmp_path: Path) -> None:
    with AlteringProxy(upstream) as proxy:
        outcome = drift(
            tmp_path, proxy.url, *FAST, "--no-conformance", "--allow-writes", credentials=LIVE
        )
        sent = list(proxy.seen)
    assert outcome.code == 0, outcome.stdout
    assert ("POST", LINKS_PATH) in sent
    assert outcome.report is not None
    assert outcome.report["skipped"] == []


def test_a_429_is_retried_after_its_retry_after(upstream: str, tmp_path: Path) -> None:
    with AlteringProxy(upstream, too_many_requests(times=1, retry_after=1)) as proxy:
        outcome = drift(tmp_path, proxy.url, *FAST, "--no-conformance")
    assert outcome.code == 0, outcome.stdout
    assert "429 from" in outcome.stderr
    assert "waiting 1 s (Retry-After)" in outcome.stderr


def test_the_session_waits_retry_after_then_resends(upstream: str) -> None:
    waits: list[float] = []
    pacer = Pacer(None, sleep=waits.append)
    with AlteringProxy(upstream, too_many_requests(times=2, retry_after=7)) as proxy:
        session = PacedSession(pacer, SafetyPolicy())
        response = session.get(f"{proxy.url}{LINKS_PATH}")
    assert response.status_code == 401  # no token: but the two 429s were waited out first
    assert session.sent == 3
    assert len(waits) == 2 and all(6.5 <= w <= 7.0 for w in waits)


def test_requests_are_paced_under_the_rate_limit() -> None:
    now = [1000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(parse_rate("15/m"), clock=lambda: now[0], sleep=sleep)
    starts = []
    for _ in range(16):
        pacer.wait()
        starts.append(now[0])
    # No sliding 60-second window ever holds more than 15 request starts.
    assert all(starts[i + 15] - starts[i] > 60 for i in range(len(starts) - 15))
    assert slept[0] == pytest.approx(60 / 15 * 1.05)
    pacer.defer(30)
    pacer.wait()
    assert now[0] - starts[-1] == pytest.approx(30)


@pytest.mark.parametrize(
    ("text", "count", "seconds"),
    [("15/m", 15, 60), ("15/min", 15, 60), ("15", 15, 60), ("2/s", 2, 1), ("900/hour", 900, 3600)],
)
def test_rates_parse(text: str, count: int, seconds: float) -> None:
    assert parse_rate(text) == Rate(count, seconds)


@pytest.mark.parametrize("text", ["", "fast", "0/m", "15/day"])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(text)


def test_retry_after_takes_seconds_or_a_date() -> None:
    assert parse_retry_after("12") == 12
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10
    assert parse_retry_after("soon") is None


def test_progress_shows_sent_of_planned_and_time_left() -> None:
    stream = io.StringIO()
    progress = Progress(stream, interval=4.0, log_every=2)
    progress.plan(10)
    progress.tick()
    progress.tick()
    assert "2/10 requests to the target (20%), about 32 s left" in stream.getvalue()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", f"{LINKS_PATH}/lnk_1"),
        ("PUT", f"{LINKS_PATH}/lnk_1"),
        ("PATCH", LINKS_PATH),
        ("POST", f"{LINKS_PATH}/lnk_1"),
        ("GET", f"{LINKS_PATH}/../../admin"),
        ("GET", f"{LINKS_PATH}/%2E%2E/%2E%2E/admin"),
        ("POST", LINKS_PATH),
        ("GET", "/api/other"),
    ],
)
def test_the_safety_policy_refuses_what_could_change_data(method: str, path: str) -> None:
    with pytest.raises(UnsafeRequest):
        SafetyPolicy().check(method, f"https://8here.in{path}")


def test_the_safety_policy_lets_reads_token_exchanges_and_allowed_creates_through() -> None:
    policy = SafetyPolicy(allow_create=True)
    policy.check("GET", f"https://8here.in{LINKS_PATH}?limit=1")
    policy.check("GET", f"https://8here.in{LINKS_PATH}/lnk_1")
    policy.check("POST", "https://8here.in/api/api-applications/token")
    policy.check("POST", f"https://8here.in{LINKS_PATH}")


# -- shapes and the contract ----------------------------------------------------------------------


def test_shapes_compare_keys_types_nullability_and_items_not_values() -> None:
    emulator = {"data": [{"a": 1, "b": "x", "c": None}], "n": 3}
    target = {"data": [{"a": 2, "b": None, "d": True}, {"a": 5, "b": "y", "d": False}], "n": 9}
    found = {(d.path, d.kind) for d in diff_shapes(shape_of(emulator), shape_of(target))}
    assert found == {
        (("data", "[]", "b"), "nullability"),
        (("data", "[]", "c"), "missing-on-target"),
        (("data", "[]", "d"), "missing-on-emulator"),
    }
    assert list(diff_shapes(shape_of({"a": [1, 2]}), shape_of({"a": [3]}))) == []


def test_the_contract_answers_types_keys_and_headers() -> None:
    contract = Contract.load(contract_path())
    page = contract.body_schema("listLinks", 200)
    assert contract.allowed_types(contract.at(page, ("data", "[]", "clicks")) or []) == {"integer"}
    detail = contract.body_schema("getLink", 200)
    last = contract.at(detail, ("analytics", "lastVisitedAt")) or []
    assert contract.allowed_types(last) == {"string", "null"}
    assert contract.key_rule(contract.at(page, ("data", "[]")), "title") == "required"
    assert contract.key_rule(contract.at(page, ("data", "[]")), "name") == "forbidden"
    error = contract.body_schema("listLinks", 400)
    assert contract.key_rule(contract.at(error, ("error",)), "field") == "required"
    assert contract.enum_at(contract.at(error, ("error", "code"))) == {"invalid_parameter"}
    assert contract.header_rule("listLinks", 200, "x-ratelimit-remaining") == "required"
    assert contract.header_rule("createToken", 200, "X-RateLimit-Limit") == "undeclared"
    assert contract.parameter_default("listLinks", "limit") == 25


def test_a_renamed_key_is_one_difference_and_an_ambiguous_one_is_not() -> None:
    emulator = {"data": [{"id": "a", "hasVisits": True, "clicks": 1}]}
    target = {"data": [{"id": "a", "visited": True, "clicks": 1}]}
    (renamed,) = diff_shapes(shape_of(emulator), shape_of(target))
    assert (renamed.path, renamed.kind, renamed.renamed_to) == (
        ("data", "[]", "hasVisits"),
        "renamed",
        "visited",
    )
    assert (renamed.emulator, renamed.target) == ("hasVisits: boolean", "visited: boolean")
    # Two candidates of the same type on the target: no guessing which one it is.
    target = {"data": [{"id": "a", "visited": True, "seen": False, "clicks": 1}]}
    kinds = {(d.path[-1], d.kind) for d in diff_shapes(shape_of(emulator), shape_of(target))}
    assert kinds == {
        ("hasVisits", "missing-on-target"),
        ("visited", "missing-on-emulator"),
        ("seen", "missing-on-emulator"),
    }
    # Inside a renamed object, what differs is still reported, under the old name.
    inner = diff_shapes(shape_of({"a": {"n": 1}}), shape_of({"b": {"n": "1"}}))
    assert [(d.path, d.kind) for d in inner] == [(("a",), "renamed"), (("a", "n"), "type")]


def test_a_missing_schemathesis_names_the_drift_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "schemathesis", None)  # `import schemathesis` fails
    outcome = drift(tmp_path, "http://127.0.0.1:9")
    assert outcome.code == 2
    assert outcome.stderr == (
        "8here-emulator drift: could not run: schemathesis is missing; install the drift extra: "
        "pip install '8here-emulator[drift]'\n"
    )


def test_remaining_may_stay_when_the_window_freed_a_request_before_the_answer_came() -> None:
    """A slow answer: sent a second and a half before the first answer's Reset, handled and
    answered after it. The window freed a request, so an unchanged Remaining is no drift."""
    probe = next(p for p in PROBES if p.name == "list.default")
    headers = {
        "x-ratelimit-limit": "15",
        "x-ratelimit-remaining": "10",
        "x-ratelimit-reset": "1000",
    }

    def answer(sent_at: float, received_at: float) -> Answer:
        return Answer(probe, 200, headers, {}, sent_at, "sandbox", received_at=received_at)

    first = answer(990.0, 990.1)
    slow = answer(998.5, 1000.2)
    assert remaining_decreases([first, slow])["list.default"].holds is True
    quick = answer(998.5, 998.6)  # the Reset had not come: Remaining should have dropped
    assert remaining_decreases([first, quick])["list.default"].holds is False
