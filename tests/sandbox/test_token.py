"""The sandbox's OAuth2 token endpoint and the Bearer check on every API path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.fixtures.sandbox import HTTP_TIMEOUT, SandboxHandle


def _post_form(
    handle: SandboxHandle, data: dict[str, str], auth: tuple[str, str] | None = None
) -> requests.Response:
    return requests.post(handle.token_url, data=data, auth=auth, timeout=HTTP_TIMEOUT)


def test_it_issues_a_bearer_token_for_client_credentials(sandbox: SandboxHandle) -> None:
    response = _post_form(
        sandbox,
        {
            "grant_type": "client_credentials",
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
        },
    )

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"]
    assert response.headers["Cache-Control"] == "no-store"
    api = requests.get(
        sandbox.base_url + "/webhooks",
        headers={"Authorization": f"Bearer {body['access_token']}"},
        timeout=HTTP_TIMEOUT,
    )
    assert api.status_code == 200


def test_it_accepts_http_basic_client_authentication(sandbox: SandboxHandle) -> None:
    response = _post_form(
        sandbox,
        {"grant_type": "client_credentials"},
        auth=(sandbox.client_id, sandbox.client_secret),
    )

    assert response.status_code == 200
    assert response.json()["access_token"]


def test_it_rejects_a_wrong_secret_as_invalid_client(sandbox: SandboxHandle) -> None:
    form = _post_form(
        sandbox,
        {
            "grant_type": "client_credentials",
            "client_id": sandbox.client_id,
            "client_secret": "not-the-secret",
        },
    )
    basic = _post_form(
        sandbox, {"grant_type": "client_credentials"}, auth=(sandbox.client_id, "wrong")
    )

    assert form.status_code == 400
    assert form.json() == {"error": "invalid_client"}
    assert basic.status_code == 401
    assert basic.json() == {"error": "invalid_client"}
    assert basic.headers["WWW-Authenticate"].startswith("Basic")


def test_it_rejects_an_unknown_client_id(sandbox: SandboxHandle) -> None:
    response = _post_form(
        sandbox,
        {
            "grant_type": "client_credentials",
            "client_id": "someone-else",
            "client_secret": sandbox.client_secret,
        },
    )

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_client"}


def test_it_rejects_other_grant_types(sandbox: SandboxHandle) -> None:
    response = _post_form(
        sandbox,
        {
            "grant_type": "password",
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
        },
    )

    assert response.status_code == 400
    assert response.json() == {"error": "unsupported_grant_type"}


def test_it_requires_a_form_encoded_request(sandbox: SandboxHandle) -> None:
    response = requests.post(
        sandbox.token_url,
        json={
            "grant_type": "client_credentials",
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
        },
        timeout=HTTP_TIMEOUT,
    )

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/events"),
        ("GET", "/events/some-id"),
        ("GET", "/webhooks"),
        ("POST", "/webhooks"),
        ("GET", "/webhooks/logs"),
        ("POST", "/simulation/events/usereligibility"),
    ],
)
def test_it_requires_a_bearer_token_on_api_paths(
    sandbox: SandboxHandle, method: str, path: str
) -> None:
    missing = requests.request(method, sandbox.base_url + path, timeout=HTTP_TIMEOUT)
    unknown = requests.request(
        method,
        sandbox.base_url + path,
        headers={"Authorization": "Bearer made-up"},
        timeout=HTTP_TIMEOUT,
    )

    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert unknown.status_code == 401
    assert 'error="invalid_token"' in unknown.headers["WWW-Authenticate"]
    assert sandbox.state.list_webhooks() == []
    assert sandbox.state.events_newest_first(0, 10) == ([], 0)


def test_it_refuses_tokens_expired_through_the_control_endpoint(sandbox: SandboxHandle) -> None:
    old = sandbox.token()
    headers = {"Authorization": f"Bearer {old}"}
    assert requests.get(sandbox.base_url + "/events", headers=headers, timeout=5).status_code == 200

    sandbox.control.expire_tokens()

    assert requests.get(sandbox.base_url + "/events", headers=headers, timeout=5).status_code == 401
    fresh = {"Authorization": f"Bearer {sandbox.token()}"}
    assert requests.get(sandbox.base_url + "/events", headers=fresh, timeout=5).status_code == 200


def _issue_token(sandbox: SandboxHandle) -> dict[str, Any]:
    response = _post_form(
        sandbox,
        {
            "grant_type": "client_credentials",
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
        },
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_it_refuses_a_token_once_its_lifetime_is_over(
    start_sandbox: Callable[..., SandboxHandle],
) -> None:
    sandbox = start_sandbox(token_ttl=600, tokens_on_sandbox_clock=True)
    sandbox.control.set_clock("2026-03-04T10:00:00+00:00", frozen=True)
    issued = _issue_token(sandbox)
    headers = {"Authorization": f"Bearer {issued['access_token']}"}
    url = sandbox.base_url + "/events"

    sandbox.control.advance_clock(599)
    a_second_before = requests.get(url, headers=headers, timeout=HTTP_TIMEOUT).status_code
    sandbox.control.advance_clock(1)
    at_expiry = requests.get(url, headers=headers, timeout=HTTP_TIMEOUT).status_code

    assert issued["expires_in"] == 600
    assert a_second_before == 200
    assert at_expiry == 401


def test_it_announces_a_lifetime_under_a_second_as_one_second(
    start_sandbox: Callable[..., SandboxHandle],
) -> None:
    short_lived = start_sandbox(token_ttl=0.3)

    assert _issue_token(short_lived)["expires_in"] == 1
