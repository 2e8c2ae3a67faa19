"""The fixed, ordered probe set of the differential layer.

Every probe goes to the target and then to the emulator. Placeholders in a path or body
(`{listed_id}`, `{listed_slug}`, `{created_id}`, `{client_id}`, `{client_secret}`) are filled from
each side's own earlier answers, so no probe assumes that both sides hold the same data.
`checks` names the meaning properties (see `properties.py`) evaluated on each side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from emulator.paths import LINKS_PATH, TOKEN_PATH

Auth = Literal["token", "none", "invalid"]

SORT_KEYS = ("createdAt", "updatedAt", "title", "clicks")
SORT_ORDERS = ("desc", "asc")
UNKNOWN_LINK_ID = "lnk_drift_does_not_exist_0"
INVALID_TOKEN = "drift-check-invalid-token"
DESTINATION = "https://example.com/8here-drift-check"


@dataclass(frozen=True)
class Probe:
    name: str
    operation: str
    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    json_body: Any = None
    raw_body: bytes | None = None
    content_type: str | None = None
    auth: Auth = "token"
    expect_status: int | None = None
    expect_code: str | None = None
    expect_field: str | None = None
    writes: bool = False
    checks: tuple[str, ...] = ()

    @property
    def query_dict(self) -> dict[str, str]:
        return dict(self.query)

    @property
    def counted(self) -> bool:
        """A links call with a valid token: the contract puts rate-limit headers on its answer."""
        return self.operation != "createToken" and self.auth == "token"

    def describe(self) -> str:
        query = "&".join(f"{k}={v if len(v) <= 24 else v[:21] + '...'}" for k, v in self.query)
        return f"{self.method} {self.path}" + (f"?{query}" if query else "")


def _list(
    name: str, *query: tuple[str, str], checks: tuple[str, ...] = ("page",), status: int = 200
) -> Probe:
    return Probe(
        name, "listLinks", "GET", LINKS_PATH, query=query, expect_status=status, checks=checks
    )


def _bad(name: str, parameter: str, value: str) -> Probe:
    return Probe(
        f"list.bad.{name}",
        "listLinks",
        "GET",
        LINKS_PATH,
        query=((parameter, value),),
        expect_status=400,
        expect_code="invalid_parameter",
        expect_field=parameter,
    )


def _create(
    name: str,
    body: Any = None,
    *,
    status: int,
    code: str | None = None,
    field: str | None = None,
    raw: bytes | None = None,
    content_type: str | None = None,
    checks: tuple[str, ...] = (),
) -> Probe:
    return Probe(
        f"create.{name}",
        "createLink",
        "POST",
        LINKS_PATH,
        json_body=body,
        raw_body=raw,
        content_type=content_type,
        expect_status=status,
        expect_code=code,
        expect_field=field,
        writes=True,
        checks=checks,
    )


def build_probes(environment: str) -> list[Probe]:
    """The probes, in the order they are sent. Creates are marked `writes`; the runner leaves
    them out on a live target without --allow-writes."""
    credentials = {"clientId": "{client_id}", "clientSecret": "{client_secret}"}
    token = [
        Probe(
            "token.good",
            "createToken",
            "POST",
            TOKEN_PATH,
            json_body=credentials,
            auth="none",
            expect_status=200,
            checks=("token",),
        ),
        Probe(
            "token.wrong_secret",
            "createToken",
            "POST",
            TOKEN_PATH,
            json_body={"clientId": "{client_id}", "clientSecret": "drift-wrong-secret"},
            auth="none",
            expect_status=401,
            expect_code="invalid_client",
        ),
        Probe(
            "token.unknown_client",
            "createToken",
            "POST",
            TOKEN_PATH,
            json_body={"clientId": "drift_unknown_client", "clientSecret": "drift-secret"},
            auth="none",
            expect_status=401,
            expect_code="invalid_client",
        ),
        Probe(
            "token.missing_secret",
            "createToken",
            "POST",
            TOKEN_PATH,
            json_body={"clientId": "{client_id}"},
            auth="none",
            expect_status=422,
            expect_code="validation_failed",
            expect_field="clientSecret",
        ),
        Probe(
            "token.not_json",
            "createToken",
            "POST",
            TOKEN_PATH,
            raw_body=b"{not json",
            content_type="application/json",
            auth="none",
            expect_status=400,
            expect_code="invalid_request",
        ),
    ]
    listing = [_list("list.default", checks=("page", "default_page_size", "sorted"))]
    for key in SORT_KEYS:
        for order in SORT_ORDERS:
            listing.append(
                _list(
                    f"list.sort.{key}.{order}",
                    ("sortBy", key),
                    ("sortOrder", order),
                    ("limit", "100"),
                    checks=("page", "sorted"),
                )
            )
    listing += [
        _list("list.filter.q", ("q", "launch"), ("limit", "100"), checks=("page", "filter_q")),
        _list(
            "list.filter.hasVisits.true",
            ("hasVisits", "true"),
            ("limit", "100"),
            checks=("page", "filter_has_visits"),
        ),
        _list(
            "list.filter.hasVisits.false",
            ("hasVisits", "false"),
            ("limit", "100"),
            checks=("page", "filter_has_visits"),
        ),
        _list("list.page.limit_1", ("limit", "1")),
        _list("list.page.limit_100", ("limit", "100")),
        _list("list.page.past_end", ("offset", "1000000"), checks=("page", "past_end")),
        _list("list.unknown_parameter", ("utm_source", "drift")),
    ]
    bad = [
        _bad("limit.zero", "limit", "0"),
        _bad("limit.over_max", "limit", "101"),
        _bad("limit.not_integer", "limit", "ten"),
        _bad("offset.negative", "offset", "-1"),
        _bad("offset.not_integer", "offset", "abc"),
        _bad("sortBy.unknown", "sortBy", "popularity"),
        _bad("sortOrder.unknown", "sortOrder", "up"),
        _bad("hasVisits.not_boolean", "hasVisits", "yes"),
        _bad("q.too_long", "q", "x" * 201),
    ]
    detail = [
        Probe(
            "detail.listed",
            "getLink",
            "GET",
            LINKS_PATH + "/{listed_id}",
            expect_status=200,
            checks=("detail_id",),
        ),
        Probe(
            "detail.unknown",
            "getLink",
            "GET",
            f"{LINKS_PATH}/{UNKNOWN_LINK_ID}",
            expect_status=404,
            expect_code="link_not_found",
        ),
    ]
    valid = {"title": "8here drift check", "destination": DESTINATION}
    creates = [
        _create("valid", valid, status=201, checks=("created",)),
        _create(
            "slug_taken",
            {**valid, "slug": "{listed_slug}"},
            status=409,
            code="slug_taken",
            field="slug",
        ),
        _create(
            "missing_title",
            {"destination": DESTINATION},
            status=422,
            code="validation_failed",
            field="title",
        ),
        _create(
            "bad_destination",
            {"title": "8here drift check", "destination": "not a url"},
            status=422,
            code="validation_failed",
            field="destination",
        ),
        _create(
            "bad_slug",
            {**valid, "slug": "-Bad Slug-"},
            status=422,
            code="validation_failed",
            field="slug",
        ),
        _create(
            "title_not_string",
            {"title": 42, "destination": DESTINATION},
            status=400,
            code="invalid_request",
            field="title",
        ),
        _create(
            "not_json",
            raw=b"{not json",
            content_type="application/json",
            status=400,
            code="invalid_request",
        ),
        _create(
            "not_json_media_type",
            raw=b"title=drift",
            content_type="text/plain",
            status=415,
            code="unsupported_media_type",
        ),
    ]
    sandbox = environment == "sandbox"
    after_create = Probe(
        "detail.created",
        "getLink",
        "GET",
        LINKS_PATH + "/{created_id}",
        expect_status=404 if sandbox else 200,
        expect_code="link_not_found" if sandbox else None,
    )
    auth = [
        Probe(
            "auth.missing_token",
            "listLinks",
            "GET",
            LINKS_PATH,
            auth="none",
            expect_status=401,
            expect_code="missing_token",
        ),
        Probe(
            "auth.invalid_token",
            "listLinks",
            "GET",
            LINKS_PATH,
            auth="invalid",
            expect_status=401,
            expect_code="invalid_token",
        ),
    ]
    return [*token, *listing, *bad, *detail, *creates, after_create, *auth]
