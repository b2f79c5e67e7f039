"""Webhook delivery end to end: the sandbox POSTs signed notifications to a live receiver."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from devstack.servers import free_port
from sandbox.clock import spark_timestamp
from shared.signing import SIGNATURE_HEADER, verify
from tests.fixtures.sandbox import (
    FAST_RETRY_DELAYS,
    SPARK_TIMESTAMP,
    WEBHOOK_SECRET,
    SandboxHandle,
    WebhookReceiver,
)
from tests.spec import assert_notification_matches

PRICE_CURVE = "/simulation/events/pricecurve"
PAUSED_AT = datetime(2026, 3, 4, 8, 0, tzinfo=UTC)
RESUMED_AT = datetime(2026, 3, 4, 8, 5, tzinfo=UTC)
USER_ELIGIBILITY = "/simulation/events/usereligibility"


def _simulate_price_curve(sandbox: SandboxHandle) -> dict[str, Any]:
    response = sandbox.api("POST", PRICE_CURVE, json={})
    assert response.status_code == 200, response.text
    event: dict[str, Any] = response.json()["simulatedEvent"]
    return event


def _notification(received: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(received.body)
    return body


def test_it_posts_a_signed_event_notification(
    sandbox: SandboxHandle, webhook_receiver: WebhookReceiver
) -> None:
    sandbox.register_webhook(webhook_receiver.url)

    event = _simulate_price_curve(sandbox)

    [received] = webhook_receiver.wait_for(1)
    assert verify([WEBHOOK_SECRET.encode()], received.body, received.headers[SIGNATURE_HEADER])
    assert not verify([b"another secret"], received.body, received.headers[SIGNATURE_HEADER])
    assert received.headers["Content-Type"].startswith("application/json")
    assert_notification_matches(received.body)
    notification = _notification(received)
    assert list(notification) == [
        "notificationId",
        "eventId",
        "eventCreatedAtUtc",
        "notificationSentUtc",
        "notificationType",
        "payload",
    ]
    assert received.body == json.dumps(notification, separators=(",", ":")).encode()
    assert notification["eventId"] == event["id"]
    assert notification["eventCreatedAtUtc"] == event["createdAt"]
    assert SPARK_TIMESTAMP.match(notification["notificationSentUtc"])
    assert notification["notificationType"] == "PriceCurveCreated"
    assert notification["payload"] == event["payload"]
    assert list(notification["payload"])[-1] == "payloadType"


def test_it_sends_each_webhook_only_the_types_it_subscribed_to(
    sandbox: SandboxHandle, webhook_receiver: WebhookReceiver
) -> None:
    sandbox.register_webhook(
        webhook_receiver.url + "/prices", notification_types=("PriceCurveCreated",)
    )
    sandbox.register_webhook(
        webhook_receiver.url + "/users", notification_types=("UserEligibilityUpdated",)
    )

    sandbox.api("POST", PRICE_CURVE, json={})
    sandbox.api("POST", USER_ELIGIBILITY)
    sandbox.wait_for_deliveries()

    by_path = {r.path: _notification(r)["notificationType"] for r in webhook_receiver.received}
    assert by_path == {
        "/webhooks/spark/prices": "PriceCurveCreated",
        "/webhooks/spark/users": "UserEligibilityUpdated",
    }


def test_it_retries_a_failing_webhook_three_times_with_backoff(
    sandbox: SandboxHandle, webhook_receiver: WebhookReceiver
) -> None:
    webhook = sandbox.register_webhook(webhook_receiver.url)
    webhook_receiver.respond_with(500, 500, 500, 500, 500)

    event = _simulate_price_curve(sandbox)
    sandbox.wait_for_deliveries()

    received = webhook_receiver.received
    assert len(received) == 4
    notifications = [_notification(r) for r in received]
    assert {n["notificationId"] for n in notifications} == {notifications[0]["notificationId"]}
    assert {n["eventId"] for n in notifications} == {event["id"]}
    gaps = [later.received_at - earlier.received_at for earlier, later in pairwise(received)]
    for gap, delay in zip(gaps, FAST_RETRY_DELAYS, strict=True):
        assert gap >= delay * 0.9
    attempts = sandbox.control.deliveries()
    assert [a["attempt"] for a in attempts] == [1, 2, 3, 4]
    assert {a["statusCode"] for a in attempts} == {500}
    assert not any(a["succeeded"] for a in attempts)
    status = sandbox.api("GET", f"/webhooks/{webhook['webhookId']}").json()["status"]
    assert status == "Unhealthy"


def test_it_stops_retrying_once_the_webhook_accepts(
    sandbox: SandboxHandle, webhook_receiver: WebhookReceiver
) -> None:
    webhook = sandbox.register_webhook(webhook_receiver.url)
    webhook_receiver.respond_with(500, 503)

    _simulate_price_curve(sandbox)
    sandbox.wait_for_deliveries()

    assert len(webhook_receiver.received) == 3
    assert [a["statusCode"] for a in sandbox.control.deliveries()] == [500, 503, 200]
    status = sandbox.api("GET", f"/webhooks/{webhook['webhookId']}").json()["status"]
    assert status == "Healthy"


def test_it_retries_when_the_webhook_cannot_be_reached(sandbox: SandboxHandle) -> None:
    sandbox.register_webhook(f"http://127.0.0.1:{free_port()}/nobody-listens")

    _simulate_price_curve(sandbox)
    sandbox.wait_for_deliveries()

    attempts = sandbox.control.deliveries()
    assert len(attempts) == 4
    assert {a["statusCode"] for a in attempts} == {None}
    assert all("ConnectionError" in a["error"] for a in attempts)


def test_it_retries_when_the_webhook_times_out(
    start_sandbox: Callable[..., SandboxHandle], webhook_receiver: WebhookReceiver
) -> None:
    impatient = start_sandbox(delivery_timeout=0.2, delivery_delays=(0.01, 0.01, 0.01))
    webhook = impatient.register_webhook(webhook_receiver.url)
    webhook_receiver.delay = 0.5

    _simulate_price_curve(impatient)
    impatient.wait_for_deliveries(timeout=10)

    attempts = impatient.control.deliveries()
    assert len(attempts) == 4
    assert all(a["timedOut"] for a in attempts)
    status = impatient.api("GET", f"/webhooks/{webhook['webhookId']}").json()["status"]
    assert status == "TimeOut"


def test_it_delivers_every_event_twice_when_duplicating(
    sandbox: SandboxHandle, webhook_receiver: WebhookReceiver
) -> None:
    sandbox.register_webhook(webhook_receiver.url)
    sandbox.control.set_delivery(duplicate=True)

    event = _simulate_price_curve(sandbox)
    sandbox.wait_for_deliveries()

    notifications = [_notification(r) for r in webhook_receiver.received]
    assert len(notifications) == 2
    assert {n["eventId"] for n in notifications} == {event["id"]}
    assert len({n["notificationId"] for n in notifications}) == 2


def test_it_drops_deliveries_but_keeps_the_event(
    sandbox: SandboxHandle, webhook_receiver: WebhookReceiver
) -> None:
    sandbox.register_webhook(webhook_receiver.url)
    sandbox.control.set_delivery(drop=True)

    event = _simulate_price_curve(sandbox)
    sandbox.wait_for_deliveries()

    assert webhook_receiver.received == []
    [attempt] = sandbox.control.deliveries()
    assert attempt["dropped"] is True
    assert attempt["eventId"] == event["id"]
    assert sandbox.api("GET", f"/events/{event['id']}").status_code == 200


def test_it_waits_before_delivering_when_delayed(
    sandbox: SandboxHandle, webhook_receiver: WebhookReceiver
) -> None:
    sandbox.register_webhook(webhook_receiver.url)
    sandbox.control.set_delivery(delay=0.3)
    started = time.monotonic()

    _simulate_price_curve(sandbox)

    [received] = webhook_receiver.wait_for(1)
    assert received.received_at - started >= 0.3


def test_it_holds_deliveries_while_paused_and_sends_them_on_resume(
    sandbox: SandboxHandle, webhook_receiver: WebhookReceiver
) -> None:
    sandbox.register_webhook(webhook_receiver.url)
    sandbox.control.set_delivery(enabled=False)
    # The sandbox clock stands still during the pause and moves on just before the resume:
    # every attempt records the sandbox time it was made at, so one made during the pause
    # would show the earlier time.
    sandbox.control.set_clock(PAUSED_AT, frozen=True)
    first = _simulate_price_curve(sandbox)
    second = _simulate_price_curve(sandbox)
    during_pause = sandbox.control.deliveries()
    sandbox.control.set_clock(RESUMED_AT, frozen=True)

    sandbox.control.set_delivery(enabled=True)

    received = webhook_receiver.wait_for(2)
    sandbox.wait_for_deliveries()
    assert during_pause == []
    assert {_notification(r)["eventId"] for r in received} == {first["id"], second["id"]}
    attempts = sandbox.control.deliveries()
    assert [a["sentAt"] for a in attempts] == [spark_timestamp(RESUMED_AT)] * 2
    assert {a["eventId"] for a in attempts} == {first["id"], second["id"]}


def test_it_sends_nothing_to_a_disabled_webhook(
    sandbox: SandboxHandle, webhook_receiver: WebhookReceiver
) -> None:
    disabled = sandbox.register_webhook(webhook_receiver.url + "/disabled")
    sandbox.register_webhook(webhook_receiver.url + "/enabled")
    response = sandbox.api(
        "PUT", f"/webhooks/{disabled['webhookId']}/enabled", params={"enabled": "false"}
    )
    assert response.status_code == 204

    _simulate_price_curve(sandbox)
    sandbox.wait_for_deliveries()

    assert [r.path for r in webhook_receiver.received] == ["/webhooks/spark/enabled"]


def test_it_sends_no_signature_for_a_webhook_without_secret(
    sandbox: SandboxHandle, webhook_receiver: WebhookReceiver
) -> None:
    sandbox.register_webhook(webhook_receiver.url, secret=None)

    _simulate_price_curve(sandbox)

    [received] = webhook_receiver.wait_for(1)
    assert SIGNATURE_HEADER not in received.headers


def test_it_abandons_retries_when_the_sandbox_is_reset(
    sandbox: SandboxHandle, webhook_receiver: WebhookReceiver
) -> None:
    sandbox.register_webhook(webhook_receiver.url)
    webhook_receiver.respond_with(500, 500, 500, 500)
    sandbox.control.set_delivery(delay=0.5)
    _simulate_price_curve(sandbox)

    sandbox.control.reset()

    # Nothing queued or in flight any more: an attempt that survived the reset would have
    # been made (after its 0.5 s delay) before this returns.
    sandbox.wait_for_deliveries()
    assert webhook_receiver.received == []
    assert sandbox.control.deliveries() == []
