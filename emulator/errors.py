"""The one error type of the emulator, with one constructor per wire error code."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass
class ApiError(Exception):
    status: int
    code: str
    message: str
    field: str | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"

    def body(self) -> dict[str, object]:
        error: dict[str, object] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


def invalid_client() -> ApiError:
    return ApiError(401, "invalid_client", "Unknown client or wrong client secret.")


def api_access_disabled() -> ApiError:
    return ApiError(
        403,
        "api_access_disabled",
        "API access is disabled for this workspace; request it from the Requests page.",
    )


def missing_token() -> ApiError:
    return ApiError(
        401,
        "missing_token",
        "An Authorization header with a Bearer token is required.",
        headers={"WWW-Authenticate": "Bearer"},
    )


def invalid_token() -> ApiError:
    return ApiError(
        401,
        "invalid_token",
        "The bearer token is not valid.",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def token_expired() -> ApiError:
    return ApiError(
        401,
        "token_expired",
        "The bearer token has expired; exchange the credentials for a new one.",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token", error_description="expired"'},
    )


def invalid_parameter(name: str, message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message, field=name)


def invalid_header(name: str, message: str) -> ApiError:
    return ApiError(400, "invalid_header", f"{name}: {message}", field=name)


def invalid_request(message: str, field_name: str | None = None) -> ApiError:
    return ApiError(400, "invalid_request", message, field=field_name)


def unsupported_media_type(content_type: str) -> ApiError:
    shown = content_type or "none"
    return ApiError(
        415,
        "unsupported_media_type",
        f"Content-Type must be application/json, not {shown}.",
    )


def payload_too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"The request body exceeds {limit} bytes.")


def validation_failed(field_name: str, message: str) -> ApiError:
    return ApiError(422, "validation_failed", message, field=field_name)


def slug_taken(slug: str) -> ApiError:
    return ApiError(409, "slug_taken", f"The slug '{slug}' is already taken.", field="slug")


def link_quota_exceeded(quota: int) -> ApiError:
    return ApiError(
        403,
        "link_quota_exceeded",
        f"The workspace's public-link quota of {quota} links is used up.",
    )


def link_not_found() -> ApiError:
    return ApiError(404, "link_not_found", "No link with that id.")


def rate_limited(retry_after: int) -> ApiError:
    """The window's X-RateLimit-* headers come with it from the request's notes."""
    return ApiError(
        429,
        "rate_limited",
        f"Rate limit exceeded; retry after {retry_after} seconds.",
        headers={"Retry-After": str(retry_after)},
    )


def not_found(path: str) -> ApiError:
    return ApiError(404, "not_found", f"No route for {path}.")


def method_not_allowed(method: str, allowed: str) -> ApiError:
    return ApiError(
        405,
        "method_not_allowed",
        f"Method {method} is not allowed here.",
        headers={"Allow": allowed},
    )


def control_unauthorized() -> ApiError:
    return ApiError(
        401,
        "control_unauthorized",
        "The control API needs Authorization: Bearer <control token>.",
        headers={"WWW-Authenticate": "Bearer"},
    )


def injected_fault(status: int, headers: Mapping[str, str]) -> ApiError:
    return ApiError(
        status,
        "injected_fault",
        f"Fault injected by the emulator (status {status}).",
        headers=headers,
    )


def emulator_reset() -> ApiError:
    return ApiError(
        503,
        "emulator_reset",
        "The emulator was reset while this request was in flight; it changed nothing.",
    )


def invalid_scenario(message: str, field_name: str | None) -> ApiError:
    """A scenario that cannot be loaded; the message names its file, line and path."""
    return ApiError(422, "invalid_scenario", message, field=field_name)


def application_exists(client_id: str) -> ApiError:
    return ApiError(
        409,
        "application_exists",
        f"An application {client_id!r} is already registered; set replace to replace it.",
        field="clientId",
    )


def workspace_conflict(workspace_id: str, field_name: str, have: object, given: object) -> ApiError:
    return ApiError(
        409,
        "workspace_conflict",
        f"The workspace {workspace_id!r} already exists with {field_name} {json.dumps(have)}, "
        f"not {json.dumps(given)}; set replace to change it.",
        field=field_name,
    )


def host_refused(host: str) -> ApiError:
    shown = host or "none"
    return ApiError(
        403,
        "host_refused",
        f"The control API answers only for an IP address, localhost or a name given with "
        f"--allowed-hosts (EMULATOR_ALLOWED_HOSTS), not for Host {shown!r}.",
    )


def cross_origin_refused(origin: str) -> ApiError:
    return ApiError(
        403,
        "cross_origin_refused",
        f"The control API is same-origin only; a request from {origin!r} is refused.",
    )


def preflight_refused(refused: str) -> ApiError:
    return ApiError(400, "preflight_refused", f"CORS preflight refused: {refused}.")


def headers_too_large(limit: int) -> ApiError:
    return ApiError(431, "headers_too_large", f"The request headers exceed {limit} bytes in total.")


def uri_too_long(limit: int) -> ApiError:
    return ApiError(414, "uri_too_long", f"The request target exceeds {limit} bytes.")


def request_timeout(seconds: float | None = None) -> ApiError:
    within = (
        f"within {seconds:g} seconds" if seconds is not None else "before the connection closed"
    )
    return ApiError(408, "request_timeout", f"The request did not arrive in full {within}.")


def malformed_request() -> ApiError:
    return ApiError(400, "malformed_request", "The request is not valid HTTP/1.1.")


def upstream_unreachable(target: str, reason: str) -> ApiError:
    """The proxy's own answer when the target could not be reached or broke off."""
    return ApiError(
        502,
        "upstream_unreachable",
        f"8here-emulator proxy: no answer from the target {target}: {reason}. "
        "This answer is the proxy's own; the request may not have reached the target.",
    )


def upstream_timeout(target: str, seconds: float) -> ApiError:
    return ApiError(
        504,
        "upstream_timeout",
        f"8here-emulator proxy: the target {target} did not answer within {seconds:g} s. "
        "This answer is the proxy's own; the target may still have handled the request.",
    )
