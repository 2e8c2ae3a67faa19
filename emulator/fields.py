"""Fields of decoded JSON bodies (control API, faults, visits): typed and bounded, or the wire
error that names them (400 for a wrong JSON type, 422 for a missing or out-of-range value)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import overload

from emulator import errors


def text(body: Mapping[str, object], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise errors.validation_failed(name, f"{name} is required.")
        return None
    if not isinstance(value, str):
        raise errors.invalid_request(f"{name} must be a string.", name)
    if required and not value:
        raise errors.validation_failed(name, f"{name} must not be empty.")
    return value


def whole(
    body: Mapping[str, object], name: str, low: int, high: int, *, required: bool = False
) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise errors.validation_failed(name, f"{name} is required.")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.invalid_request(f"{name} must be an integer.", name)
    if not low <= value <= high:
        raise errors.validation_failed(name, f"{name} must be from {low} to {high}.")
    return value


def number(
    body: Mapping[str, object], name: str, low: float, high: float, *, required: bool = False
) -> float | None:
    """An integer or a decimal number from `low` to `high`."""
    value = body.get(name)
    if value is None:
        if required:
            raise errors.validation_failed(name, f"{name} is required.")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise errors.invalid_request(f"{name} must be a number.", name)
    if not (math.isfinite(value) and low <= value <= high):
        raise errors.validation_failed(name, f"{name} must be from {low:g} to {high:g}.")
    return value


def join(prefix: str, name: str | None) -> str:
    """`prefix` and a field inside it: `links[2]` and `slug` give `links[2].slug`."""
    if not name:
        return prefix
    if not prefix:
        return name
    return prefix + name if name.startswith("[") else f"{prefix}.{name}"


@contextmanager
def within(prefix: str) -> Iterator[None]:
    """Errors raised inside name their field from `prefix` (`default.lognormal` and `p99` give
    `default.lognormal.p99`), for values nested in a larger body."""
    try:
        yield
    except errors.ApiError as error:
        raise dataclasses.replace(error, field=join(prefix, error.field)) from None


@overload
def flag(body: Mapping[str, object], name: str, default: bool) -> bool: ...
@overload
def flag(body: Mapping[str, object], name: str, default: None) -> bool | None: ...
def flag(body: Mapping[str, object], name: str, default: bool | None) -> bool | None:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise errors.invalid_request(f"{name} must be a boolean.", name)
    return value
