"""LPC acknowledgements through the whole path: sandbox → ingress → worker → the control
system (the http dispatcher's stand-in) → sandbox's POST /reports. The control system's answer
decides (accepted: acknowledged; refused, failed or unknown to our registry: declined); the
acknowledgement goes once, through the reports sender's retries and idempotency key, as soon
as every cap is answered and at the latest SPARK_LPC_ACK_WITHIN after the event arrived."""

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
from psycopg.rows import dict_row

from devstack.servers import free_port
from shared.db import Connection
from tests.curves.control import ControlSystem
from tests.fixtures.sandbox import SandboxHandle, spark_env
from tests.fixtures.services import IngressServer, WorkerProcess
from tests.lpc.support import caps_from_now, resource_payload, resource_target
from tests.waiting import wait_for
from tests.worker.cli import run, run_json
from tests.worker.events import body, notification
from worker.events.inbox import ingest
from worker.lpc import ack
from worker.reports.sender import BACKOFF_BASE_SECONDS, BACKOFF_MAX_SECONDS

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
            "SELECT status, attempts, ambiguous_attempts FROM reports"
            " WHERE kind = 'lpc_ack' AND event_id = %s",
            (event_id,),
        ).fetchone()
    return None if row is None else dict(zip(("status", "attempts", "ambiguous"), row, strict=True))


def _outcomes(database_url: str, event_id: str) -> list[str | None]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT t.outcome FROM report_attempts t JOIN reports r ON r.id = t.report_id"
            " WHERE r.kind = 'lpc_ack' AND r.event_id = %s ORDER BY t.attempt",
            (event_id,),
        ).fetchall()
    return [row[0] for row in rows]


def _sent(database_url: str, event_id: str) -> Callable[[], bool]:
    return lambda: (_ack(database_url, event_id) or {}).get("status") == "sent"


def _bodies(sandbox: SandboxHandle, event_id: str) -> list[dict[str, Any]]:
    return [report.body for report in sandbox.sandbox.reports.reports(event_id)]


def _attempts(database_url: str, event_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        rows = conn.execute(
            "SELECT t.outcome, t.http_status, t.started_at, t.response, t.error,"
            "       t.retry_after_seconds AS retry_after"
            " FROM report_attempts t JOIN reports r ON r.id = t.report_id"
            " WHERE r.kind = 'lpc_ack' AND r.event_id = %s ORDER BY t.attempt",
            (event_id,),
        ).fetchall()
    return list(rows)


def _timing(database_url: str, event_id: str) -> dict[str, datetime]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        row = conn.execute(
            "SELECT e.received_at, a.due_by, a.sent_at,"
            "       a.due_by - least(interval '5 seconds', (a.due_by - e.received_at) / 5)"
            "         AS send_at,"
            "       (SELECT min(started_at) FROM report_attempts t"
            "         WHERE t.report_id = a.id) AS first_attempt"
            " FROM reports a JOIN lpc_events e USING (event_id)"
            " WHERE a.kind = 'lpc_ack' AND event_id = %s",
            (event_id,),
        ).fetchone()
    assert row is not None
    return dict(row)


# How long a retry may take beyond its backoff: the retry task's start and the POST.
PICKUP = timedelta(seconds=5)


def _ceiling(attempt: int, retry_after: float | None) -> timedelta:
    """The longest wait after the `attempt`-th failure: the sender's full-jitter backoff
    (base 2 s, doubling), never below Retry-After."""
    ceiling = min(BACKOFF_BASE_SECONDS * 2 ** (attempt - 1), BACKOFF_MAX_SECONDS)
    return timedelta(seconds=max(ceiling, retry_after or 0.0))


@pytest.fixture
def pipeline(
    sandbox: SandboxHandle,
    database_url: str,
    redis_url: str,
    start_ingress: Callable[..., IngressServer],
    start_worker: Callable[..., WorkerProcess],
) -> Callable[..., WorkerProcess]:
    """Spark's LPC events reach the ingress; call it (with worker settings) to start the
    worker, which also reaches the sandbox's API."""
    ingress = start_ingress(redis_url, secret="e2e-secret")
    sandbox.register_webhook(ingress.webhook_url, secret="e2e-secret", notification_types=TYPES)

    def start(**env: str) -> WorkerProcess:
        return start_worker(database_url, redis_url, **spark_env(sandbox), **env)

    return start


@pytest.mark.slow
def test_it_sends_the_caps_and_acknowledges_those_accepted_once_though_delivered_twice(
    sandbox: SandboxHandle,
    database_url: str,
    pipeline: Callable[..., WorkerProcess],
    control: ControlSystem,
) -> None:
    _registry(database_url)
    pipeline(
        SPARK_DISPATCHER="http",
        SPARK_DISPATCH_URL=control.url,
        SPARK_DISPATCH_SECRET="our-dispatch-secret",
    )
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
            "SELECT count(*) FROM event_deliveries WHERE event_id = %s AND source = 'webhook'",
            (resource_event,),
        ).fetchone()
    assert row == (2,)

    # The caps reached the control system once per known target; r-2 was not asked about.
    sent = sorted(
        (p["eventId"], p["resourceId"], p["locationId"], p["meterPointId"]) for p in control.plans()
    )
    assert sent == sorted([
        (resource_event, "r-0", "loc-0", "7070"),
        (resource_event, "r-1", "loc-1", "7070"),
        (location_event, None, "loc-9", "7079"),
    ])  # fmt: skip
    assert {p["kind"] for p in control.plans()} == {"lpc"}
    assert all(len(p["caps"]) == 4 for p in control.plans())

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
    # Sent as soon as the answers were in, well before its deadline.
    timing = _timing(database_url, resource_event)
    assert timing["first_attempt"] < timing["send_at"]
    assert timing["sent_at"] - timing["received_at"] < timedelta(seconds=60)

    detail = run_json(database_url, "lpc", "show", resource_event)
    shown = detail["ack"]
    assert (shown["status"], shown["acknowledged"], shown["declined"]) == ("sent", 2, 1)
    assert [a["outcome"] for a in shown["attemptList"]] == ["accepted"]
    answers = {t["resourceId"]: t for t in detail["targetList"]}
    assert answers["r-0"]["controlSystem"]["answer"] == "accepted"
    assert answers["r-0"]["acknowledgement"] == "acknowledged"
    assert answers["r-2"]["controlSystem"] is None
    assert answers["r-2"]["acknowledgement"] == "declined"
    text = run(database_url, "lpc", "show", resource_event).output
    assert "acknowledgement: sent" in text
    assert "control system: accepted after 1 attempt(s)" in text
    assert "not dispatched: unknown to our registry" in text
    listed = {item["eventId"]: item for item in run_json(database_url, "lpc", "list")}
    assert listed[location_event]["acknowledgement"] == "sent"


@pytest.mark.slow
def test_it_declines_every_target_of_a_control_system_that_is_down_and_acknowledges_in_time(
    sandbox: SandboxHandle, database_url: str, pipeline: Callable[..., WorkerProcess]
) -> None:
    _registry(database_url)
    pipeline(
        SPARK_DISPATCHER="http",
        SPARK_DISPATCH_URL=f"http://127.0.0.1:{free_port()}/plans",
        SPARK_DISPATCH_SECRET="our-dispatch-secret",
        SPARK_LPC_ACK_WITHIN="20s",
    )

    answer = sandbox.api(
        "POST", "/simulation/events/lpc/resources", json={"resources": _resources(0, 1, 2)}
    )
    event_id = answer.json()["simulatedEvent"]["id"]
    wait_for(_sent(database_url, event_id), 60, "the acknowledgement accepted")

    [body] = _bodies(sandbox, event_id)
    [payload] = body["payloads"]
    assert payload["acknowledgedTargets"] == []
    assert sorted(t["resourceId"] for t in payload["declinedTargets"]) == ["r-0", "r-1", "r-2"]
    with psycopg.connect(database_url) as conn:
        plans = conn.execute(
            "SELECT status, attempts, reason FROM lpc_dispatches WHERE event_id = %s", (event_id,)
        ).fetchall()
    assert len(plans) == 2
    assert {status for status, _, _ in plans} == {"failed"}
    assert all(attempts >= 1 for _, attempts, _ in plans)
    assert all("ConnectionError" in reason for _, _, reason in plans)
    assert all(
        reason.endswith("no answer when the acknowledgement was due: declined")
        for *_, reason in plans
    )
    # It waited for answers until just before the deadline, and Spark had it by then.
    timing = _timing(database_url, event_id)
    assert timing["due_by"] - timing["received_at"] == timedelta(seconds=20)
    assert timing["first_attempt"] >= timing["send_at"]
    [report] = sandbox.sandbox.reports.reports(event_id)
    assert report.received_at <= timing["due_by"]


@pytest.mark.slow
def test_it_resends_the_acknowledgement_after_a_500_a_429_and_a_lost_answer_in_time_once(
    sandbox: SandboxHandle, database_url: str, pipeline: Callable[..., WorkerProcess]
) -> None:
    _registry(database_url)
    pipeline(SPARK_LPC_ACK_WITHIN="20s")
    sandbox.control.add_faults(
        "POST", "/reports", [{"status": 500}, {"status": 429, "retryAfter": "3"}]
    )

    answer = sandbox.api(
        "POST", "/simulation/events/lpc/resources", json={"resources": _resources(0, 2)}
    )
    event_id = answer.json()["simulatedEvent"]["id"]
    wait_for(lambda: len(_outcomes(database_url, event_id)) >= 2, 60, "the 500 and the 429")
    # The 429's Retry-After (3 s) leaves time to lose the next answer.
    sandbox.control.set_report_faults(errorRate=1, lostAnswerShare=1)
    wait_for(lambda: "unknown" in _outcomes(database_url, event_id), 60, "an unanswered attempt")
    sandbox.control.clear_report_faults()
    wait_for(_sent(database_url, event_id), 60, "the acknowledgement accepted")

    attempts = _attempts(database_url, event_id)
    outcomes = [a["outcome"] for a in attempts]
    assert outcomes[:2] == ["failed", "failed"]
    assert [a["http_status"] for a in attempts[:2]] == [500, 429]
    assert [a["retry_after"] for a in attempts[:2]] == [None, 3.0]
    assert outcomes.index("unknown") < outcomes.index("accepted") == len(outcomes) - 1
    assert outcomes.count("accepted") == 1
    # The lost answer left a copy at the sandbox; the resend is the same report, byte for
    # byte, under the same Idempotency-Key, and the ledger has it accepted once.
    bodies = _bodies(sandbox, event_id)
    assert len(bodies) == outcomes.count("unknown") + 1
    assert all(b == bodies[0] for b in bodies)
    assert bodies[0]["payloads"][0]["declinedTargets"] == [
        {"meterPointId": "7070", "locationId": "loc-2", "resourceId": "r-2"}
    ]

    # On time by the recorded timestamps: the first attempt by its deadline, each retry within
    # the sender's backoff ceiling after the attempt before (never before a Retry-After), and
    # so the acceptance within SPARK_LPC_ACK_WITHIN plus the retry schedule.
    timing = _timing(database_url, event_id)
    assert timing["first_attempt"] <= timing["send_at"]
    starts = [a["started_at"] for a in attempts]
    ceilings = [_ceiling(n, a["retry_after"]) for n, a in enumerate(attempts[:-1], start=1)]
    for earlier, later, ceiling in zip(starts, starts[1:], ceilings, strict=False):
        assert later - earlier <= ceiling + PICKUP
    assert starts[2] - starts[1] >= timedelta(seconds=3)
    schedule = sum(ceilings, timedelta()) + PICKUP * len(ceilings)
    assert timing["sent_at"] - timing["received_at"] <= timedelta(seconds=20) + schedule

    shown = run_json(database_url, "lpc", "show", event_id)["ack"]
    assert shown["attempts"] == len(outcomes)
    assert [a["outcome"] for a in shown["attemptList"]] == outcomes
    text = run(database_url, "lpc", "show", event_id).output
    assert "failed HTTP 500" in text
    assert "failed HTTP 429 (Retry-After 3 s)" in text
    assert "unknown" in text


def test_it_alerts_once_when_an_acknowledgement_is_not_accepted_within_15_minutes(
    db: Connection, worker_app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    document = notification(
        notification_type="ResourceLPCRequested",
        payload=resource_payload(resource_target("r", caps=caps_from_now(3))),
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
        " FROM reports WHERE kind = 'lpc_ack' AND event_id = %s",
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
