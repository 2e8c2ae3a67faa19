"""Token exchange and bearer authentication, as a client observes them over HTTP."""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterator

import pytest
from conftest import (
    FROZEN_NOW,
    LINKS_PATH,
    SANDBOX_CLIENT_ID,
    SANDBOX_SECRET,
    STAMP_PATTERN,
    TOKEN_PATH,
    advance_clock,
    assert_error,
    auth_headers,
    bearer,
    emulator_client,
    register_app,
    reset,
    set_clock,
    token_for,
)
from starlette.testclient import TestClient

MAX_BODY = 64 * 1024
JSON = {"Content-Type": "application/json"}
SAMPLE_ID_PATH = LINKS_PATH + "/{}"


def _first_link_id(client: TestClient, headers: dict[str, str]) -> str:
    response = client.get(LINKS_PATH, params={"limit": 1}, headers=headers)
    assert response.status_code == 200, response.text
    link_id: str = response.json()["data"][0]["id"]
    return link_id


# --- exchange ------------------------------------------------------------------------------------


def test_token_exchange_shape_on_a_frozen_clock(frozen_client: TestClient) -> None:
    response = frozen_client.post(
        TOKEN_PATH, json={"clientId": SANDBOX_CLIENT_ID, "clientSecret": SANDBOX_SECRET}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"accessToken", "tokenType", "expiresIn", "expiresAt", "environment"}
    assert isinstance(body["accessToken"], str) and len(body["accessToken"]) >= 16
    assert body["tokenType"] == "Bearer"
    assert body["expiresIn"] == 3600
    assert body["expiresAt"] == "2026-01-01T01:00:00Z"
    assert re.fullmatch(STAMP_PATTERN, body["expiresAt"])
    assert body["environment"] == "sandbox"


def test_expires_at_follows_the_clock(frozen_client: TestClient) -> None:
    set_clock(frozen_client, "2030-06-15T23:30:59Z")
    response = frozen_client.post(
        TOKEN_PATH, json={"clientId": SANDBOX_CLIENT_ID, "clientSecret": SANDBOX_SECRET}
    )
    assert response.json()["expiresAt"] == "2030-06-16T00:30:59Z"


def test_live_app_token_says_live(frozen_client: TestClient) -> None:
    response = frozen_client.post(
        TOKEN_PATH,
        json={"clientId": "lv_demo_personal", "clientSecret": "lvs_demo_personal_secret"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["environment"] == "live"
    assert response.json()["expiresAt"] == "2026-01-01T01:00:00Z"


def test_each_exchange_gives_a_working_token(client: TestClient) -> None:
    first, second = token_for(client), token_for(client)
    for token in (first, second):
        assert client.get(LINKS_PATH, params={"limit": 1}, headers=bearer(token)).status_code == 200


def test_unknown_client_and_wrong_secret_are_indistinguishable(client: TestClient) -> None:
    unknown = client.post(TOKEN_PATH, json={"clientId": "nobody", "clientSecret": SANDBOX_SECRET})
    wrong = client.post(TOKEN_PATH, json={"clientId": SANDBOX_CLIENT_ID, "clientSecret": "nope"})
    empty = client.post(TOKEN_PATH, json={"clientId": SANDBOX_CLIENT_ID, "clientSecret": ""})
    assert_error(unknown, 401, "invalid_client")
    assert_error(wrong, 401, "invalid_client")
    assert unknown.content == wrong.content == empty.content
    assert wrong.status_code == empty.status_code == 401

    def comparable(headers: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in headers.items() if k.lower() != "x-request-id"}

    assert comparable(dict(unknown.headers)) == comparable(dict(wrong.headers))


def test_a_secret_of_another_app_is_invalid_client(client: TestClient) -> None:
    response = client.post(
        TOKEN_PATH,
        json={"clientId": SANDBOX_CLIENT_ID, "clientSecret": "lvs_demo_personal_secret"},
    )
    assert_error(response, 401, "invalid_client")


def test_non_ascii_secret_is_invalid_client(client: TestClient) -> None:
    response = client.post(
        TOKEN_PATH, json={"clientId": SANDBOX_CLIENT_ID, "clientSecret": "sbs_demo_secrét ✓"}
    )
    assert_error(response, 401, "invalid_client")


def test_disabled_live_app_is_forbidden(client: TestClient) -> None:
    response = client.post(
        TOKEN_PATH,
        json={"clientId": "lv_demo_disabled", "clientSecret": "lvs_demo_disabled_secret"},
    )
    assert_error(response, 403, "api_access_disabled")


def test_disabled_app_with_wrong_secret_is_invalid_client(client: TestClient) -> None:
    response = client.post(
        TOKEN_PATH, json={"clientId": "lv_demo_disabled", "clientSecret": "wrong"}
    )
    assert_error(response, 401, "invalid_client")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "clientId"),
        ({"clientSecret": SANDBOX_SECRET}, "clientId"),
        ({"clientId": SANDBOX_CLIENT_ID}, "clientSecret"),
        ({"clientId": None, "clientSecret": SANDBOX_SECRET}, "clientId"),
        ({"clientId": SANDBOX_CLIENT_ID, "clientSecret": None}, "clientSecret"),
    ],
)
def test_missing_credentials_are_validation_failed(
    client: TestClient, body: dict[str, object], field: str
) -> None:
    assert_error(client.post(TOKEN_PATH, json=body), 422, "validation_failed", field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"clientId": 1, "clientSecret": SANDBOX_SECRET}, "clientId"),
        ({"clientId": SANDBOX_CLIENT_ID, "clientSecret": 12345}, "clientSecret"),
        ({"clientId": [SANDBOX_CLIENT_ID], "clientSecret": SANDBOX_SECRET}, "clientId"),
        ({"clientId": SANDBOX_CLIENT_ID, "clientSecret": {"v": 1}}, "clientSecret"),
        ({"clientId": True, "clientSecret": SANDBOX_SECRET}, "clientId"),
    ],
)
def test_wrong_types_are_invalid_request(
    client: TestClient, body: dict[str, object], field: str
) -> None:
    assert_error(client.post(TOKEN_PATH, json=body), 400, "invalid_request", field)


@pytest.mark.parametrize(
    "raw",
    [b"[]", b'"clientId"', b"42", b"null", b"true", b"{", b"{not json}", b"", b"\xff\xfe", b"{}x"],
    ids=repr,
)
def test_non_object_or_non_json_body_is_invalid_request(client: TestClient, raw: bytes) -> None:
    assert_error(client.post(TOKEN_PATH, content=raw, headers=JSON), 400, "invalid_request")


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "application/xml"],
)
def test_non_json_content_type_is_415(client: TestClient, content_type: str) -> None:
    body = json.dumps({"clientId": SANDBOX_CLIENT_ID, "clientSecret": SANDBOX_SECRET})
    response = client.post(TOKEN_PATH, content=body, headers={"Content-Type": content_type})
    assert_error(response, 415, "unsupported_media_type")


def test_missing_content_type_is_415(client: TestClient) -> None:
    body = json.dumps({"clientId": SANDBOX_CLIENT_ID, "clientSecret": SANDBOX_SECRET})
    response = client.post(TOKEN_PATH, content=body.encode())
    assert "content-type" not in {k.lower() for k in response.request.headers}
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "APPLICATION/JSON"])
def test_json_content_type_variants_are_accepted(client: TestClient, content_type: str) -> None:
    body = json.dumps({"clientId": SANDBOX_CLIENT_ID, "clientSecret": SANDBOX_SECRET})
    response = client.post(TOKEN_PATH, content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text


def _credentials_of_size(size: int) -> bytes:
    """A valid credentials object padded with whitespace to exactly `size` bytes."""
    core = json.dumps({"clientId": SANDBOX_CLIENT_ID, "clientSecret": SANDBOX_SECRET}).encode()
    return core[:-1] + b" " * (size - len(core)) + b"}"


def test_body_of_exactly_64_kib_is_accepted(client: TestClient) -> None:
    body = _credentials_of_size(MAX_BODY)
    assert len(body) == MAX_BODY
    assert client.post(TOKEN_PATH, content=body, headers=JSON).status_code == 200


def test_body_over_64_kib_is_413(client: TestClient) -> None:
    body = _credentials_of_size(MAX_BODY + 1)
    assert_error(client.post(TOKEN_PATH, content=body, headers=JSON), 413, "payload_too_large")


def test_streamed_body_over_64_kib_without_length_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"clientId": "sb_demo_client", "clientSecret": "'
        for _ in range(20):
            yield b"a" * 4096
        yield b'"}'

    response = client.post(TOKEN_PATH, content=chunks(), headers=JSON)
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert_error(response, 413, "payload_too_large")


# --- expiry and reset ----------------------------------------------------------------------------


def test_token_works_until_one_second_before_expiry(frozen_client: TestClient) -> None:
    headers = auth_headers(frozen_client)
    advance_clock(frozen_client, 3599)
    response = frozen_client.get(LINKS_PATH, params={"limit": 1}, headers=headers)
    assert response.status_code == 200, response.text


def test_token_expires_after_an_hour(frozen_client: TestClient) -> None:
    headers = auth_headers(frozen_client)
    advance_clock(frozen_client, 3600)
    for response in (
        frozen_client.get(LINKS_PATH, headers=headers),
        frozen_client.get(SAMPLE_ID_PATH.format("lnk_0000000000000000"), headers=headers),
        frozen_client.post(
            LINKS_PATH, json={"title": "t", "destination": "https://a.example"}, headers=headers
        ),
    ):
        assert_error(response, 401, "token_expired")
        assert response.headers["WWW-Authenticate"].lower().startswith("bearer")


def test_expired_token_is_replaced_by_a_new_exchange(frozen_client: TestClient) -> None:
    old = auth_headers(frozen_client)
    advance_clock(frozen_client, 7200)
    assert_error(frozen_client.get(LINKS_PATH, headers=old), 401, "token_expired")
    fresh = auth_headers(frozen_client)
    assert frozen_client.get(LINKS_PATH, params={"limit": 1}, headers=fresh).status_code == 200


def test_setting_the_clock_back_revives_nothing_but_keeps_valid_tokens(
    frozen_client: TestClient,
) -> None:
    headers = auth_headers(frozen_client)
    set_clock(frozen_client, "2025-12-31T23:00:00Z")  # an hour earlier: still valid
    assert frozen_client.get(LINKS_PATH, params={"limit": 1}, headers=headers).status_code == 200


def test_reset_invalidates_tokens(client: TestClient) -> None:
    headers = auth_headers(client)
    assert client.get(LINKS_PATH, params={"limit": 1}, headers=headers).status_code == 200
    assert reset(client).status_code == 200
    assert_error(client.get(LINKS_PATH, headers=headers), 401, "invalid_token")


def test_token_from_another_emulator_is_invalid(client: TestClient) -> None:
    with emulator_client() as other:
        foreign = auth_headers(other)
    assert_error(client.get(LINKS_PATH, headers=foreign), 401, "invalid_token")


# --- forged and garbled tokens -------------------------------------------------------------------


def _flip_last(text: str) -> str:
    return text[:-1] + ("A" if text[-1] != "A" else "B")


def _forgeries(token: str) -> list[str]:
    prefix_end = token.index("_") + 1 if "_" in token[:5] else 0
    prefix, rest = token[:prefix_end], token[prefix_end:]
    body, _, signature = rest.partition(".")
    decoded = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    other_client = decoded.replace(SANDBOX_CLIENT_ID.encode(), b"lv_demo_personal")
    later = re.sub(rb"\n\d+\n", b"\n9999999999\n", decoded)
    reencode = base64.urlsafe_b64encode
    return [
        _flip_last(token),  # tampered signature
        token[:-4],  # truncated signature
        token + "A",
        prefix + reencode(other_client).decode().rstrip("=") + "." + signature,
        prefix + reencode(later).decode().rstrip("=") + "." + signature,
        prefix + body,  # no signature
        prefix + body + "." + signature + "." + signature,
        token.upper(),
        token[::-1],
        "x" * 40,
        "eh_",
        "eh_.",
        "eh_!!!.###",
        "eh_" + "A" * 5 + "." + "B" * 5,
        "eh_abc.def",
        "eh_" + "Zm9v" * 1000 + "." + "YmFy",
        "null",
        "undefined",
        "Bearer",
        "0",
        "\t",
    ]


def test_forged_and_garbled_tokens_are_invalid_token(client: TestClient) -> None:
    token = token_for(client)
    for forged in _forgeries(token):
        response = client.get(LINKS_PATH, headers=bearer(forged))
        if response.status_code == 401 and response.json()["error"]["code"] == "missing_token":
            continue  # a whitespace-only token reads as no token at all
        assert_error(response, 401, "invalid_token")
        assert response.headers["WWW-Authenticate"].lower().startswith("bearer")


@pytest.mark.parametrize(
    "raw",
    [
        "Bearer tökén".encode(),
        "Bearer 🚀🚀🚀".encode(),
        b"Bearer eh_\xff\xfe.\xfd",
        "Bearer eh_日本.語".encode(),
    ],
    ids=repr,
)
def test_non_ascii_tokens_are_invalid_token(client: TestClient, raw: bytes) -> None:
    response = client.get(LINKS_PATH, headers={b"Authorization": raw})
    assert_error(response, 401, "invalid_token")


@pytest.mark.parametrize("value", ["Bearer ", "Bearer", "bearer   ", "   "])
def test_empty_bearer_is_401(client: TestClient, value: str) -> None:
    response = client.get(LINKS_PATH, headers={"Authorization": value})
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] in ("invalid_token", "missing_token")


@pytest.mark.parametrize("value", ["Basic c2JfZGVtbzpzZWNyZXQ=", "Token abc", "Digest x=y"])
def test_other_schemes_are_401(client: TestClient, value: str) -> None:
    response = client.get(LINKS_PATH, headers={"Authorization": value})
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] in ("invalid_token", "missing_token")


def test_bearer_scheme_is_case_insensitive(client: TestClient) -> None:
    token = token_for(client)
    response = client.get(
        LINKS_PATH, params={"limit": 1}, headers={"Authorization": f"bearer {token}"}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", LINKS_PATH), ("POST", LINKS_PATH), ("GET", SAMPLE_ID_PATH.format("lnk_x"))],
)
def test_missing_header_is_missing_token(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json={"title": "t", "destination": "https://a.b"})
    assert_error(response, 401, "missing_token")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.headers.get("X-Request-Id")


def test_missing_token_wins_over_bad_parameters(client: TestClient) -> None:
    response = client.get(LINKS_PATH, params={"limit": "abc"})
    assert_error(response, 401, "missing_token")


# --- secrets stay secret -------------------------------------------------------------------------

UNIQUE_SECRET = "S3cr3t-never-logged-7f3a9c"


def _journal_texts(client: TestClient) -> list[str]:
    return [
        client.get("/_emulator/requests").text,
        client.get("/_emulator/requests", params={"detail": "1"}).text,
        client.get("/_emulator/requests", params={"detail": "true"}).text,
    ]


def test_client_secret_never_appears_in_journal_or_logs(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    register_app(client, "secretive_app", UNIQUE_SECRET)
    token = token_for(client, "secretive_app", UNIQUE_SECRET)
    client.post(TOKEN_PATH, json={"clientId": "secretive_app", "clientSecret": UNIQUE_SECRET + "x"})
    client.post(TOKEN_PATH, json={"clientId": "nobody", "clientSecret": UNIQUE_SECRET})
    client.post(TOKEN_PATH, json={"clientId": 5, "clientSecret": UNIQUE_SECRET})
    client.post(TOKEN_PATH, json={"clientSecret": UNIQUE_SECRET})
    client.post(
        TOKEN_PATH,
        content=json.dumps({"clientId": "secretive_app", "clientSecret": UNIQUE_SECRET}, indent=2),
        headers=JSON,
    )
    client.get(LINKS_PATH, params={"limit": 1}, headers=bearer(token))
    journal = client.get("/_emulator/requests").json()["requests"]
    assert len(journal) >= 7
    assert any(entry["clientId"] == "secretive_app" for entry in journal)
    for text in _journal_texts(client):
        assert UNIQUE_SECRET not in text
        assert UNIQUE_SECRET[:8] not in text
        assert token not in text  # the access token is a credential too
    assert UNIQUE_SECRET not in caplog.text
    assert token not in caplog.text


def test_secret_behind_an_escaped_key_is_masked_in_the_journal(client: TestClient) -> None:
    """JSON lets a client spell the key `client\\u0053ecret`; it is still the secret."""
    register_app(client, "secretive_app", UNIQUE_SECRET)
    raw = '{"clientId":"secretive_app","client\\u0053ecret":"' + UNIQUE_SECRET + '"}'
    assert client.post(TOKEN_PATH, content=raw, headers=JSON).status_code == 200
    for text in _journal_texts(client):
        assert UNIQUE_SECRET not in text


def test_secret_cut_by_the_journal_truncation_is_not_shown(client: TestClient) -> None:
    """A body is captured up to a size; a secret straddling that cut must not leak its start."""
    register_app(client, "secretive_app", UNIQUE_SECRET)
    head = b'{"clientId":"secretive_app",'
    key = b'"clientSecret":"'
    capture = 16 * 1024
    padding = b" " * (capture - len(head) - len(key) - 10)  # the cut falls 10 bytes in
    raw = head + padding + key + UNIQUE_SECRET.encode() + b'"}'
    assert client.post(TOKEN_PATH, content=raw, headers=JSON).status_code == 200
    for text in _journal_texts(client):
        assert UNIQUE_SECRET[:10] not in text


def test_authorization_header_is_masked_in_the_journal(client: TestClient) -> None:
    token = token_for(client)
    client.get(LINKS_PATH, params={"limit": 1}, headers=bearer(token))
    detail = client.get("/_emulator/requests", params={"detail": "1"}).text
    assert token not in detail
    assert token.split(".")[-1] not in detail


def test_exchange_is_journaled_with_its_client_id(frozen_client: TestClient) -> None:
    token_for(frozen_client)
    entries = frozen_client.get("/_emulator/requests").json()["requests"]
    exchange = [e for e in entries if e["path"] == TOKEN_PATH]
    assert exchange and exchange[-1]["clientId"] == SANDBOX_CLIENT_ID
    assert exchange[-1]["status"] == 200
    assert exchange[-1]["time"] == FROZEN_NOW


def test_a_caller_is_found_anew_once_its_workspace_changes(client: TestClient) -> None:
    """Callers are kept by their Authorization value while the registry is unchanged: a change
    to the workspace (as a scenario or the pytest handle makes) applies to the next call."""
    from emulator.registry import WorkspaceChange, WorkspaceSettings

    register_app(client, "lv_kept", "lv_kept_secret", environment="live", workspace_id="ws_kept")
    headers = auth_headers(client, "lv_kept", "lv_kept_secret")
    assert client.get(LINKS_PATH, headers=headers).status_code == 200
    registry = client.app.state.emulator.registry  # type: ignore[attr-defined]
    registry.put_workspace(WorkspaceChange("ws_kept", WorkspaceSettings(api_access=False)))
    assert_error(client.get(LINKS_PATH, headers=headers), 403, "api_access_disabled")
