"""`/webhooks` and `/webhooks/{webhookId}[/enabled]`: registering and managing webhooks."""

from __future__ import annotations

from tests.fixtures.sandbox import SPARK_TIMESTAMP, WEBHOOK_SECRET, SandboxHandle
from tests.spec import assert_request_matches, spec_checked_json

RECEIVER = "http://127.0.0.1:9/webhooks/spark"


def _stored_secret(sandbox: SandboxHandle, webhook_id: str) -> str | None:
    webhook = sandbox.state.get_webhook(webhook_id)
    assert webhook is not None
    return webhook.secret


def test_it_registers_a_webhook_without_echoing_the_secret(sandbox: SandboxHandle) -> None:
    body = {
        "name": "Partner ingress",
        "webhookSecret": WEBHOOK_SECRET,
        "webhookUrl": RECEIVER,
        "notificationTypes": ["PriceCurveCreated", "UserEligibilityUpdated"],
    }
    assert_request_matches("POST", "/webhooks", body)

    response = sandbox.api("POST", "/webhooks", json=body)

    assert response.status_code == 201
    created = spec_checked_json(response)
    assert created["webhookUrl"] == RECEIVER
    assert created["name"] == "Partner ingress"
    assert created["notificationTypes"] == ["PriceCurveCreated", "UserEligibilityUpdated"]
    assert created["enabled"] is True
    assert created["status"] == "New"
    assert SPARK_TIMESTAMP.match(created["createdDate"])
    assert WEBHOOK_SECRET not in response.text
    assert _stored_secret(sandbox, created["webhookId"]) == WEBHOOK_SECRET


def test_it_lists_and_fetches_registered_webhooks(sandbox: SandboxHandle) -> None:
    first = sandbox.register_webhook(RECEIVER, name="first")
    second = sandbox.register_webhook(RECEIVER + "/2", name="second")

    listed = sandbox.api("GET", "/webhooks")
    fetched = sandbox.api("GET", f"/webhooks/{second['webhookId']}")

    assert listed.status_code == 200
    ids = [w["webhookId"] for w in spec_checked_json(listed)["webhooks"]]
    assert ids == [first["webhookId"], second["webhookId"]]
    assert fetched.status_code == 200
    assert spec_checked_json(fetched) == second


def test_it_answers_404_for_an_unknown_webhook(sandbox: SandboxHandle) -> None:
    response = sandbox.api("GET", "/webhooks/no-such-webhook")

    assert response.status_code == 404
    spec_checked_json(response)


def test_it_rejects_a_webhook_without_url_as_a_validation_problem(sandbox: SandboxHandle) -> None:
    response = sandbox.api("POST", "/webhooks", json={"name": "no url"})

    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = spec_checked_json(response)
    assert "webhookUrl" in problem["errors"]
    assert sandbox.state.list_webhooks() == []


def test_it_rejects_unknown_notification_types_and_relative_urls(sandbox: SandboxHandle) -> None:
    response = sandbox.api(
        "POST",
        "/webhooks",
        json={"webhookUrl": "/relative", "notificationTypes": ["SomethingElse"]},
    )

    assert response.status_code == 400
    problem = spec_checked_json(response)
    assert set(problem["errors"]) == {"webhookUrl", "notificationTypes"}


def test_it_rejects_a_body_that_is_not_json(sandbox: SandboxHandle) -> None:
    response = sandbox.api(
        "POST", "/webhooks", data=b"{not json", headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    spec_checked_json(response)


def test_it_tolerates_unknown_request_fields(sandbox: SandboxHandle) -> None:
    response = sandbox.api(
        "POST", "/webhooks", json={"webhookUrl": RECEIVER, "futureField": {"x": 1}}
    )

    assert response.status_code == 201
    created = spec_checked_json(response)
    assert created["notificationTypes"] == []
    assert "futureField" not in created


def test_it_replaces_a_webhook_with_put_and_keeps_the_secret(sandbox: SandboxHandle) -> None:
    webhook = sandbox.register_webhook(RECEIVER)
    path = f"/webhooks/{webhook['webhookId']}"
    body = {
        "webhookUrl": RECEIVER + "/v2",
        "notificationTypes": ["UserEligibilityUpdated"],
        "enabled": False,
        "name": "renamed",
    }
    assert_request_matches("PUT", path, body)

    response = sandbox.api("PUT", path, json=body)

    assert response.status_code == 200
    updated = spec_checked_json(response)
    assert updated["webhookUrl"] == RECEIVER + "/v2"
    assert updated["notificationTypes"] == ["UserEligibilityUpdated"]
    assert updated["enabled"] is False
    assert updated["name"] == "renamed"
    assert updated["createdDate"] == webhook["createdDate"]
    assert _stored_secret(sandbox, webhook["webhookId"]) == WEBHOOK_SECRET


def test_it_changes_the_secret_when_put_gives_one(sandbox: SandboxHandle) -> None:
    webhook = sandbox.register_webhook(RECEIVER)
    path = f"/webhooks/{webhook['webhookId']}"

    response = sandbox.api("PUT", path, json={"webhookUrl": RECEIVER, "webhookSecret": "rotated"})

    assert response.status_code == 200
    assert "rotated" not in response.text
    assert _stored_secret(sandbox, webhook["webhookId"]) == "rotated"


def test_it_patches_only_the_given_fields(sandbox: SandboxHandle) -> None:
    webhook = sandbox.register_webhook(RECEIVER, name="original")
    path = f"/webhooks/{webhook['webhookId']}"
    assert_request_matches("PATCH", path, {"name": "patched"})

    response = sandbox.api("PATCH", path, json={"name": "patched"})

    assert response.status_code == 200
    patched = spec_checked_json(response)
    assert patched["name"] == "patched"
    assert patched["webhookUrl"] == webhook["webhookUrl"]
    assert patched["notificationTypes"] == webhook["notificationTypes"]
    assert patched["enabled"] is True


def test_it_answers_404_when_updating_an_unknown_webhook(sandbox: SandboxHandle) -> None:
    put = sandbox.api("PUT", "/webhooks/missing", json={"webhookUrl": RECEIVER})
    patch = sandbox.api("PATCH", "/webhooks/missing", json={"name": "x"})

    assert put.status_code == 404
    spec_checked_json(put)
    assert patch.status_code == 404
    spec_checked_json(patch)


def test_it_deletes_a_webhook(sandbox: SandboxHandle) -> None:
    webhook = sandbox.register_webhook(RECEIVER)
    path = f"/webhooks/{webhook['webhookId']}"

    deleted = sandbox.api("DELETE", path)
    again = sandbox.api("DELETE", path)

    assert deleted.status_code == 204
    spec_checked_json(deleted)
    assert sandbox.api("GET", path).status_code == 404
    assert again.status_code == 404
    assert isinstance(spec_checked_json(again), str)


def test_it_enables_and_disables_a_webhook(sandbox: SandboxHandle) -> None:
    webhook = sandbox.register_webhook(RECEIVER)
    path = f"/webhooks/{webhook['webhookId']}/enabled"
    assert_request_matches("PUT", path, query={"enabled": "false"})

    disabled = sandbox.api("PUT", path, params={"enabled": "false"})
    after_disable = sandbox.api("GET", f"/webhooks/{webhook['webhookId']}").json()
    enabled = sandbox.api("PUT", path, params={"enabled": "true"})
    after_enable = sandbox.api("GET", f"/webhooks/{webhook['webhookId']}").json()

    assert disabled.status_code == 204
    spec_checked_json(disabled)
    assert after_disable["enabled"] is False
    assert enabled.status_code == 204
    assert after_enable["enabled"] is True


def test_it_rejects_a_missing_enabled_flag_and_unknown_webhooks(sandbox: SandboxHandle) -> None:
    webhook = sandbox.register_webhook(RECEIVER)

    missing_flag = sandbox.api("PUT", f"/webhooks/{webhook['webhookId']}/enabled")
    unknown = sandbox.api("PUT", "/webhooks/missing/enabled", params={"enabled": "true"})

    assert missing_flag.status_code == 400
    assert unknown.status_code == 404
    spec_checked_json(unknown)
