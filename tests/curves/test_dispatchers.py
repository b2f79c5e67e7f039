"""The built-in dispatchers: log, http (against a stand-in control system) and celery (onto a
real queue in Redis)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from datetime import UTC, date, datetime, timedelta

import pytest
import redis
from celery import Celery

from devstack.servers import free_port
from shared.config import CurveSettings
from shared.signing import SIGNATURE_HEADER, verify
from tests.curves.control import HANG, ControlSystem
from tests.curves.support import local_hours
from worker.curves.dispatchers import (
    CeleryDispatcher,
    HttpDispatcher,
    LogDispatcher,
    dispatcher_from_settings,
)
from worker.curves.plans import CurveInfo, PlanPeriod, SupersededPeriod, TargetPlan

SECRET = b"our-own-dispatch-secret"
HOURS = local_hours(date(2026, 3, 4))
CURVE = CurveInfo(
    event_id="curve-1",
    event_created_at=datetime(2026, 3, 3, 12, 0, tzinfo=UTC),
    price_area="NO1",
    currency="NOK",
    energy_unit="kWh",
    resolution=timedelta(hours=1),
    local_date=date(2026, 3, 4),
    target_count=3,
)


def plan(resource_id: str, prices: list[float], revision: int = 1) -> TargetPlan:
    periods = tuple(
        PlanPeriod(h, h + timedelta(hours=1), h.isoformat(), p)
        for h, p in zip(HOURS, prices, strict=False)
    )
    superseded = (
        SupersededPeriod(HOURS[23], HOURS[23] + timedelta(hours=1), "x", 0.1, "curve-2", 0.7),
    )
    return TargetPlan(CURVE, resource_id, f"{resource_id}-home", periods, superseded, revision)


def test_it_posts_the_plans_signed_with_our_secret(control: ControlSystem) -> None:
    dispatcher = HttpDispatcher(control.url, SECRET, timeout=5)
    plans = [plan("r1", [-0.5, 0.25], revision=2), plan("r2", [0.1])]

    outcomes = dispatcher.dispatch(plans)
    dispatcher.close()

    assert [o.sent for o in outcomes] == [True, True]
    [request] = control.received
    assert verify([SECRET], request.body, request.headers[SIGNATURE_HEADER])
    assert not verify([b"another-secret"], request.body, request.headers[SIGNATURE_HEADER])
    assert request.headers["Idempotency-Key"] == hashlib.sha256(request.body).hexdigest()
    first = request.plans[0]
    assert first["eventId"] == "curve-1"
    assert first["revision"] == 2
    assert (first["resourceId"], first["locationId"]) == ("r1", "r1-home")
    assert (first["priceArea"], first["currency"], first["energyUnit"]) == ("NO1", "NOK", "kWh")
    assert first["resolution"] == "01:00:00"
    assert [(p["start"], p["price"]) for p in first["periods"]] == [
        (HOURS[0].isoformat(), -0.5),
        (HOURS[1].isoformat(), 0.25),
    ]
    assert first["periods"][0]["end"] == (HOURS[0] + timedelta(hours=1)).isoformat()
    assert first["supersededPeriods"] == [
        {
            "start": HOURS[23].isoformat(),
            "end": (HOURS[23] + timedelta(hours=1)).isoformat(),
            "supersededBy": "curve-2",
        }
    ]
    assert request.plans[1]["resourceId"] == "r2"


@pytest.mark.parametrize(("status", "retry"), [(500, True), (503, True), (400, False)])
def test_it_reports_a_refusal_with_the_status(
    control: ControlSystem, status: int, retry: bool
) -> None:
    control.answer(status)
    dispatcher = HttpDispatcher(control.url, SECRET, timeout=5)

    outcomes = dispatcher.dispatch([plan("r1", [0.1]), plan("r2", [0.2])])

    assert len(outcomes) == 2
    assert all(not o.sent for o in outcomes)
    assert all(o.reason and o.reason.startswith(f"HTTP {status}") for o in outcomes)
    assert {o.retry for o in outcomes} == {retry}


def test_it_gives_up_on_a_control_system_that_does_not_answer(control: ControlSystem) -> None:
    control.answer(HANG)
    dispatcher = HttpDispatcher(control.url, SECRET, timeout=0.5)

    started = time.monotonic()
    [outcome] = dispatcher.dispatch([plan("r1", [0.1])])

    assert time.monotonic() - started < 3
    assert not outcome.sent
    assert outcome.reason == "no answer within 0.5s"
    assert outcome.retry


def test_it_reports_a_control_system_that_is_down() -> None:
    dispatcher = HttpDispatcher(f"http://127.0.0.1:{free_port()}/plans", SECRET, timeout=1)

    [outcome] = dispatcher.dispatch([plan("r1", [0.1])])

    assert not outcome.sent
    assert outcome.reason is not None
    assert "ConnectionError" in outcome.reason


def test_it_keeps_the_secret_out_of_its_repr(control: ControlSystem) -> None:
    settings = CurveSettings(dispatcher="http", dispatch_url=control.url, dispatch_secret=SECRET)
    dispatcher = dispatcher_from_settings(settings, Celery(set_as_current=False))

    assert isinstance(dispatcher, HttpDispatcher)
    assert SECRET.decode() not in repr(dispatcher)
    assert SECRET.decode() not in repr(settings)


def test_it_sends_the_plans_as_a_task_to_the_partners_queue(redis_url: str) -> None:
    app = Celery("dispatch-test", broker=redis_url, set_as_current=False)
    app.conf.update(task_serializer="json", task_create_missing_queues=False)
    dispatcher = CeleryDispatcher(app, "partner.apply_plans", "partner-control")

    outcomes = dispatcher.dispatch([plan("r1", [0.1]), plan("r2", [0.2])])
    app.close()

    assert [o.sent for o in outcomes] == [True, True]
    client = redis.Redis.from_url(redis_url)
    [raw] = client.lrange("partner-control", 0, -1)
    client.close()
    message = json.loads(raw)
    assert message["headers"]["task"] == "partner.apply_plans"
    _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    assert [p["resourceId"] for p in kwargs["plans"]] == ["r1", "r2"]
    assert kwargs["plans"][1]["periods"][0]["price"] == 0.2


def test_it_logs_each_distinct_plan_once(caplog: pytest.LogCaptureFixture) -> None:
    plans = [plan(f"r{i}", [0.1, 0.2]) for i in range(5)] + [plan("odd", [0.3])]

    with caplog.at_level(logging.INFO, logger="worker.curves.dispatchers"):
        outcomes = LogDispatcher().dispatch(plans)

    assert all(o.sent for o in outcomes)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(lines) == 2
    assert lines[0].startswith("plan for 5 target(s) (r0/r0-home and 4 more) of curve curve-1")
    assert '"price":0.2' in lines[0]
    assert lines[1].startswith("plan for 1 target(s) (odd/odd-home) of curve curve-1")
