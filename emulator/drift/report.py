"""The drift report as Markdown (a CI job summary), JSON, or JUnit XML (CI test views)."""

from __future__ import annotations

from collections import defaultdict
from xml.etree import ElementTree as ET

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


def markdown(result: DriftResult) -> str:
    info = result.info
    drift, accepted = result.drift, result.accepted
    if drift:
        headline = f"## ❌ Contract drift: {len(drift)} difference{'s' if len(drift) != 1 else ''}"
    elif result.errors:
        headline = "## ⚠️ Drift check incomplete"
    else:
        headline = "## ✅ No contract drift"
    lines = [
        headline,
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
    if drift:
        lines += _table(drift)
        lines += _details(drift, info.target)
    if accepted:
        lines += [f"### Accepted differences ({len(accepted)})", ""]
        lines += [f"- `{d.location}`: {d.accepted}" for d in accepted]
        lines.append("")
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
        lines += [f"- `{k.location}`: {k.reason}" for k in result.unused_known]
        lines.append("")
    lines += [
        f"<sub>{len(result.probes)} probes, {len(result.operations)} fuzzed operations. "
        "Locations can be listed in a known-differences file (`--known-differences`) to accept "
        "them.</sub>",
        "",
    ]
    return "\n".join(lines)


def _table(differences: list[Difference]) -> list[str]:
    lines = [
        "| Where | Emulator | Target | Contract agrees with |",
        "|---|---|---|---|",
    ]
    for d in differences:
        lines.append(
            f"| {_cell(_code(d.location), 90)} | {_cell(d.emulator)} | {_cell(d.target)} "
            f"| {_SIDE[d.contract]} |"
        )
    return [*lines, ""]


def _details(differences: list[Difference], target: str) -> list[str]:
    lines = ["<details><summary>Requests to reproduce</summary>", ""]
    for d in differences:
        lines.append(f"**{d.location}** — `{d.request}`")
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


def junit(result: DriftResult) -> str:
    suites = ET.Element("testsuites", name="8here contract drift")
    by_case: dict[tuple[str, str], list[Difference]] = defaultdict(list)
    for d in result.differences:
        suite = "drift.differential" if d.layer == "differential" else "drift.conformance"
        name = d.location.split(": ", 1)[0]
        by_case[suite, name].append(d)
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
                    message="; ".join(d.aspect for d in open_ones)[:500],
                    type="drift",
                )
                failure.text = "\n\n".join(_junit_text(d) for d in open_ones)
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


def _junit_text(d: Difference) -> str:
    lines = [
        f"{d.location}",
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
