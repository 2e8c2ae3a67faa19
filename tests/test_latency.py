"""Latency profiles: the distributions, their seeds and clamps, --latency-scale, which requests
they delay, how the delay is journaled, and the reset fence around it."""

from __future__ import annotations

import random
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import CONTROL, LINKS_PATH, TOKEN_PATH, client_settings, register_fast_app
from starlette.testclient import TestClient

from emulator import errors
from emulator.app import create_app
from emulator.handle import Emulator
from emulator.latency import Distribution, Latency, parse_latency
from emulator.operations import OPERATIONS, operation_of
from emulator.settings import Settings, contract_path
from emulator.state import load_sandbox
from emulator.testing import EmulatorServer

_SAMPLE = load_sandbox(Settings())


def _draws(distribution: Distribution, n: int, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [distribution.draw(rng) for _ in range(n)]


def test_a_lognormal_has_the_median_and_p99_it_is_given() -> None:
    draws = sorted(_draws(Distribution("lognormal", 80, 600), 20_000))
    assert statistics.median(draws) == pytest.approx(80, rel=0.03)
    assert draws[int(0.99 * len(draws))] == pytest.approx(600, rel=0.08)


def test_fixed_uniform_and_clamps() -> None:
    assert set(_draws(Distribution("fixed", 300), 10)) == {300}
    uniform = _draws(Distribution("uniform", 50, 250), 2_000)
    assert 50 <= min(uniform) < 60 and 240 < max(uniform) <= 250
    clamped = _draws(Distribution("lognormal", 80, 600, low=40, high=200), 5_000)
    assert min(clamped) == 40 and max(clamped) == 200


def test_each_operation_draws_from_its_own_seeded_generator() -> None:
    def lists(seed: int, interleaved: bool = False) -> list[float]:
        latency = Latency(
            parse_latency({"default": {"uniform": {"min": 0, "max": 1000}}, "seed": seed})
        )
        delays = []
        for _ in range(20):
            if interleaved:
                latency.delay_ms("POST", TOKEN_PATH)
            delays.append(latency.delay_ms("GET", LINKS_PATH))
        return delays

    assert lists(7) == lists(7, interleaved=True)  # other operations' calls do not move it
    assert lists(7) != lists(8)
    assert len(set(lists(7))) == 20


def test_the_scale_multiplies_and_zero_switches_off() -> None:
    profile = parse_latency({"operations": {"getLink": {"fixed": 40}}})
    assert Latency(profile, 2.5).delay_ms("GET", f"{LINKS_PATH}/lnk_1") == 100
    off = Latency(profile, 0)
    assert not off.active and off.delay_ms("GET", f"{LINKS_PATH}/lnk_1") == 0
    assert Latency(profile).delay_ms("GET", LINKS_PATH) == 0  # no default: listLinks waits not


def test_the_operations_are_the_contracts_operation_ids() -> None:
    contract = yaml.safe_load(contract_path().read_text(encoding="utf-8"))
    seen = {}
    for path, item in contract["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "operationId" in operation:
                concrete = path.replace("{linkId}", "lnk_0123456789abcdef")
                seen[(method.upper(), concrete)] = operation["operationId"]
    assert set(seen.values()) == set(OPERATIONS)
    for (method, path), operation_id in seen.items():
        assert operation_of(method, path) == operation_id
    for method, path in [
        ("GET", TOKEN_PATH),
        ("DELETE", LINKS_PATH),
        ("GET", LINKS_PATH + "/"),
        ("GET", "/launch"),
        ("POST", "/_emulator/reset"),
    ]:
        assert operation_of(method, path) is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"default": {}}, "default.fixed"),
        ({"default": {"fixed": -1}}, "default.fixed"),
        ({"default": {"fixed": 61_000}}, "default.fixed"),
        ({"default": {"uniform": {"min": 9, "max": 3}}}, "default.uniform.max"),
        ({"default": {"lognormal": {"median": 0, "p99": 3}}}, "default.lognormal.median"),
        ({"default": {"fixed": 5, "min": 9, "max": 3}}, "default.max"),
        ({"operations": {"listlinks": {"fixed": 5}}}, "operations.listlinks"),
        ({"seed": -1}, "seed"),
    ],
)
def test_a_bad_profile_names_its_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(errors.ApiError) as refused:
        parse_latency(body)
    assert refused.value.field == field


# -- as a client sees it --------------------------------------------------------------------------


def _profile_app(latency: dict[str, Any], scale: float = 1.0, faults: Any = ()) -> TestClient:
    app = create_app(client_settings(Settings(latency_scale=scale)), sandbox=_SAMPLE)
    client = TestClient(app)
    response = client.post(
        f"{CONTROL}/scenario", json={"version": 1, "latency": latency, "faults": list(faults)}
    )
    assert response.status_code == 200, response.text
    return client


def test_a_delay_is_real_time_journaled_and_a_faults_delay_adds_to_it() -> None:
    fault = {"path": LINKS_PATH, "method": "GET", "delayMs": 40, "times": 1}
    with _profile_app({"default": {"fixed": 60}}, faults=[fault]) as client:
        headers = register_fast_app(client)
        started = time.perf_counter()
        assert client.get(LINKS_PATH, headers=headers).status_code == 200
        waited = (time.perf_counter() - started) * 1000
        assert client.get(f"{CONTROL}/health").status_code == 200  # the control API: no delay
        journal = client.get(f"{CONTROL}/requests").json()["requests"]

    assert waited >= 100
    token, listed = journal
    assert token["latencyMs"] == 60
    assert listed["latencyMs"] == 100  # the profile's 60 and the fault's 40
    assert listed["durationMs"] >= 100


def test_a_scale_of_zero_adds_nothing() -> None:
    with _profile_app({"default": {"fixed": 5_000}}, scale=0) as client:
        headers = register_fast_app(client)
        started = time.perf_counter()
        assert client.get(LINKS_PATH, headers=headers).status_code == 200
        assert time.perf_counter() - started < 2
        (_token, listed) = client.get(f"{CONTROL}/requests").json()["requests"]
    assert listed["latencyMs"] == 0


def test_the_same_profile_gives_the_same_delays_after_each_load() -> None:
    profile = {"default": {"lognormal": {"median": 2, "p99": 8}}, "seed": 3}
    runs = []
    with _profile_app(profile) as client:
        for _ in range(2):
            headers = register_fast_app(client)
            for _ in range(5):
                client.get(LINKS_PATH, headers=headers)
            journal = client.get(f"{CONTROL}/requests").json()["requests"]
            runs.append([entry["latencyMs"] for entry in journal])
            client.post(
                f"{CONTROL}/scenario", json={"version": 1, "latency": profile}
            ).raise_for_status()
    assert runs[0] == runs[1]
    assert len(set(runs[0])) > 3


def test_a_reset_ends_a_latency_wait(tmp_path: Path) -> None:
    with EmulatorServer(Settings(seed=0)) as server:
        handle = Emulator(server.app, server.url)
        handle.load_scenario({"version": 1, "latency": {"default": {"fixed": 30_000}}})
        state = server.app.state.emulator
        drawn = threading.Event()
        original = state.latency.delay_ms

        def watched(method: str, path: str) -> float:
            delay = original(method, path)
            drawn.set()
            return delay

        state.latency.delay_ms = watched
        answer: dict[str, Any] = {}

        def send() -> None:
            body = {"clientId": "sb_demo_client", "clientSecret": "sbs_demo_secret"}
            with httpx.Client(base_url=server.url, timeout=20) as client:
                answer["response"] = client.post(TOKEN_PATH, json=body)

        sender = threading.Thread(target=send)
        sender.start()
        assert drawn.wait(10), "the request never reached the server"
        started = time.monotonic()
        handle.reset()
        sender.join(10)
        assert not sender.is_alive()
        assert time.monotonic() - started < 2
        response = answer["response"]
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "emulator_reset"
        assert handle.journal == []
