"""The fence between resets: a request that started before a reset changes nothing after it.

Each HTTP request takes a ticket (the state's generation) when it starts (the request layer puts
it in the request's notes, emulator/notes.py). A reset moves the
generation on. Where a request would change state (journal, rate windows, tokens, live links,
visits, faults, registry, clock) it does so inside `fence.guard(ticket)`, which holds the fence's
lock and refuses a ticket of an older generation with 503 `emulator_reset`; a reset takes the same
lock, so the check and the change are one step against it. The server runs in its own thread and
resets come from the test's thread, hence a lock and not just the event loop's turn-taking.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypeVar

from emulator import errors
from emulator.notes import notes_of

# How soon a waiting request notices a reset and gives up its wait.
_RESET_POLL_SECONDS = 0.05
T = TypeVar("T")


class Fence:
    def __init__(self) -> None:
        # Reentrant: a guarded change may call code that guards again (a reset inside a guard
        # only ever happens on one thread, the in-process client's).
        self._lock = threading.RLock()
        self._generation = 0

    def ticket(self) -> int:
        """The current generation, for a request that starts now."""
        return self._generation

    def is_current(self, ticket: int) -> bool:
        """Whether no reset happened since `ticket` was taken (a hint: guard to act on it)."""
        return ticket == self._generation

    def guard(self, ticket: int) -> Guard:
        """`with fence.guard(ticket): change()`: raises 503 `emulator_reset` for a stale ticket,
        and keeps any reset out until the block ends."""
        return Guard(self, ticket)

    def guard_request(self, scope: Mapping[str, Any]) -> Guard:
        """`guard` with the ticket of the request in `scope`."""
        return Guard(self, notes_of(scope).ticket)

    def if_current(self, ticket: int, action: Callable[[], T]) -> T | None:
        """`action()` when the ticket is current, atomically; None (and nothing done) if not."""
        with self._lock:
            return action() if ticket == self._generation else None

    @contextmanager
    def advance(self) -> Iterator[None]:
        """Move to the next generation; the block (the reset) runs with no guarded change
        in progress, and every ticket taken before it is stale from the first line."""
        with self._lock:
            self._generation += 1
            yield


class Guard:
    __slots__ = ("_fence", "_ticket")

    def __init__(self, fence: Fence, ticket: int) -> None:
        self._fence = fence
        self._ticket = ticket

    def __enter__(self) -> None:
        fence = self._fence
        fence._lock.acquire()
        if self._ticket != fence._generation:
            fence._lock.release()
            raise errors.emulator_reset()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._fence._lock.release()


async def wait(fence: Fence, ticket: int, delay_ms: float) -> None:
    """Sleep `delay_ms` of real time, or until a reset makes the request stale."""
    deadline = time.monotonic() + delay_ms / 1000
    while fence.is_current(ticket):
        left = deadline - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(left, _RESET_POLL_SECONDS))
