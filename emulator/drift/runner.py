"""One drift run: reach the target, bring up the emulator to compare with, estimate, then run the
differential probes and the conformance fuzzing, paced, and gather what they find."""

from __future__ import annotations

import random
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

import requests

from emulator.drift import conformance
from emulator.drift.contract import Contract
from emulator.drift.differential import SideState, run_probes
from emulator.drift.model import Difference, DriftResult, KnownDifferences, RunInfo, Skipped
from emulator.drift.pacing import Pacer, Progress, Rate, format_duration
from emulator.drift.probes import Probe, build_probes
from emulator.drift.transport import (
    LINKS_PATH,
    PacedSession,
    SafetyPolicy,
    SetupError,
    Side,
)

EMULATOR_RATE_LIMIT = 1_000_000_000
DRIFT_WORKSPACE = "ws_drift"
LIVE_SAMPLE_LINKS = 30
# Unpaced, a request still takes a round trip; this keeps the estimate honest at high rates.
TYPICAL_ROUND_TRIP_SECONDS = 0.1


@dataclass
class DriftOptions:
    base_url: str
    client_id: str
    client_secret: str
    contract_path: Path
    emulator_url: str | None = None
    emulator_control_token: str | None = None
    max_examples: int = 10
    seed: int | None = None
    rate: Rate | None = field(default_factory=lambda: Rate(15, 60.0))
    allow_writes: bool = False
    conformance: bool = True
    differential: bool = True
    known: KnownDifferences = field(default_factory=KnownDifferences)
    timeout: float = 30.0
    progress: TextIO | None = None


def _say(options: DriftOptions, message: str) -> None:
    if options.progress is not None:
        options.progress.write(f"drift: {message}\n")
        options.progress.flush()


class EmulatorEnd:
    """The emulator to compare with: started in-process, or the one at `--emulator-url`."""

    def __init__(self, options: DriftOptions, stack: ExitStack) -> None:
        self.options = options
        if options.emulator_url:
            self.url = options.emulator_url.rstrip("/")
            self.in_process = False
        else:
            from emulator.testing import EmulatorServer

            server = EmulatorServer()
            try:
                server.start()
            except (RuntimeError, OSError) as exc:
                raise SetupError(f"the in-process emulator did not start ({exc})") from None
            stack.callback(server.stop)
            self.url = server.url
            self.in_process = True

    def register(self, environment: str) -> bool:
        """Give the emulator the target's application (same id and secret, same environment)
        with a limit it never reaches; `False` if its control API refused."""
        options = self.options
        body: dict[str, object] = {
            "clientId": options.client_id,
            "clientSecret": options.client_secret,
            "environment": "live" if environment == "live" else "sandbox",
            "rateLimitPerMinute": EMULATOR_RATE_LIMIT,
            "replace": True,  # the demo app's id, say: this run's settings win
        }
        if environment == "live":  # sandbox applications share the sandbox workspace
            body |= {"workspaceId": DRIFT_WORKSPACE, "linkQuota": 1_000_000}
        headers = {}
        if options.emulator_control_token:
            headers["Authorization"] = f"Bearer {options.emulator_control_token}"
        try:
            response = requests.post(
                f"{self.url}/_emulator/applications",
                json=body,
                headers=headers,
                timeout=options.timeout,
            )
        except requests.ConnectionError:
            raise SetupError(f"the emulator at {self.url} is unreachable") from None
        except requests.RequestException as exc:
            raise SetupError(f"the emulator at {self.url} failed ({type(exc).__name__})") from None
        return response.status_code == 201


def _seed_live_links(side: Side) -> None:
    """A live workspace on the emulator starts empty; give the list probes something to list."""
    headers = {"Authorization": f"Bearer {side.bearer()}"}
    listed = side.session.get(side.url(LINKS_PATH), params={"limit": 1}, headers=headers)
    total = listed.json().get("pagination", {}).get("total", 0) if listed.ok else 0
    for number in range(total, LIVE_SAMPLE_LINKS):
        side.session.post(
            side.url(LINKS_PATH),
            json={
                "title": f"Drift sample {number}",
                "destination": f"https://example.com/drift/{number}",
            },
            headers=headers,
        )


def _sent_to_target(probes: list[Probe], allow_create: bool) -> int:
    return sum(1 for p in probes if allow_create or not p.writes)


def run_drift(options: DriftOptions) -> DriftResult:
    """Run both layers; raises `SetupError` when the check cannot run at all."""
    try:
        contract = Contract.load(options.contract_path)
    except (OSError, ValueError) as exc:
        raise SetupError(f"the contract {options.contract_path} cannot be read ({exc})") from None
    started = time.monotonic()
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**31)
    pacer = Pacer(options.rate)
    progress = Progress(options.progress, pacer.interval)
    base_path = urlsplit(options.base_url).path.rstrip("/")
    target_session = PacedSession(pacer, SafetyPolicy(base_path), progress, timeout=options.timeout)
    target = Side(
        "target", options.base_url, target_session, options.client_id, options.client_secret
    )
    with ExitStack() as stack:
        stack.callback(target_session.close)
        progress.plan(1)
        target.exchange_token()
        environment = target.environment
        allow_create = environment == "sandbox" or options.allow_writes
        target_session.policy = replace(target_session.policy, allow_create=allow_create)

        emulator_end = EmulatorEnd(options, stack)
        registered = emulator_end.register(environment)
        emulator_pacer = Pacer(None if registered else options.rate)
        emulator_session = PacedSession(
            emulator_pacer, SafetyPolicy(allow_create=True), timeout=options.timeout
        )
        stack.callback(emulator_session.close)
        emulator = Side(
            "emulator", emulator_end.url, emulator_session, options.client_id, options.client_secret
        )
        try:
            emulator.exchange_token()
        except SetupError as exc:
            if registered:
                raise
            raise SetupError(
                f"{exc}; its control API did not take the application either (run it with the "
                "control API on, or pass --emulator-control-token)"
            ) from None
        if emulator.environment == "live" and registered:
            _seed_live_links(emulator)

        layers = [
            name
            for name, on in (
                ("differential", options.differential),
                ("conformance", options.conformance),
            )
            if on
        ]
        info = RunInfo(
            target=options.base_url,
            emulator=emulator_end.url + (" (in-process)" if emulator_end.in_process else ""),
            environment=environment,
            client_id=options.client_id,
            rate_limit=str(options.rate) if options.rate else "no limit",
            seed=seed,
            max_examples=options.max_examples,
            layers=layers,
            writes_allowed=allow_create,
            started_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        result = DriftResult(info)
        if not registered:
            _say(
                options,
                f"the emulator at {emulator_end.url} refused to register the "
                "application; using its own, paced like the target",
            )

        probes = build_probes(environment) if options.differential else []
        operations = conformance.operation_ids(options.contract_path) if options.conformance else []
        planned = _sent_to_target(probes, allow_create) + (
            conformance.planned_requests(operations, options.max_examples, allow_create)
            if options.conformance
            else 0
        )
        info.estimate_seconds = planned * max(pacer.interval, TYPICAL_ROUND_TRIP_SECONDS)
        progress.plan(planned)
        _say(
            options,
            f"target {options.base_url} ({environment}, client {options.client_id}); "
            f"emulator {info.emulator}",
        )
        _say(
            options,
            f"about {planned} requests to the target at ≤ {info.rate_limit}: estimated "
            f"{format_duration(info.estimate_seconds)}"
            + ("" if allow_create else "; creates not sent (not a sandbox, no --allow-writes)"),
        )

        if options.differential:
            progress.set_phase("probes")
            result.probes = [p.name for p in probes]
            found = run_probes(
                probes, SideState(target), SideState(emulator), contract, allow_create=allow_create
            )
            for item in found:
                if isinstance(item, Difference):
                    result.differences.append(item)
                elif isinstance(item, Skipped):
                    result.skipped.append(item)
                else:
                    result.errors.append(item)
        if options.conformance:
            progress.set_phase("fuzzing")
            fuzzed = conformance.run_conformance(
                options.contract_path,
                target,
                emulator,
                max_examples=options.max_examples,
                seed=seed,
                allow_create=allow_create,
                on_unused=lambda n: progress.plan(-n),
            )
            result.operations = fuzzed.operations
            result.differences += fuzzed.differences
            result.skipped += fuzzed.skipped
            result.errors += fuzzed.errors
            if fuzzed.refused:
                result.skipped.append(
                    Skipped(
                        "conformance",
                        f"{fuzzed.refused} generated requests not sent (unsafe or unserialisable)",
                    )
                )
        progress.finish()
        result.differences = [options.known.apply(d) for d in result.differences]
        result.known = options.known.coverage()
        info.target_requests = target_session.sent
        info.emulator_requests = emulator_session.sent
        info.duration_seconds = time.monotonic() - started
    return result
