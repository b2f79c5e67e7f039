"""LPC caps to the control system, as plans of kind `lpc` in the dispatch runs, and how the
control system's answers decide the acknowledgement and when it is due. The runs' clock is
ours; the control system is the http dispatcher's stand-in."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from celery import Celery

from shared.db import Connection
from shared.signing import SIGNATURE_HEADER, verify
from tests.curves.control import ControlSystem
from tests.lpc.support import caps_from_now as caps
from tests.lpc.support import location_payload, location_target, resource_payload, resource_target
from tests.worker.cli import run, run_json
from tests.worker.events import body, notification
from worker.curves.dispatch import DispatchReport, RetryPolicy, run_dispatch
from worker.curves.dispatchers import HttpDispatcher, LogDispatcher
from worker.events.inbox import ingest
from worker.lpc import ack
from worker.plan_kinds import PLAN_KINDS

SECRET = b"our-own-dispatch-secret"
POLICY = RetryPolicy(max_attempts=3, first_delay=timedelta(seconds=30))


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC) + timedelta(seconds=1)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def http(control: ControlSystem) -> Iterator[HttpDispatcher]:
    dispatcher = HttpDispatcher(control.url, SECRET, timeout=0.5)
    yield dispatcher
    dispatcher.close()


@dataclass
class Env:
    """A test's database, worker app (for the inbox's follow-ups) and run clock, with our
    registry filled in."""

    db: Connection
    database_url: str
    app: Celery
    clock: Clock

    def store(self, notification_type: str, payload: dict[str, Any]) -> str:
        return store(self.db, self.app, notification_type, payload)

    def dispatch(self, dispatcher: Any) -> DispatchReport:
        return dispatch(self.database_url, dispatcher, self.clock)


@pytest.fixture
def env(db: Connection, database_url: str, worker_app: Celery, clock: Clock) -> Env:
    registry(db)
    return Env(db, database_url, worker_app, clock)


def registry(db: Connection) -> None:
    """Our registry knows r-0@loc-0, r-1@loc-1 and location loc-9 with meter point 7079."""
    db.execute("INSERT INTO users (user_id) VALUES ('u-1')")
    db.execute(
        "INSERT INTO locations (location_id, user_id, meter_point_ids) VALUES"
        " ('loc-0', 'u-1', '{7070}'), ('loc-1', 'u-1', '{7070}'), ('loc-9', 'u-1', '{7079}')"
    )
    db.execute(
        "INSERT INTO resources (resource_id, user_id, location_id, resource_type) VALUES"
        " ('r-0', 'u-1', 'loc-0', 'Charger'), ('r-1', 'u-1', 'loc-1', 'Charger')"
    )
    db.commit()


def resources(*numbers: int, hours_ahead: float = 3) -> dict[str, Any]:
    return resource_payload(
        *(resource_target(f"r-{n}", f"loc-{n}", "7070", caps=caps(hours_ahead)) for n in numbers)
    )


def store(db: Connection, app: Celery, notification_type: str, payload: dict[str, Any]) -> str:
    document = notification(notification_type=notification_type, payload=payload)
    ingest(
        db,
        delivery_id=str(uuid.uuid4()),
        raw=body(document),
        received_at=datetime.now(UTC),
        source="webhook",
        settings=app.conf.spark_settings,
        sender=app,
    )
    db.commit()
    event_id: str = document["eventId"]
    return event_id


def dispatch(database_url: str, dispatcher: Any, clock: Clock) -> DispatchReport:
    return run_dispatch(
        database_url,
        dispatcher,
        POLICY,
        kinds=PLAN_KINDS,
        batch_size=100,
        lease=timedelta(seconds=60),
        clock=clock,
    )


def ack_row(db: Connection, event_id: str) -> dict[str, Any]:
    row = db.execute(
        "SELECT a.status, a.due_by, a.next_attempt_at, e.received_at"
        " FROM reports a JOIN lpc_events e USING (event_id)"
        " WHERE a.kind = 'lpc_ack' AND event_id = %s",
        (event_id,),
    ).fetchone()
    db.commit()
    assert row is not None
    return dict(row)


def plans(db: Connection, event_id: str) -> dict[str, dict[str, Any]]:
    rows = db.execute(
        "SELECT t.resource_id, t.location_id, d.status, d.attempts, d.reason"
        " FROM lpc_dispatches d JOIN lpc_targets t USING (event_id, target_no)"
        " WHERE event_id = %s",
        (event_id,),
    ).fetchall()
    db.commit()
    return {row["resource_id"] or row["location_id"]: dict(row) for row in rows}


def shown_targets(database_url: str, event_id: str) -> dict[str, dict[str, Any]]:
    shown = run_json(database_url, "lpc", "show", event_id)["targetList"]
    return {t["resourceId"] or t["locationId"]: t for t in shown}


def decided(db: Connection, event_id: str, now: datetime) -> dict[str, list[str]]:
    """Who the acknowledgement built at `now` acknowledges and declines."""
    with db.transaction():
        text, _, _ = ack.build_body(db, event_id, now=now)
    [payload] = json.loads(text)["payloads"]
    return {
        "acknowledged": [
            t.get("resourceId") or t["locationId"] for t in payload["acknowledgedTargets"]
        ],
        "declined": [t.get("resourceId") or t["locationId"] for t in payload["declinedTargets"]],
    }


def test_it_sends_the_caps_of_known_targets_and_makes_the_ack_due_once_all_are_answered(
    env: Env, control: ControlSystem, http: HttpDispatcher
) -> None:
    event_id = env.store("ResourceLPCRequested", resources(0, 1, 2))
    waiting = ack_row(env.db, event_id)
    assert waiting["due_by"] - waiting["received_at"] == timedelta(minutes=5)
    # Unless every cap is answered sooner, sent 5 s before, so that Spark has it by then.
    assert waiting["next_attempt_at"] == waiting["due_by"] - timedelta(seconds=5)
    # r-2 is unknown to our registry: not dispatched.
    assert set(plans(env.db, event_id)) == {"r-0", "r-1"}

    report = env.dispatch(http)

    assert (report.sent, report.failed, report.answered) == (2, 0, [event_id])
    [request] = control.received
    assert verify([SECRET], request.body, request.headers[SIGNATURE_HEADER])
    first, second = sorted(request.plans, key=lambda p: p["resourceId"])
    assert first["kind"] == "lpc"
    assert first["eventId"] == event_id
    assert first["notificationType"] == "ResourceLPCRequested"
    assert (first["resourceId"], first["locationId"], first["meterPointId"]) == (
        "r-0", "loc-0", "7070",
    )  # fmt: skip
    assert first["resolution"] == "02:00:00"
    assert [c["maxPowerInKiloWatts"] for c in first["caps"]] == [3.5, 2.0]
    start = datetime.fromisoformat(first["caps"][0]["start"])
    assert datetime.fromisoformat(first["caps"][0]["end"]) - start == timedelta(hours=2)
    assert second["resourceId"] == "r-1"
    assert ack_row(env.db, event_id)["next_attempt_at"] <= env.clock.now
    assert decided(env.db, event_id, env.clock.now) == {
        "acknowledged": ["r-0", "r-1"],
        "declined": ["r-2"],
    }
    shown = shown_targets(env.database_url, event_id)
    assert shown["r-0"]["controlSystem"]["answer"] == "accepted"
    assert shown["r-2"]["controlSystem"] is None


def test_it_declines_a_target_whose_cap_the_control_system_refused(
    env: Env, control: ControlSystem, http: HttpDispatcher
) -> None:
    event_id = env.store("ResourceLPCRequested", resources(0, 1))
    control.answer(
        {"results": [{"accepted": True}, {"accepted": False, "reason": "charger offline"}]}
    )

    report = env.dispatch(http)

    assert (report.sent, report.failed, report.answered) == (1, 1, [event_id])
    # The results answer the plans in the order they were sent.
    accepted, refused = (plan["resourceId"] for plan in control.plans())
    rows = plans(env.db, event_id)
    assert rows[refused]["status"] == "failed"
    assert rows[refused]["reason"] == "refused by the control system: charger offline (attempt 1)"
    assert decided(env.db, event_id, env.clock.now) == {
        "acknowledged": [accepted],
        "declined": [refused],
    }
    control_answer = shown_targets(env.database_url, event_id)[refused]["controlSystem"]
    assert control_answer["answer"] == "failed"
    assert "charger offline" in control_answer["reason"]


def test_it_declines_the_targets_still_unanswered_when_the_acknowledgement_is_due(
    env: Env, control: ControlSystem, http: HttpDispatcher
) -> None:
    event_id = env.store("ResourceLPCRequested", resources(0, 1))
    control.default = 503

    report = env.dispatch(http)

    assert (report.retrying, report.answered) == (2, [])
    waiting = ack_row(env.db, event_id)
    assert waiting["next_attempt_at"] == waiting["due_by"] - timedelta(seconds=5)
    assert waiting["next_attempt_at"] > env.clock.now
    assert decided(env.db, event_id, waiting["next_attempt_at"]) == {
        "acknowledged": [],
        "declined": ["r-0", "r-1"],
    }
    rows = plans(env.db, event_id).values()
    assert {row["status"] for row in rows} == {"failed"}
    assert all(row["reason"].endswith(": declined") for row in rows)
    # Declined for good: the retries do not send the caps afterwards.
    env.clock.now = waiting["due_by"] + timedelta(hours=2)
    assert env.dispatch(http).sent == 0
    assert len(control.received) == 1


def test_it_acknowledges_a_late_event_at_once_and_still_sends_its_caps(
    env: Env, control: ControlSystem, http: HttpDispatcher
) -> None:
    # The first period began an hour ago.
    event_id = env.store("ResourceLPCRequested", resources(0, hours_ahead=-1))

    due = ack_row(env.db, event_id)
    assert due["due_by"] == due["received_at"] == due["next_attempt_at"]
    assert decided(env.db, event_id, env.clock.now) == {"acknowledged": [], "declined": ["r-0"]}
    assert env.dispatch(http).sent == 1
    assert [p["resourceId"] for p in control.plans()] == ["r-0"]


def test_it_makes_the_ack_of_an_event_without_known_targets_due_at_once(env: Env) -> None:
    event_id = env.store(
        "LocationLPCRequested", location_payload(location_target("loc-x", "7070", caps=caps(5)))
    )

    due = ack_row(env.db, event_id)
    assert due["due_by"] - due["received_at"] == timedelta(minutes=5)
    assert due["next_attempt_at"] <= datetime.now(UTC)
    assert plans(env.db, event_id) == {}


def test_it_dispatches_a_location_events_caps_to_its_meter_point(env: Env) -> None:
    event_id = env.store(
        "LocationLPCRequested", location_payload(location_target("loc-9", "7079", caps=caps(5)))
    )

    report = env.dispatch(LogDispatcher())

    assert (report.sent, report.answered) == (1, [event_id])
    assert decided(env.db, event_id, env.clock.now) == {"acknowledged": ["loc-9"], "declined": []}


@pytest.mark.parametrize(
    ("hours_ahead", "within"), [(3.0, timedelta(minutes=5)), (0.05, timedelta(minutes=3))]
)
def test_it_sets_the_acks_deadline_before_the_first_period(
    hours_ahead: float, within: timedelta
) -> None:
    arrived = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
    first = arrived + timedelta(hours=hours_ahead)

    assert ack.ack_due_by(arrived, first, timedelta(minutes=5)) == arrived + within
    assert ack.ack_due_by(arrived, arrived - timedelta(minutes=1), timedelta(minutes=5)) == arrived
    assert ack.ack_due_by(arrived, None, timedelta(minutes=5)) == arrived + timedelta(minutes=5)


def test_it_logs_the_caps_that_targets_share_once(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    event_id = env.store("ResourceLPCRequested", resources(0, 1))

    with caplog.at_level(logging.INFO, logger="worker.curves.dispatchers"):
        assert env.dispatch(LogDispatcher()).sent == 2

    [line] = [r.getMessage() for r in caplog.records if r.name == "worker.curves.dispatchers"]
    assert line.startswith("plan for 2 target(s) (")
    assert f"and 1 more) of LPC event {event_id} revision 1: " in line
    assert '"maxPowerInKiloWatts":3.5' in line


def test_it_gives_failed_caps_new_attempts_on_redispatch(env: Env, redis_url: str) -> None:
    event_id = env.store("ResourceLPCRequested", resources(0, 1))
    env.db.execute("UPDATE lpc_dispatches SET status = 'failed', attempts = 6, reason = 'x'")
    env.db.commit()

    result = run(env.database_url, "lpc", "redispatch", event_id, "--json", REDIS_URL=redis_url)

    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"eventId": event_id, "pending": 2, "queued": True}
    states = {(r["status"], r["attempts"]) for r in plans(env.db, event_id).values()}
    assert states == {("pending", 0)}
