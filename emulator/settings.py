"""Frozen settings, and where the packaged contract and fixtures live."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _packaged_dir(name: str) -> Path:
    """`contract/` or `fixtures/`: inside the wheel as `emulator/_<name>`, beside the package in a
    source checkout."""
    for candidate in (_PACKAGE_DIR / f"_{name}", _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the packaged {name}/ folder is missing from this installation")


def contract_path() -> Path:
    return _packaged_dir("contract") / "openapi.yaml"


def default_fixtures_dir() -> Path:
    return _packaged_dir("fixtures")


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    db_path: str | None = None
    fixtures_dir: Path | None = None
    sandbox_size: int | None = None
    short_base: str = "https://8here.in"
    control: bool = True
    # Whether an API request's X-Emulator-Fault header injects its fault (only with the control
    # API on: --no-control turns it off too).
    request_faults: bool = True
    control_token: str | None = field(default=None, repr=False)
    cors_origins: tuple[str, ...] = ("*",)
    # Host names the control API answers for besides IP literals, localhost and *.localhost
    # (hosts.HostPolicy): e.g. the emulator's service name in a compose network.
    allowed_hosts: tuple[str, ...] = ()
    # Pins the secret that live link ids and generated slugs derive from (live_store.py); None: a
    # random secret, kept in the database file.
    seed: int | None = None
    # A request whose head or body has not arrived this long after it began is closed (408).
    request_timeout_seconds: float = 10.0
    journal_size: int = 1000
    # Replaces the sandbox's 15/min and every live workspace's threshold; an application
    # registered with a limit of its own keeps it.
    rate_limit_per_minute: int | None = None
    token_ttl_seconds: int = 3600
    max_body_bytes: int = 64 * 1024
    # Scenario files or shipped names, merged in order: the state every start and reset gives.
    # Their live links are kept in memory, never in the db_path file (see live_db_path).
    scenarios: tuple[str, ...] = ()
    # Multiplies every delay of a scenario's latency profile; 0 switches them off.
    latency_scale: float = 1.0
    # Render the sample set's QR codes in a background thread once serving (see
    # EmulatorState.warm_up), so the first walk through the links is as fast as the next.
    warm_up: bool = False

    @property
    def live_db_path(self) -> str | None:
        """The file live links are kept in: none with a scenario, whose links every start and
        reset rebuilds, so that it never empties a file of links kept for later."""
        return None if self.scenarios else self.db_path

    @property
    def resolved_fixtures_dir(self) -> Path:
        return self.fixtures_dir if self.fixtures_dir is not None else default_fixtures_dir()
