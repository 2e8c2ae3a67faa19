"""Schemathesis 4 against the emulator in-process: every check, every phase, zero failures.

Each environment gets an application registered through the control API with a limit high enough
that fuzzing never meets the 15/min sandbox cap. The sandbox application runs the examples,
coverage and fuzzing phases against the sample set. The stateful phase (create → detail and
list → detail through the contract's OpenAPI links) runs on a live application: a sandbox create
is deliberately not stored, so its detail is 404, which schemathesis's
`ensure_resource_availability` check rightly calls a vanished resource. The live application runs
the stateless phases too, against the SQLite store.

`case.call_and_validate()` runs every check enabled in the configuration, and all are enabled by
default. Runs are derandomized, so CI sees the same cases every time; `EMULATOR_DEEP_FUZZ=1`
raises the number of examples tenfold and draws them at random.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from conftest import client_settings, reset
from starlette.applications import Starlette
from starlette.testclient import TestClient

from emulator.app import create_app
from emulator.settings import contract_path

DEEP = os.environ.get("EMULATOR_DEEP_FUZZ") == "1"
MAX_EXAMPLES = 500 if DEEP else 50
STATEFUL_SCENARIOS = 250 if DEEP else 25
STATEFUL_STEPS = 10

TOKEN_PATH = "/api/api-applications/token"
LINKS_PATH = "/api/api-applications/public/links"
DETAIL = f"GET {LINKS_PATH}/{{linkId}}"
CASES: Counter[str] = Counter()
STATEFUL_RESPONSES: Counter[tuple[str, int]] = Counter()


def _fuzz_application(environment: str) -> dict[str, Any]:
    application: dict[str, Any] = {
        "clientId": f"fuzz_{environment}",
        "clientSecret": f"fuzz_{environment}_secret",
        "environment": environment,
        "rateLimitPerMinute": 1_000_000,
    }
    if environment == "live":  # sandbox applications share the sandbox workspace
        application |= {"workspaceId": "ws_fuzz", "linkQuota": 1_000_000}
    return application


def _register_fuzz_client(app: Starlette, environment: str) -> None:
    # No `with`: schemathesis runs the app's lifespan itself.
    response = TestClient(app).post("/_emulator/applications", json=_fuzz_application(environment))
    assert response.status_code == 201, response.text


def _schema(environment: str) -> Any:
    app = create_app(client_settings())
    _register_fuzz_client(app, environment)
    schema = schemathesis.openapi.from_path(contract_path())
    schema.app = app
    schema.config.phases.update(phases=["examples", "coverage", "fuzzing", "stateful"])
    schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=not DEEP)
    credentials = {
        key: value
        for key, value in _fuzz_application(environment).items()
        if key in ("clientId", "clientSecret")
    }

    # Not cached: the stateful phase resets the emulator, and with it every token, per scenario.
    @schema.auth(refresh_interval=None).skip_for(operation_id="createToken")
    class BearerToken:
        """Exchanges the fuzz application's credentials, as a client would."""

        def get(self, case: Any, ctx: Any) -> str:
            response = TestClient(app).post(TOKEN_PATH, json=credentials)
            assert response.status_code == 200, response.text
            return str(response.json()["accessToken"])

        def set(self, case: Any, data: str, ctx: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    return schema


sandbox_schema = _schema("sandbox")
live_schema = _schema("live")


@pytest.fixture(scope="module", autouse=True)
def _report_case_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not CASES:
        return
    counts = ", ".join(f"{name} {count}" for name, count in sorted(CASES.items()))
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"\nschemathesis cases: {counts} (total {CASES.total()})")


@sandbox_schema.parametrize()
def test_sandbox_conforms(case: Any) -> None:
    CASES["sandbox"] += 1
    case.call_and_validate()


@live_schema.parametrize()
def test_live_conforms(case: Any) -> None:
    CASES["live"] += 1
    case.call_and_validate()


class LiveWorkflow(live_schema.as_state_machine()):  # type: ignore[misc]
    def setup(self) -> None:
        # Each scenario starts from an empty workspace, so Hypothesis can replay a scenario and
        # get the same answers (a slug created by an earlier scenario would turn 201 into 409).
        response = reset(TestClient(live_schema.app))
        assert response.status_code == 200, response.text
        _register_fuzz_client(live_schema.app, "live")

    def after_call(self, response: Any, case: Any) -> None:
        super().after_call(response, case)
        CASES["stateful"] += 1
        STATEFUL_RESPONSES[case.operation.label, response.status_code] += 1


def test_live_stateful_links() -> None:
    LiveWorkflow.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_SCENARIOS,
            stateful_step_count=STATEFUL_STEPS,
            derandomize=not DEEP,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )
    # The links were followed: details of created or listed links were found.
    assert STATEFUL_RESPONSES[DETAIL, 200] > 0, STATEFUL_RESPONSES


def test_every_documented_response_is_reachable_and_conforms() -> None:
    """Answers fuzzing cannot reach on a high-limit app (429, 413, expired tokens, quota, ...)
    are provoked one by one, and checked by every check as any other case."""
    schema = schemathesis.openapi.from_path(contract_path())
    app = create_app(client_settings())
    schema.app = app
    control = TestClient(app)
    seen: set[tuple[str, int]] = set()

    def check(
        operation_id: str, status: int, auth: dict[str, str] | None = None, **data: Any
    ) -> Any:
        case = schema.find_operation_by_id(operation_id).Case(**data)
        response = case.call_and_validate(headers=auth)
        assert response.status_code == status, response.text
        seen.add((operation_id, status))
        return response

    def register(client_id: str, environment: str, **extra: Any) -> dict[str, str]:
        secret = f"{client_id}_secret"
        body = {
            "clientId": client_id,
            "clientSecret": secret,
            "environment": environment,
            "workspaceId": "sandbox" if environment == "sandbox" else f"ws_{client_id}",
            **extra,
        }
        assert control.post("/_emulator/applications", json=body).status_code == 201
        token = check("createToken", 200, body={"clientId": client_id, "clientSecret": secret})
        return {"Authorization": f"Bearer {token.json()['accessToken']}"}

    big = {"title": "x" * (64 * 1024), "destination": "https://8here.in"}
    new_link = {"title": "Launch page", "destination": "https://8here.in/launch"}

    # createToken
    disabled = {"clientId": "lv_demo_disabled", "clientSecret": "lvs_demo_disabled_secret"}
    check("createToken", 400, body=[1])
    check("createToken", 401, body={"clientId": "x", "clientSecret": "y"})
    check("createToken", 403, body=disabled)
    check("createToken", 413, body={"clientId": "x" * (64 * 1024), "clientSecret": "y"})
    check("createToken", 415, body="{}", media_type="text/plain")
    check("createToken", 422, body={"clientId": "x"})

    sandbox = register("contract_sandbox", "sandbox", rateLimitPerMinute=1_000_000)
    live = register("contract_live", "live", rateLimitPerMinute=1_000_000)
    full = register("contract_full", "live", rateLimitPerMinute=1_000_000, linkQuota=0)

    # listLinks and getLink
    sample = check("listLinks", 200, sandbox).json()["data"][0]
    check("listLinks", 400, sandbox, query={"limit": 0})
    check("listLinks", 401)
    check("getLink", 200, sandbox, path_parameters={"linkId": sample["id"]})
    check("getLink", 404, sandbox, path_parameters={"linkId": "no-such-link"})
    check("getLink", 401, {"Authorization": "Bearer x"}, path_parameters={"linkId": sample["id"]})

    # createLink
    created = check("createLink", 201, live, body=new_link)
    assert created.headers["location"] == [f"{LINKS_PATH}/{created.json()['id']}"]
    check("createLink", 201, sandbox, body=new_link)
    check("createLink", 400, sandbox, body=[1])
    check("createLink", 401, body=new_link)
    check("createLink", 403, full, body=new_link)
    check("createLink", 409, sandbox, body={**new_link, "slug": sample["slug"]})
    check("createLink", 413, sandbox, body=big)
    check("createLink", 415, sandbox, body="{}", media_type="text/plain")
    check("createLink", 422, sandbox, body={"title": ""})

    # 429: an application allowed one call a minute
    capped = register("contract_capped", "sandbox", rateLimitPerMinute=1)
    check("listLinks", 200, capped)
    check("listLinks", 429, capped)
    check("createLink", 429, capped, body=new_link)
    check("getLink", 429, capped, path_parameters={"linkId": sample["id"]})

    # 401 token_expired, on the emulator's clock
    assert control.post("/_emulator/clock", json={"advanceSeconds": 3601}).status_code == 200
    expired = check("listLinks", 401, sandbox)
    assert expired.json()["error"]["code"] == "token_expired"

    documented = {
        (operation.definition.raw["operationId"], int(status))
        for operation in (result.ok() for result in schema.get_all_operations())
        for status in operation.definition.raw["responses"]
    }
    assert seen == documented
