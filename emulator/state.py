"""Everything the emulator holds, built from settings, and rebuilt from them on reset."""

from __future__ import annotations

from emulator.auth import TokenService
from emulator.clock import Clock
from emulator.faults import FaultPlan
from emulator.journal import Journal
from emulator.live_store import LiveStore
from emulator.ratelimit import RateLimiter
from emulator.registry import Registry
from emulator.serialize import RenderedLinks
from emulator.settings import Settings
from emulator.store import SandboxStore


def load_sandbox(settings: Settings) -> SandboxStore:
    from emulator import sandbox

    if settings.sandbox_size is not None:
        return SandboxStore(sandbox.generate(settings.sandbox_size))
    return SandboxStore(
        sandbox.load_sample_set(settings.resolved_fixtures_dir / "sandbox_links.json")
    )


class EmulatorState:
    """The sample set is immutable and kept across resets; everything else starts again."""

    def __init__(self, settings: Settings, sandbox: SandboxStore | None = None) -> None:
        self.settings = settings
        self.sandbox = sandbox if sandbox is not None else load_sandbox(settings)
        self.rendered = RenderedLinks(settings.short_base)
        self.live = LiveStore.open(settings.db_path)
        self._build()

    def _build(self) -> None:
        settings = self.settings
        self.clock = Clock()
        self.registry = Registry.from_file(settings.resolved_fixtures_dir / "applications.json")
        self.tokens = TokenService(self.registry, self.clock, settings.token_ttl_seconds)
        self.limiter = RateLimiter(self.clock)
        self.journal = Journal(settings.journal_size)
        self.faults = FaultPlan()

    def reset(self) -> None:
        self.live.clear()
        self._build()

    def close(self) -> None:
        self.live.close()
