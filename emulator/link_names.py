"""Live link ids and generated slugs, derived from a store's secret and a link's number.

Without the secret they cannot be guessed, and they say nothing of other links (how many there
are, or whose they are); with the same secret they come out the same, so a seeded emulator (and
a database file, which keeps its secret) gives the same ids on every run.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SECRET_BYTES = 32
SLUG_LENGTH = 8  # 36**8: about 2.8e12 slugs, 41 bits
_SLUG_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def random_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def seed_secret(seed: int) -> bytes:
    """The secret a `--seed N` pins."""
    return hashlib.sha256(f"8here-emulator seed {seed}".encode()).digest()


class LinkNames:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _digest(self, purpose: str, number: int, attempt: int) -> bytes:
        message = f"{purpose}:{number}:{attempt}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def link_id(self, number: int, attempt: int = 0) -> str:
        """`lnk_` and 16 hex digits, like the sample set's ids."""
        return "lnk_" + self._digest("id", number, attempt).hex()[:16]

    def slug(self, number: int, attempt: int = 0) -> str:
        value = int.from_bytes(self._digest("slug", number, attempt)[:8], "big")
        characters = []
        for _ in range(SLUG_LENGTH):
            value, digit = divmod(value, len(_SLUG_ALPHABET))
            characters.append(_SLUG_ALPHABET[digit])
        return "".join(characters)
