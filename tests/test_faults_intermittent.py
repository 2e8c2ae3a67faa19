"""Intermittent faults: every n-th matching request, or each with a seeded probability; the
other requests pass as if the fault were not there."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import CONTROL, LINKS_PATH, assert_error, register_fast_app
from starlette.testclient import TestClient


def _statuses(client: TestClient, headers: dict[str, str], n: int) -> list[int]:
    return [client.get(LINKS_PATH, headers=headers).status_code for _ in range(n)]


def _add(client: TestClient, **fault: Any) -> dict[str, Any]:
    response = client.post(f"{CONTROL}/faults", json=fault)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_every_third_matching_request_fails(client: TestClient) -> None:
    headers = register_fast_app(client)
    added = _add(client, path=LINKS_PATH, status=503, every=3, times=2)
    assert added["every"] == 3

    assert _statuses(client, headers, 9) == [200, 200, 503, 200, 200, 503, 200, 200, 200]
    assert client.get(f"{CONTROL}/faults").json()["faults"] == []  # both uses taken


def test_a_probability_fails_the_same_requests_for_the_same_seed(client: TestClient) -> None:
    headers = register_fast_app(client)
    runs = []
    for _ in range(2):
        _add(client, path=LINKS_PATH, status=503, probability=0.5, seed=11, times=1000)
        runs.append(_statuses(client, headers, 30))
        client.delete(f"{CONTROL}/faults")
    assert runs[0] == runs[1]
    assert 5 <= runs[0].count(503) <= 25
    _add(client, path=LINKS_PATH, status=503, probability=0.5, seed=12, times=1000)
    assert _statuses(client, headers, 30) != runs[0]


def test_a_request_an_intermittent_fault_lets_pass_can_meet_the_next_fault(
    client: TestClient,
) -> None:
    headers = register_fast_app(client)
    _add(client, path=LINKS_PATH, status=503, every=2, times=5)
    _add(client, path=LINKS_PATH, status=418, times=1)
    assert _statuses(client, headers, 3) == [418, 503, 200]


@pytest.mark.parametrize(
    ("fault", "field"),
    [
        ({"status": 503, "every": 0, "times": 1}, "every"),
        ({"status": 503, "probability": 0, "times": 1}, "probability"),
        ({"status": 503, "probability": 1.5, "times": 1}, "probability"),
        ({"status": 503, "every": 2, "probability": 0.5, "times": 1}, "probability"),
        ({"status": 503, "seed": 3, "times": 1}, "seed"),
    ],
)
def test_bad_intermittent_faults_are_refused(
    client: TestClient, fault: dict[str, Any], field: str
) -> None:
    assert_error(client.post(f"{CONTROL}/faults", json=fault), 422, "validation_failed", field)
