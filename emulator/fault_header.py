"""The `X-Emulator-Fault` request header: one API request's own fault, read into the body that
`POST /_emulator/faults` takes, so that `faults.parse_fault` checks both the same way.

    X-Emulator-Fault = [ item *( OWS ";" OWS item ) ]
    item             = status / name OWS "=" OWS value
    status           = 1*DIGIT                     ; 400-599
    name             = "status" / "retry-after" / "delay-ms" / "network" / "dribble-ms"
    value            = 1*DIGIT                     ; for every name but network
                     / "reset" / "empty" / "garbage" / "truncated" / "dribble"

Names and kinds are case-insensitive, and the hyphen in a name is optional (`retry-after`,
`Retry-After` and `retryAfter` are one name); each name comes at most once. An empty value asks
for no fault. `503`, `429; retry-after=20`, `network=reset`, `network=dribble; dribble-ms=3000`.
"""

from __future__ import annotations

from emulator import errors

HEADER = "X-Emulator-Fault"
# The header's names, folded (lower case, no hyphen), and the control API's field for each.
_FIELDS = {
    "status": "status",
    "retryafter": "retryAfter",
    "delayms": "delayMs",
    "network": "network",
    "dribblems": "dribbleMs",
}
_NAMES = "status, retry-after, delay-ms, network or dribble-ms"
# Longer numbers are out of every range: they are read as this, which parse_fault refuses.
_MAX_DIGITS = 18
_SHOWN_CHARS = 40
_OWS = " \t"


def fault_body(value: str) -> dict[str, object]:
    """`429; retry-after=20` → `{"status": 429, "retryAfter": 20}`; `{}` for an empty value.
    Raises 400 `invalid_header` for a value outside the grammar."""
    if not value.strip(_OWS):
        return {}
    body: dict[str, object] = {}
    for raw in value.split(";"):
        item = raw.strip(_OWS)
        if not item:
            raise _invalid("it has an empty item (a ';' with nothing on one side).")
        name, equals, given = item.partition("=")
        if equals:
            field = _FIELDS.get(name.strip(_OWS).lower().replace("-", ""))
            if field is None:
                raise _invalid(f"unknown name {_shown(name.strip(_OWS))}: use {_NAMES}.")
            text = given.strip(_OWS)
        else:
            field, text = "status", item
        if field in body:
            raise _invalid(f"{field} is given more than once.")
        body[field] = text.lower() if field == "network" else _number(field, text, bare=not equals)
    return body


def _number(field: str, text: str, *, bare: bool) -> int:
    if not (text.isascii() and text.isdigit()):
        if bare:
            raise _invalid(f"{_shown(text)} is neither a status (e.g. 503) nor name=value.")
        raise _invalid(f"{field} must be a whole number, not {_shown(text)}.")
    return int(text) if len(text) <= _MAX_DIGITS else 10**_MAX_DIGITS


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…")


def _invalid(message: str) -> errors.ApiError:
    return errors.invalid_header(HEADER, message)
