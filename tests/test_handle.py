"""The handle the `emulator` and `emulator_app` fixtures give a test: guard-rails that answer like
the control API, the assertions on its journal, and the sync in-process transport."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from conftest import CONTROL, LINKS_PATH, TOKEN_PATH

from emulator.handle import InvalidArgument, RegistrationConflict


def _control_error(emulator, path: str, body: dict) -> dict:
    response = httpx.post(f"{emulator.url}{CONTROL}{path}", json=body, timeout=10)
    assert 400 <= response.status_code < 500, response.text
    return response.json()["error"]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- guard-rails, with the control API's messages


def test_registering_a_client_id_twice_is_refused_unless_replaced(emulator):
    with pytest.raises(RegistrationConflict) as refused:
        emulator.register_application("sb_demo_client", "another_secret")

    over_http = _control_error(
        emulator, "/applications", {"clientId": "sb_demo_client", "clientSecret": "x"}
    )
    assert str(refused.value) == over_http["message"]
    assert (refused.value.code, refused.value.field) == ("application_exists", "clientId")
    assert isinstance(refused.value, ValueError)
    assert emulator.credentials.client_secret == "sbs_demo_secret"

    emulator.register_application("sb_demo_client", "another_secret", replace=True)

    assert emulator.credentials.client_secret == "another_secret"
    token = httpx.post(
        emulator.url + TOKEN_PATH,
        json={"clientId": "sb_demo_client", "clientSecret": "another_secret"},
        timeout=10,
    )
    assert token.status_code == 200


def test_joining_a_workspace_with_other_settings_is_refused_unless_replaced(emulator):
    emulator.register_application(environment="live", workspace_id="ws_team", link_quota=5)
    emulator.register_application(environment="live", workspace_id="ws_team")  # as it is

    with pytest.raises(RegistrationConflict) as refused:
        emulator.register_application(
            "lv_x", environment="live", workspace_id="ws_team", link_quota=9
        )

    assert str(refused.value) == (
        "The workspace 'ws_team' already exists with linkQuota 5, not 9; set replace to change it."
    )
    assert refused.value.code == "workspace_conflict"
    assert emulator.state.registry.application("lv_x") is None
    emulator.register_application(
        "lv_x", environment="live", workspace_id="ws_team", link_quota=9, replace=True
    )
    assert emulator.state.registry.workspace("ws_team").link_quota == 9


def test_made_up_client_ids_skip_the_ones_taken(emulator):
    emulator.register_application("sb_test_1")

    assert emulator.register_application().client_id == "sb_test_2"


def test_the_clock_never_goes_back_by_advancing(emulator):
    emulator.clock.set("2030-01-01T00:00:00Z")

    with pytest.raises(InvalidArgument) as refused:
        emulator.clock.advance(-10)

    over_http = _control_error(emulator, "/clock", {"advanceSeconds": -10})
    assert str(refused.value) == over_http["message"]
    assert emulator.clock.now().isoformat() == "2030-01-01T00:00:00+00:00"
    emulator.clock.set("2029-12-31T23:59:50Z")  # the way back
    emulator.clock.advance(0)
    assert emulator.clock.now().isoformat() == "2029-12-31T23:59:50+00:00"


@pytest.mark.parametrize(
    ("call", "path", "body"),
    [
        (
            lambda e: e.fault(503, path="api/x"),
            "/faults",
            {"status": 503, "times": 1, "path": "api/x"},
        ),
        (
            lambda e: e.fault(503, path="/x?y=1"),
            "/faults",
            {"status": 503, "times": 1, "path": "/x?y=1"},
        ),
        (lambda e: e.fault(), "/faults", {"times": 1}),
        (lambda e: e.fault(200), "/faults", {"status": 200, "times": 1}),
        (lambda e: e.fault(503, times=0), "/faults", {"status": 503, "times": 0}),
        (
            lambda e: e.register_application(environment="production"),
            "/applications",
            {"clientId": "a", "clientSecret": "b", "environment": "production"},
        ),
        (
            lambda e: e.register_application(link_quota=3),
            "/applications",
            {"clientId": "a", "clientSecret": "b", "linkQuota": 3},
        ),
        (lambda e: e.clock.set("yesterday"), "/clock", {"now": "yesterday"}),
        (lambda e: e.clock.set("0001-01-01T00:00:00Z"), "/clock", {"now": "0001-01-01T00:00:00Z"}),
    ],
    ids=[
        "fault path without /",
        "fault path with ?",
        "fault without effect",
        "fault status 200",
        "fault times 0",
        "environment",
        "sandbox link quota",
        "clock not a moment",
        "clock out of range",
    ],
)
def test_bad_arguments_raise_value_errors_with_the_http_message(emulator, call, path, body):
    with pytest.raises(InvalidArgument) as refused:
        call(emulator)

    assert str(refused.value) == _control_error(emulator, path, body)["message"]
    assert emulator.pending_faults == []


def test_a_token_the_emulator_would_refuse_raises(emulator):
    with pytest.raises(InvalidArgument) as disabled:
        emulator.token("lv_demo_disabled")
    with pytest.raises(LookupError):
        emulator.token("nobody")

    assert disabled.value.code == "api_access_disabled"


def test_a_visit_names_its_bad_argument(emulator):
    app = emulator.register_application(environment="live")
    created = httpx.post(
        emulator.url + LINKS_PATH,
        json={"title": "T", "destination": "https://e.com", "slug": "v-link"},
        headers=_bearer(emulator.token(app)),
        timeout=10,
    )
    assert created.status_code == 201

    with pytest.raises(InvalidArgument, match="country must be two capital letters"):
        emulator.visit("v-link", country="Germany")
    with pytest.raises(LookupError, match="no live link"):
        emulator.visit("no-such-link")
    assert emulator.visit("v-link", country="DE") == 1


# -- faults


def test_pending_faults_say_how_often_they_fired(emulator):
    emulator.fault(503, path=LINKS_PATH, times=2)
    httpx.get(emulator.url + LINKS_PATH, headers=_bearer(emulator.token()), timeout=10)

    (fault,) = emulator.pending_faults

    assert (fault.times, fault.fired) == (1, 1)
    assert str(fault) == f"status 503 on any method {LINKS_PATH}: fired 1 of 2"
    emulator.clear_faults()
    assert emulator.pending_faults == []


def test_an_injected_429_through_the_handle(emulator):
    emulator.clock.freeze()
    emulator.fault(429, path=LINKS_PATH, retry_after=12)

    refused = httpx.get(emulator.url + LINKS_PATH, headers=_bearer(emulator.token()), timeout=10)

    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "12"
    assert refused.headers["X-RateLimit-Limit"] == "15"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    reset_at = int(emulator.clock.now().timestamp()) + 12
    assert refused.headers["X-RateLimit-Reset"] == str(reset_at)
    assert [r.retry_after for r in emulator.journal] == [12]


# -- the journal


def test_journal_params_keep_the_contracts_types(emulator):
    query = {"limit": 2, "offset": 0, "hasVisits": "true", "q": "launch", "sortBy": "title"}
    httpx.get(
        emulator.url + LINKS_PATH, params=query, headers=_bearer(emulator.token()), timeout=10
    )
    httpx.get(
        emulator.url + LINKS_PATH,
        params={"limit": "many"},
        headers=_bearer(emulator.token()),
        timeout=10,
    )

    typed, refused = emulator.journal

    assert typed.params == {
        "limit": 2,
        "offset": 0,
        "hasVisits": True,
        "q": "launch",
        "sortBy": "title",
    }
    assert typed.params["offset"] == typed.pagination["offset"]
    assert refused.params == {"limit": "many"}  # not what the contract allows: as sent


# -- assertions, from the handle


def test_the_assertions_are_reachable_from_the_handle(emulator):
    emulator.clock.freeze()
    with httpx.Client(base_url=emulator.url, timeout=10) as http:
        for _ in range(2):  # a client that exchanges credentials for every call
            token = http.post(
                TOKEN_PATH, json={"clientId": "sb_demo_client", "clientSecret": "sbs_demo_secret"}
            ).json()["accessToken"]
            http.get(LINKS_PATH, params={"limit": 1}, headers=_bearer(token))

    with pytest.raises(AssertionError, match="while its token was still good"):
        emulator.assert_token_reused()
    emulator.assert_token_reused(early_refresh_seconds=3600)
    with pytest.raises(AssertionError, match="nothing to judge"):
        emulator.assert_retry_after_obeyed()
    emulator.assert_retry_after_obeyed(require_evidence=False)
    with pytest.raises(AssertionError, match="nothing to judge"):
        emulator.assert_no_page_past_end(client_id="sb_demo_client")
    with pytest.raises(AssertionError, match="nothing to judge"):
        emulator.assert_token_refreshed_after_expiry()
    with pytest.raises(AssertionError, match="nothing to judge"):
        emulator.assert_token_refreshed_before_expiry()


def test_a_client_that_keeps_an_expired_token_fails_from_the_handle(emulator):
    emulator.clock.freeze()
    with httpx.Client(base_url=emulator.url, timeout=10) as http:
        token = http.post(
            TOKEN_PATH, json={"clientId": "sb_demo_client", "clientSecret": "sbs_demo_secret"}
        ).json()["accessToken"]
        http.get(LINKS_PATH, params={"limit": 1}, headers=_bearer(token))
        emulator.clock.advance(emulator.state.settings.token_ttl_seconds)
        assert http.get(LINKS_PATH, headers=_bearer(token)).status_code == 401

    with pytest.raises(AssertionError, match="never exchanged credentials again"):
        emulator.assert_token_refreshed_after_expiry()
    with pytest.raises(AssertionError, match="the client used a token that had expired"):
        emulator.assert_token_refreshed_before_expiry()


# -- sync, in process


def test_a_sync_client_through_sync_transport(emulator_app, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("sync_transport opened a socket")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "bind", refuse)
    with httpx.Client(transport=emulator_app.sync_transport(), base_url=emulator_app.url) as http:
        token = http.post(
            TOKEN_PATH, json={"clientId": "sb_demo_client", "clientSecret": "sbs_demo_secret"}
        )
        page = http.get(
            LINKS_PATH,
            params={"limit": 3},
            headers=_bearer(token.json()["accessToken"]),
        )
        created = http.post(
            LINKS_PATH,
            json={"title": "Sync", "destination": "https://e.com"},
            headers=_bearer(token.json()["accessToken"]),
        )

    assert token.status_code == 200
    assert page.status_code == 200 and len(page.json()["data"]) == 3
    assert page.headers["X-RateLimit-Remaining"] == "14"
    assert page.headers["X-Request-Id"]
    assert created.status_code == 201 and created.json()["persisted"] is False
    assert [(r.method, r.status) for r in emulator_app.journal] == [
        ("POST", 200),
        ("GET", 200),
        ("POST", 201),
    ]


def test_sync_transport_serves_many_threads(emulator_app):
    token = emulator_app.token(emulator_app.register_application(rate_limit_per_minute=1000))
    transport = emulator_app.sync_transport()
    with httpx.Client(transport=transport, base_url=emulator_app.url) as http:

        def call(n: int) -> int:
            params = {"limit": 1, "offset": n}
            return http.get(LINKS_PATH, params=params, headers=_bearer(token)).status_code

        with ThreadPoolExecutor(max_workers=4) as pool:
            statuses = list(pool.map(call, range(20)))

    assert statuses == [200] * 20
    assert len(emulator_app.journal) == 20


def test_a_sync_client_that_times_out_leaves_nothing_in_the_next_test(emulator_app):
    emulator_app.fault(delay_ms=5_000, path=LINKS_PATH)
    with httpx.Client(
        transport=emulator_app.sync_transport(), base_url=emulator_app.url, timeout=0.05
    ) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.get(LINKS_PATH, headers=_bearer(emulator_app.token()))
        deadline = time.monotonic() + 10
        while emulator_app.pending_faults:  # until the request is in flight, delayed
            assert time.monotonic() < deadline
            time.sleep(0.005)

        emulator_app.reset()
        time.sleep(0.2)  # the delayed request sees the reset within 50 ms and gives up

        assert emulator_app.journal == []
        http.timeout = httpx.Timeout(10)
        fresh = http.get(LINKS_PATH, headers=_bearer(emulator_app.token()))
    assert fresh.headers["X-RateLimit-Remaining"] == "14"
    assert [r.status for r in emulator_app.journal] == [200]
