"""LPC acknowledgements through the whole path: sandbox → ingress → worker → sandbox's
POST /reports. Our registry decides (known target: acknowledged, unknown: declined); the
acknowledgement goes out once, through the reports sender's retries and idempotency key."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from celery import Celery

from shared.db import Connection
from tests.fixtures.sandbox import SandboxHandle, spark_env
from tests.fixtures.services import IngressServer, WorkerProcess
from tests.lpc.support import resource_payload, resource_target
from tests.waiting import wait_for
from tests.worker.cli import run, run_json
from tests.worker.events import body, notification
from worker.events.inbox import ingest
from worker.lpc import ack

TYPES = ("ResourceLPCRequested", "LocationLPCRequested")


def _registry(database_url: str) -> None:
    """Our registry knows r-0@loc-0, r-1@loc-1 and location loc-9 with meter point 7079."""
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO users (user_id) VALUES ('u-1')")
        conn.execute(
            "INSERT INTO locations (location_id, user_id, meter_point_ids) VALUES"
            " ('loc-0', 'u-1', '{7070}'), ('loc-1', 'u-1', '{7070}'), ('loc-9', 'u-1', '{7079}')"
        )
        conn.execute(
            "INSERT INTO resources (resource_id, user_id, location_id, resource_type) VALUES"
            " ('r-0', 'u-1', 'loc-0', 'Charger'), ('r-1', 'u-1', 'loc-1', 'Charger')"
        )


def _resources(*numbers: int) -> list[dict[str, Any]]:
    return [
        {"resource": {"locationId": f"loc-{n}", "resourceId": f"r-{n}", "meterPointId": "7070"}}
        for n in numbers
    ]


def _ack(database_url: str, event_id: str) -> dict[str, Any] | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT status, attempts, ambiguous_attempts FROM lpc_acks WHERE event_id = %s",
            (event_id,),
        ).fetchone()
    return None if row is None else dict(zip(("status", "attempts", "ambiguous"), row, strict=True))


def _outcomes(database_url: str, event_id: str) -> list[str | None]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT outcome FROM lpc_ack_attempts WHERE event_id = %s ORDER BY attempt",
            (event_id,),
        ).fetchall()
    return [row[0] for row in rows]


def _sent(database_url: str, event_id: str) -> Callable[[], bool]:
    return lambda: (_ack(database_url, event_id) or {}).get("status") == "sent"


def _bodies(sandbox: SandboxHandle, event_id: str) -> list[dict[str, Any]]:
    return [report.body for report in sandbox.sandbox.reports.reports(event_id)]


@pytest.mark.slow
def test_it_acknowledges_known_targets_declines_unknown_ones_once_though_delivered_twice(
    sandbox: SandboxHandle,
    database_url: str,
    redis_url: str,
    start_ingress: Callable[..., IngressServer],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    _registry(database_url)
    ingress = start_ingress(redis_url, secret="e2e-secret")
    start_worker(database_url, redis_url, **spark_env(sandbox))
    sandbox.register_webhook(ingress.webhook_url, secret="e2e-secret", notification_types=TYPES)
    sandbox.control.set_delivery(duplicate=True)

    answer = sandbox.api(
        "POST", "/simulation/events/lpc/resources", json={"resources": _resources(0, 1, 2)}
    )
    assert answer.status_code == 200, answer.text
    resource_event = answer.json()["simulatedEvent"]["id"]
    location = {"location": {"locationId": "loc-9", "meterPointId": "7079"}}
    answer = sandbox.api("POST", "/simulation/events/lpc/locations", json={"locations": [location]})
    location_event = answer.json()["simulatedEvent"]["id"]

    wait_for(_sent(database_url, resource_event), 60, "the resource event's acknowledgement")
    wait_for(_sent(database_url, location_event), 60, "the location event's acknowledgement")
    sandbox.wait_for_deliveries(timeout=10)
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM event_deliveries WHERE event_id = %s", (resource_event,)
        ).fetchone()
    assert row == (2,)

    [resource_ack] = _bodies(sandbox, resource_event)
    [payload] = resource_ack["payloads"]
    assert payload["payloadType"] == "ResourceLPCAcknowledgement"
    assert sorted(t["resourceId"] for t in payload["acknowledgedTargets"]) == ["r-0", "r-1"]
    assert payload["declinedTargets"] == [
        {"meterPointId": "7070", "locationId": "loc-2", "resourceId": "r-2"}
    ]
    [location_ack] = _bodies(sandbox, location_event)
    assert location_ack["payloads"] == [
        {
            "payloadType": "LocationLPCAcknowledgement",
            "acknowledgedTargets": [{"locationId": "loc-9", "meterPointId": "7079"}],
            "declinedTargets": [],
        }
    ]
    assert _ack(database_url, resource_event) == {"status": "sent", "attempts": 1, "ambiguous": 0}

    shown = run_json(database_url, "lpc", "show", resource_event)["ack"]
    assert (shown["status"], shown["acknowledged"], shown["declined"]) == ("sent", 2, 1)
    assert [a["outcome"] for a in shown["attemptList"]] == ["accepted"]
    assert "acknowledgement: sent" in run(database_url, "lpc", "show", resource_event).output
    listed = {item["eventId"]: item for item in run_json(database_url, "lpc", "list")}
    assert listed[location_event]["acknowledgement"] == "sent"


@pytest.mark.slow
def test_it_sends_the_acknowledgement_again_after_a_500_and_a_lost_answer_under_one_key(
    sandbox: SandboxHandle,
    database_url: str,
    redis_url: str,
    start_ingress: Callable[..., IngressServer],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    _registry(database_url)
    ingress = start_ingress(redis_url, secret="e2e-secret")
    start_worker(database_url, redis_url, **spark_env(sandbox))
    sandbox.register_webhook(ingress.webhook_url, secret="e2e-secret", notification_types=TYPES)
    sandbox.control.set_report_faults(errorRate=1, status500Share=1)

    answer = sandbox.api(
        "POST", "/simulation/events/lpc/resources", json={"resources": _resources(0, 2)}
    )
    event_id = answer.json()["simulatedEvent"]["id"]
    wait_for(lambda: "failed" in _outcomes(database_url, event_id), 60, "a failed attempt")
    sandbox.control.set_report_faults(errorRate=1, lostAnswerShare=1)
    wait_for(lambda: "unknown" in _outcomes(database_url, event_id), 60, "an unanswered attempt")
    sandbox.control.clear_report_faults()
    wait_for(_sent(database_url, event_id), 60, "the acknowledgement accepted")

    outcomes = _outcomes(database_url, event_id)
    assert outcomes.index("failed") < outcomes.index("unknown") < outcomes.index("accepted")
    assert outcomes.count("accepted") == 1
    state = _ack(database_url, event_id)
    assert state is not None
    assert state["ambiguous"] >= 1
    # The lost answer left a copy at the sandbox; the resend is the same report, byte for
    # byte, under the same Idempotency-Key, and the ledger has it accepted once.
    bodies = _bodies(sandbox, event_id)
    assert len(bodies) == outcomes.count("unknown") + 1
    assert all(b == bodies[0] for b in bodies)
    assert bodies[0]["payloads"][0]["declinedTargets"] == [
        {"meterPointId": "7070", "locationId": "loc-2", "resourceId": "r-2"}
    ]
    shown = run_json(database_url, "lpc", "show", event_id)["ack"]
    assert shown["attempts"] == len(outcomes)


def test_it_alerts_once_when_an_acknowledgement_is_not_accepted_within_15_minutes(
    db: Connection, worker_app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    document = notification(
        notification_type="ResourceLPCRequested", payload=resource_payload(resource_target("r"))
    )
    ingest(
        db,
        delivery_id=str(uuid.uuid4()),
        raw=body(document),
        received_at=datetime.now(UTC),
        source="webhook",
        settings=worker_app.conf.spark_settings,
        sender=worker_app,
    )
    db.commit()
    row = db.execute(
        "SELECT status, due_by - created_at AS within, next_attempt_at <= now() AS due"
        " FROM lpc_acks WHERE event_id = %s",
        (document["eventId"],),
    ).fetchone()
    assert row == {"status": "due", "within": timedelta(minutes=5), "due": True}

    now = datetime.now(UTC)
    assert ack.sweep(db, now=now + timedelta(minutes=14)).alerted == []
    with caplog.at_level(logging.ERROR):
        assert ack.sweep(db, now=now + timedelta(minutes=16)).alerted == [document["eventId"]]
        assert ack.sweep(db, now=now + timedelta(minutes=17)).alerted == []
    alerts = [r for r in caplog.records if "LPC acknowledgement LATE" in r.getMessage()]
    assert len(alerts) == 1
    assert json.dumps(getattr(alerts[0], "alert", None)) == '"lpc_ack_late"'
