"""The two response shapes of the emulator: JSON bodies and error envelopes."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import Response

from emulator.errors import ApiError
from emulator.serialize import dumps


def json_response(
    body: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return bytes_response(dumps(body), status, headers)


def bytes_response(
    body: bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON body already encoded."""
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def error_response(error: ApiError) -> Response:
    return json_response(error.body(), error.status, error.headers)
