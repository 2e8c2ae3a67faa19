"""Request ids: the one a client sent when it is well formed, else a new `req_` and 16 hex digits.

A new id is a counter put through a keyed permutation of 64-bit numbers: unique within a run
(a permutation never maps two counters to one id), not guessable from the ids before it without
the keys, and drawn without a system call (the keys come from the OS once per process). Ids name
requests in logs and journals; they are not secrets and guard nothing.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Callable

CLIENT_ID_PATTERN = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
_MASK = (1 << 64) - 1


def _odd_key() -> int:
    return secrets.randbits(64) | 1  # odd: multiplying by it is a permutation mod 2**64


def id_source() -> Callable[[], str]:
    """A function that makes a new id on each call. Thread-safe (the counter is a C iterator,
    advanced under the GIL)."""
    count = itertools.count(secrets.randbits(64)).__next__
    multiply, add, multiply_again = _odd_key(), secrets.randbits(64), _odd_key()

    def new_id() -> str:
        # Each step is a permutation of 64-bit numbers (multiplying by an odd key, adding a key,
        # xoring a number with its own high bits), so their composition is one too.
        x = (count() * multiply + add) & _MASK
        x = ((x ^ (x >> 31)) * multiply_again) & _MASK
        return "req_%016x" % (x ^ (x >> 29))

    return new_id


new_request_id = id_source()


def client_request_id(value: bytes) -> str | None:
    """A client's `X-Request-Id` value when it is one the emulator echoes, else None."""
    return value.decode("ascii") if CLIENT_ID_PATTERN.fullmatch(value) else None
