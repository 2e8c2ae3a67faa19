"""The drift report as Markdown (a CI job summary), JSON, or JUnit XML (CI test views)."""

from __future__ import annotations

import html
from collections import defaultdict
from xml.etree import ElementTree as ET

from emulator.drift.grouping import Group, by_cause
from emulator.drift.model import Difference, DriftResult
from emulator.drift.pacing import format_duration

FORMATS = ("markdown", "json", "junit")
_EXTENSIONS = {".md": "markdown", ".markdown": "markdown", ".json": "json", ".xml": "junit"}

_SIDE = {
    "emulator": "emulator",
    "target": "target",
    "both": "both",
    "neither": "neither",
    "unknown": "—",
}


def format_for(path: str) -> str:
    for extension, name in _EXTENSIONS.items():
        if path.lower().endswith(extension):
            return name
    return "markdown"


def render(result: DriftResult, fmt: str) -> str:
    if fmt == "json":
        return result.dumps() + "\n"
    if fmt == "junit":
        return junit(result)
    return markdown(result)


def _cell(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("|", "\\|") or " "


def _code(text: str) -> str:
    return f"`{text}`" if "`" not in text else text


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def headline(result: DriftResult) -> str:
    """The summary line: causes of drift and the probes they were seen in."""
    causes, probes = len(result.drift_groups()), len(result.probes_affected)
    return f"{_plural(causes, 'cause')} in {_plural(probes, 'probe')}"


def markdown(result: DriftResult) -> str:
    info = result.info
    groups = result.drift_groups()
    if groups:
        title = f"## ❌ Contract drift: {headline(result)}"
    elif result.errors:
        title = "## ⚠️ Drift check incomplete"
    else:
        title = "## ✅ No contract drift"
    lines = [
        title,
        "",
        f"Target `{info.target}` ({info.environment}, client `{info.client_id}`) against the "
        f"emulator `{info.emulator}`; layers: {', '.join(info.layers)}.",
        "",
        f"{info.target_requests} requests to the target at ≤ {info.rate_limit} in "
        f"{format_duration(info.duration_seconds)} (estimated "
        f"{format_duration(info.estimate_seconds)}); seed {info.seed}, "
        f"{info.max_examples} examples per operation and mode; creates "
        f"{'sent' if info.writes_allowed else 'not sent'}.",
        "",
    ]
    if groups:
        lines += _table(groups)
        lines += _details(groups, info.target)
    if result.accepted:
        lines += _accepted(result)
    if result.errors:
        lines += ["### Errors", ""]
        lines += [f"- {error}" for error in result.errors]
        lines.append("")
    if result.skipped:
        lines += ["### Not sent", ""]
        lines += [f"- `{s.location}`: {s.reason}" for s in result.skipped]
        lines.append("")
    if result.unused_known:
        lines += ["### Known differences no longer seen", ""]
        lines += [f"- `{k.pattern}`: {k.reason}" for k in result.unused_known]
        lines.append("")
    lines += [
        f"<sub>{len(result.probes)} probes, {len(result.operations)} fuzzed operations. "
        "A cause (`group`) or a single location (`location`) can be listed in a "
        "known-differences file (`--known-differences`) to accept it.</sub>",
        "",
    ]
    return "\n".join(lines)


def _seen_in(group: Group[Difference]) -> str:
    """The probes a cause was seen in: the one probe, or a folded list by operation."""
    probes = group.seen_in
    if len(probes) == 1:
        return _code(str(probes[0]))
    by_operation: dict[str, list[str]] = {}
    for difference in group.items:
        names = by_operation.setdefault(difference.operation or "other", [])
        if difference.probe not in names:
            names.append(difference.probe)
    listed = "<br>".join(
        f"{html.escape(operation)}: "
        + ", ".join(f"<code>{html.escape(name)}</code>" for name in names)
        for operation, names in by_operation.items()
    )
    summary = f"{_plural(len(probes), 'probe')}, {_plural(len(group.operations), 'operation')}"
    return f"<details><summary>{summary}</summary>{listed}</details>"


def _cause_cell(group: Group[Difference]) -> str:
    """The cause, and for a body field (`$..clicks`) the exact places it was seen."""
    cell = _cell(_code(group.cause), 90)
    places = [
        location.removeprefix("body ")
        for location in group.locations
        if location.startswith("body ") and location != group.cause
    ]
    if places:
        listed = ", ".join(f"<code>{html.escape(place)}</code>" for place in places)
        cell += f"<br><sub>at {listed}</sub>"
    return cell


def _table(groups: list[Group[Difference]]) -> list[str]:
    lines = [
        "| # | Cause | Kind | Seen in | Emulator | Target | Contract agrees with |",
        "|---|---|---|---|---|---|---|",
    ]
    for number, group in enumerate(groups, 1):
        example = group.example
        lines.append(
            f"| {number} | {_cause_cell(group)} | {group.kind} "
            f"| {_seen_in(group)} | {_cell(example.emulator)} "
            f"| {_cell(example.target)} | {_SIDE[example.contract]} |"
        )
    return [*lines, ""]


def _details(groups: list[Group[Difference]], target: str) -> list[str]:
    lines = ["<details><summary>Requests to reproduce (one per cause)</summary>", ""]
    for number, group in enumerate(groups, 1):
        d = group.example.item
        lines.append(f"**{number}. {_code(group.cause)}** — in `{d.probe}`: `{d.request}`")
        lines.append("")
        if d.detail:
            lines += ["```text", d.detail.strip(), "```"]
        if d.curl:
            lines += ["```sh", d.curl, "```"]
        lines.append("")
    lines += [
        "`$EIGHTHERE_TOKEN` is an access token of the same application:",
        "",
        "```sh",
        f"EIGHTHERE_TOKEN=$(curl -s -X POST '{target}/api/api-applications/token' "
        '-H \'Content-Type: application/json\' -d "{\\"clientId\\": \\"$EIGHTHERE_CLIENT_ID\\", '
        '\\"clientSecret\\": \\"$EIGHTHERE_CLIENT_SECRET\\"}" | jq -r .accessToken)',
        "```",
        "",
        "</details>",
        "",
    ]
    return lines


def _accepted(result: DriftResult) -> list[str]:
    groups = result.accepted_groups()
    accepted = result.accepted
    lines = [
        f"### Accepted differences: {_plural(len(groups), 'cause')}, "
        f"{_plural(len(accepted), 'occurrence')}",
        "",
    ]
    for entry, covered in result.known:
        if not covered:
            continue
        probes = len({d.probe for d in covered})
        causes = ", ".join(_code(c) for c in dict.fromkeys(d.cause for d in covered))
        lines.append(
            f"- `{entry.pattern}` covered {_plural(len(covered), 'occurrence')} in "
            f"{_plural(probes, 'probe')} ({causes}): {entry.reason}"
        )
    return [*lines, ""]


def junit(result: DriftResult) -> str:
    suites = ET.Element("testsuites", name="8here contract drift")
    by_case: dict[tuple[str, str], list[Difference]] = defaultdict(list)
    for d in result.differences:
        suite = "drift.differential" if d.layer == "differential" else "drift.conformance"
        by_case[suite, d.probe].append(d)
    groups = result.drift_groups()
    # Each failure names its cause as the Markdown report numbers it.
    label = {
        g.key: f"cause {number} of {len(groups)}: {g.cause} (in {_plural(len(g.seen_in), 'probe')})"
        for number, g in enumerate(groups, 1)
    }
    skipped = {s.location: s.reason for s in result.skipped}
    cases = {
        "drift.differential": result.probes,
        "drift.conformance": [f"conformance {op}" for op in result.operations],
    }
    for suite_name, names in cases.items():
        extra = [name for (s, name) in by_case if s == suite_name and name not in names]
        extra += [
            n
            for n in skipped
            if (n.startswith("conformance ")) == (suite_name == "drift.conformance")
            and n not in names
        ]
        all_names = list(dict.fromkeys([*names, *extra]))
        suite = ET.SubElement(suites, "testsuite", name=suite_name, tests=str(len(all_names)))
        failures = skipped_count = 0
        for name in all_names:
            case = ET.SubElement(suite, "testcase", classname=suite_name, name=name)
            found = by_case.get((suite_name, name), [])
            open_ones = [d for d in found if d.accepted is None]
            if name in skipped:
                ET.SubElement(case, "skipped", message=skipped[name])
                skipped_count += 1
            elif open_ones:
                failures += 1
                failure = ET.SubElement(
                    case,
                    "failure",
                    message="; ".join(
                        dict.fromkeys(label[by_cause(d.occurrence())] for d in open_ones)
                    )[:500],
                    type="drift",
                )
                failure.text = "\n\n".join(
                    _junit_text(d, label[by_cause(d.occurrence())]) for d in open_ones
                )
            if found and not open_ones:
                out = ET.SubElement(case, "system-out")
                out.text = "\n".join(f"accepted: {d.location}: {d.accepted}" for d in found)
        suite.set("failures", str(failures))
        suite.set("skipped", str(skipped_count))
        suite.set("errors", "0")
    if result.errors:
        suite = ET.SubElement(
            suites, "testsuite", name="drift.run", tests="1", failures="0", errors="1", skipped="0"
        )
        case = ET.SubElement(suite, "testcase", classname="drift.run", name="run")
        error = ET.SubElement(case, "error", message="the drift check did not run completely")
        error.text = "\n".join(result.errors)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, "unicode") + "\n"


def _junit_text(d: Difference, cause: str) -> str:
    lines = [
        f"{d.location}",
        f"  {cause}",
        f"  request:  {d.request}",
        f"  emulator: {d.emulator}",
        f"  target:   {d.target}",
        f"  contract agrees with: {d.contract}",
    ]
    if d.detail:
        lines.append("  " + d.detail.strip().replace("\n", "\n  "))
    if d.curl:
        lines.append(f"  reproduce: {d.curl}")
    return "\n".join(lines)
