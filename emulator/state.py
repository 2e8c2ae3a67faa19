"""Everything the emulator holds, built from settings, and rebuilt from them on reset."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from emulator import errors
from emulator.auth import TokenService
from emulator.clock import Clock
from emulator.faults import FaultPlan
from emulator.fence import Fence
from emulator.journal import Journal
from emulator.latency import Latency
from emulator.live_store import LiveStore
from emulator.proxy.log import CheckLog
from emulator.ratelimit import RateLimiter
from emulator.registry import Registry
from emulator.serialize import RenderedLinks
from emulator.settings import Settings
from emulator.store import LinkQuery, SandboxStore
from emulator.visits import BulkVisits

if TYPE_CHECKING:
    from emulator.scenario import Scenario

# The default set whole; of a large generated one, the first pages a client walks (rendering
# takes about 4 ms a link).
WARM_UP_LINKS = 500
_WARM_PAGE = 100


def load_sandbox(settings: Settings) -> SandboxStore:
    if settings.sandbox_size is not None:
        from emulator import sandbox

        return SandboxStore(sandbox.generate(settings.sandbox_size))
    from emulator import sample_set

    return SandboxStore(
        sample_set.load_sample_set(settings.resolved_fixtures_dir / sample_set.FILE_NAME)
    )


class EmulatorState:
    """The sample set is immutable and kept across resets; everything else starts again, from
    the start scenario when the settings name one (a ScenarioError here names its problem)."""

    def __init__(self, settings: Settings, sandbox: SandboxStore | None = None) -> None:
        self.settings = settings
        self.sandbox = sandbox if sandbox is not None else load_sandbox(settings)
        self.rendered = RenderedLinks(settings.short_base)
        self.start_scenario: Scenario | None = None
        if settings.scenarios:
            from emulator import scenario

            self.start_scenario = scenario.load(list(settings.scenarios), settings, self.sandbox)
        self.live = LiveStore.open(settings.live_db_path, seed=settings.seed)
        self.fence = Fence()
        self._warm_lock = threading.Lock()
        self._warm = False
        # What the proxy's checks found (`8here-emulator proxy`); empty under `serve`.
        self.checks = CheckLog()
        self._build()
        self.scenario = self.start_scenario
        if self.start_scenario is not None:
            self.start_scenario.apply(self)

    def _build(self) -> None:
        settings = self.settings
        self.clock = Clock()
        self.registry = Registry.from_file(settings.resolved_fixtures_dir / "applications.json")
        self.tokens = TokenService(
            self.registry, self.clock, settings.token_ttl_seconds, settings.rate_limit_per_minute
        )
        self.limiter = RateLimiter(self.clock)
        self.journal = Journal(settings.journal_size, known_secrets=self.known_secrets)
        self.faults = FaultPlan()
        self.latency = Latency(None, settings.latency_scale)

    def known_secrets(self) -> list[str]:
        """Every secret the emulator knows of, for masking: client secrets, the control token."""
        known = [app.client_secret for app in self.registry.applications()]
        if self.settings.control_token:
            known.append(self.settings.control_token)
        return known

    def record_visits(self, bulk: BulkVisits) -> tuple[int, str]:
        """Record visits to a live link: (how many, the link's id); 404 for an unknown slug."""
        found = self.live.find_slug(bulk.slug)
        if found is None:
            raise errors.ApiError(404, "link_not_found", f"No live link with slug {bulk.slug!r}.")
        link_id = found.link_id
        if bulk.template.at < found.created_at:
            raise errors.validation_failed("at", "at is before the link was created.")
        visits = bulk.visits(first_visitor=self.live.visit_count(link_id))
        return self.live.record_visits(link_id, visits), link_id

    def throwaway_copy(self) -> EmulatorState:
        """A state that answers as this one would at this moment, and that nothing it is asked
        can change this one: for answering a request only to see the answer (the proxy's
        shadow of a forwarded request). It shares what no API request changes (the sample set
        and its rendered pages, the applications) and has its own clock (frozen now), copy of
        the live links (in memory), token key, rate windows, journal, faults and reset fence."""
        copy = object.__new__(EmulatorState)
        copy.settings = self.settings
        copy.sandbox = self.sandbox
        copy.rendered = self.rendered
        copy.live = self.live.copy_in_memory()
        copy.fence = Fence()
        copy._warm_lock = self._warm_lock
        copy._warm = self._warm
        copy.clock = Clock(frozen_at=self.clock.now())
        copy.registry = self.registry
        copy.tokens = TokenService(
            copy.registry,
            copy.clock,
            self.settings.token_ttl_seconds,
            self.settings.rate_limit_per_minute,
        )
        copy.limiter = RateLimiter(copy.clock)
        copy.journal = Journal(1)
        copy.faults = FaultPlan()
        copy.checks = CheckLog()
        # A shadow answer waits for nothing: delays change no answer.
        copy.latency = Latency(None)
        copy.start_scenario = self.start_scenario
        copy.scenario = self.scenario
        return copy

    def reset(self) -> None:
        """Back to the start: the start scenario, or the fixtures alone. Requests in flight are
        fenced off (see `emulator.fence`)."""
        self._rebuild(self.start_scenario)

    def load_scenario(self, scenario: Scenario) -> None:
        """Back to the fixtures, then `scenario` (compiled, so checked, already)."""
        self._rebuild(scenario)

    def _rebuild(self, scenario: Scenario | None) -> None:
        with self.fence.advance():
            self.checks.clear()
            self._build()
            self.scenario = scenario
            if scenario is None:
                self.live.clear()
            else:
                scenario.apply(self)  # its links replace the old ones in one transaction

    @property
    def warm(self) -> bool:
        """Whether `warm_up` has run to its end."""
        return self._warm

    def warm_up(self) -> int:
        """Render the sample set's list items, QR codes included, so that no request pays for
        them; returns how many. Once per state: a second caller waits for the first."""
        count = min(len(self.sandbox), WARM_UP_LINKS)
        with self._warm_lock:
            if not self._warm:
                for offset in range(0, count, _WARM_PAGE):  # the default order's first pages
                    query = LinkQuery(limit=min(_WARM_PAGE, count - offset), offset=offset)
                    for link in self.sandbox.query(query).items:
                        self.rendered.summary(link)
                self._warm = True
        return count

    def close(self) -> None:
        self.live.close()
