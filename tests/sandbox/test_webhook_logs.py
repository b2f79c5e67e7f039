"""`/webhooks/logs` and `/webhooks/logs/{notificationId}`: what Spark reports about deliveries."""

from __future__ import annotations

import json

import pytest
import requests

from tests.fixtures.sandbox import HTTP_TIMEOUT, SandboxHandle, WebhookReceiver
from tests.spec import assert_request_matches, spec_checked_json


def test_it_logs_the_latest_attempt_of_each_notification(
    sandbox: SandboxHandle, webhook_receiver: WebhookReceiver
) -> None:
    webhook = sandbox.register_webhook(webhook_receiver.url)
    webhook_receiver.respond_with(500)
    event = sandbox.api("POST", "/simulation/events/usereligibility").json()["simulatedEvent"]
    sandbox.wait_for_deliveries()
    assert_request_matches("GET", "/webhooks/logs")

    response = sandbox.api("GET", "/webhooks/logs")

    assert response.status_code == 200
    body = spec_checked_json(response)
    [log] = body["webhookNotificationLogs"]
    assert log["webhookId"] == webhook["webhookId"]
    assert log["partnerEventId"] == event["id"]
    assert log["notificationType"] == "UserEligibilityUpdated"
    assert log["responseStatusCode"] == 200
    assert log["requestTimeout"] is False
    assert log["webhookUrl"] == webhook_receiver.url
    assert log["tenantId"]
    assert body["pagination"]["totalRecords"] == 1


def test_it_filters_logs_by_webhook_and_pages_them(
    sandbox: SandboxHandle, webhook_receiver: WebhookReceiver
) -> None:
    first = sandbox.register_webhook(webhook_receiver.url + "/first")
    sandbox.register_webhook(webhook_receiver.url + "/second")
    for _ in range(3):
        sandbox.api("POST", "/simulation/events/usereligibility")
    sandbox.wait_for_deliveries()
    query = {"webhookId": first["webhookId"], "page": "2", "pageSize": "2"}
    assert_request_matches("GET", "/webhooks/logs", query=query)

    response = sandbox.api("GET", "/webhooks/logs", params=query)

    body = spec_checked_json(response)
    assert [log["webhookId"] for log in body["webhookNotificationLogs"]] == [first["webhookId"]]
    assert body["pagination"]["totalRecords"] == 3
    assert body["pagination"]["previousPage"] == 1


def test_it_shows_one_notification_with_the_exact_body_sent(
    sandbox: SandboxHandle, webhook_receiver: WebhookReceiver
) -> None:
    sandbox.register_webhook(webhook_receiver.url)
    sandbox.api("POST", "/simulation/events/pricecurve", json={})
    [received] = webhook_receiver.wait_for(1)
    notification_id = json.loads(received.body)["notificationId"]
    sandbox.wait_for_deliveries()

    response = sandbox.api("GET", f"/webhooks/logs/{notification_id}")

    assert response.status_code == 200
    body = spec_checked_json(response)
    assert body["notificationContent"].encode() == received.body
    assert body["webhookNotificationLog"]["notificationId"] == notification_id
    assert (
        body["webhookNotificationLog"]["sparkSignature"] == received.headers["X-Payload-Signature"]
    )


def test_it_reports_an_unknown_notification_as_a_bad_request(sandbox: SandboxHandle) -> None:
    response = sandbox.api("GET", "/webhooks/logs/not-a-notification")

    assert response.status_code == 400
    assert "notificationId" in spec_checked_json(response)["errors"]


@pytest.mark.parametrize(
    ("fail", "timed_out", "status"), [("refused", False, "Unhealthy"), ("timeout", True, "TimeOut")]
)
def test_it_logs_failed_deliveries_and_marks_the_webhook_when_delivery_is_switched_off(
    sandbox: SandboxHandle,
    webhook_receiver: WebhookReceiver,
    fail: str,
    timed_out: bool,
    status: str,
) -> None:
    webhook = sandbox.register_webhook(webhook_receiver.url)
    sandbox.control.set_delivery(fail=fail)
    event = sandbox.api("POST", "/simulation/events/usereligibility").json()["simulatedEvent"]
    sandbox.wait_for_deliveries()

    [log] = spec_checked_json(sandbox.api("GET", "/webhooks/logs"))["webhookNotificationLogs"]
    current = spec_checked_json(sandbox.api("GET", f"/webhooks/{webhook['webhookId']}"))

    assert webhook_receiver.received == []
    assert log["partnerEventId"] == event["id"]
    assert log["responseStatusCode"] is None
    assert log["requestTimeout"] is timed_out
    assert current["status"] == status
    attempts = sandbox.control.deliveries()
    assert len(attempts) == 4  # Spark's first try and three retries


def test_it_refuses_an_unknown_fail_mode(sandbox: SandboxHandle) -> None:
    response = requests.post(
        sandbox.control.url + "/delivery", json={"fail": "sometimes"}, timeout=HTTP_TIMEOUT
    )

    assert response.status_code == 400
    assert "fail must be one of off, refused, timeout" in response.text
