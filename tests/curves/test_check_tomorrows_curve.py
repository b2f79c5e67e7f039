"""`curves.check_tomorrows_curve`: from 13:30 local, backfill and record whether tomorrow's
curve came; alert at the deadline for expected areas only."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from typing import Any

import psycopg
import pytest
from celery import Celery

from shared.config import CurveSettings
from shared.db import Connection
from tests.curves.support import (
    OSLO,
    curve_event,
    curve_payload,
    local_hours,
    points,
    store,
    targets,
)
from tests.fixtures.sandbox import IN_AREA_1, SandboxHandle
from tests.fixtures.services import WorkerProcess
from tests.waiting import wait_for
from worker.curves.check import run_check

EXPECTING = CurveSettings(expected_areas=("NO1", "NO2"))


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=OSLO)


def store_curve_for(conn: Connection, day: date, area: str) -> str:
    hours = local_hours(day)
    document = curve_event(
        curve_payload(points(hours, [0.1] * len(hours)), targets(1), area=area),
        at(day - timedelta(days=1), 13, 2),
    )
    store(conn, document)
    event_id: str = document["eventId"]
    return event_id


def check(database_url: str, settings: CurveSettings, now: datetime) -> Any:
    return run_check(database_url, settings, OSLO, client=None, now=now, wait_seconds=0)


def check_row(database_url: str, day: date) -> dict[str, Any] | None:
    with psycopg.connect(database_url, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute("SELECT * FROM curve_checks WHERE curve_date = %s", (day,)).fetchone()


def test_it_is_not_due_before_the_check_time(database_url: str) -> None:
    today = date(2026, 5, 4)

    assert check(database_url, EXPECTING, at(today, 13, 29)) is None
    assert check_row(database_url, today + timedelta(days=1)) is None
    later = CurveSettings(check_time=time(14, 0), check_until=time(17, 0))
    assert check(database_url, later, at(today, 13, 45)) is None
    assert check(database_url, later, at(today, 14, 0)) is not None


def test_it_keeps_looking_until_the_deadline_and_alerts_on_expected_areas_only(
    db: Connection, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    today = date(2026, 5, 4)
    tomorrow = today + timedelta(days=1)
    no1 = store_curve_for(db, tomorrow, "NO1")
    no3 = store_curve_for(db, tomorrow, "NO3")
    store_curve_for(db, today, "NO2")  # today's curve does not count for tomorrow

    with caplog.at_level(logging.INFO, logger="worker.curves.check"):
        first = check(database_url, EXPECTING, at(today, 13, 30))
        assert first.status == "open"
        assert (first.present_areas, first.missing_areas) == (("NO1", "NO3"), ("NO2",))
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        last = check(database_url, EXPECTING, at(today, 16, 0))

    assert last.status == "missing"
    assert set(last.event_ids) == {no1, no3}
    alerts = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert alerts == [
        "ALERT: no price curve for 2026-05-05 in expected area(s) NO2 (curves came for: NO1, NO3)"
    ]
    row = check_row(database_url, tomorrow)
    assert row is not None
    assert (row["status"], row["runs"], row["missing_areas"]) == ("missing", 2, ["NO2"])
    # Final: later ticks leave the day alone.
    assert check(database_url, EXPECTING, at(today, 16, 15)) is None


def test_it_is_satisfied_once_every_expected_area_has_its_curve(
    db: Connection, database_url: str
) -> None:
    today = date(2026, 3, 28)  # tomorrow is the 23-hour day
    tomorrow = today + timedelta(days=1)
    store_curve_for(db, tomorrow, "NO1")
    assert check(database_url, EXPECTING, at(today, 13, 30)).status == "open"
    store_curve_for(db, tomorrow, "NO2")

    result = check(database_url, EXPECTING, at(today, 13, 45))

    assert result.status == "present"
    assert result.curve_date == tomorrow
    assert check(database_url, EXPECTING, at(today, 14, 0)) is None


def test_it_records_no_curve_without_alerting_when_none_is_expected(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    today = date(2026, 5, 4)

    with caplog.at_level(logging.INFO, logger="worker.curves.check"):
        assert check(database_url, CurveSettings(), at(today, 13, 30)).status == "open"
        assert check(database_url, CurveSettings(), at(today, 16, 0)).status == "none"

    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in caplog.records if "not here yet" in r.getMessage()]


# End to end: the sandbox sends its daily curves at 13:00; a real worker runs the check.

SANDBOX_DAY = date(2025, 6, 10)


@pytest.fixture
def sender(redis_url: str) -> Iterator[Callable[[datetime], None]]:
    producer = Celery("test-check-sender", broker=redis_url, set_as_current=False)

    def send(now: datetime) -> None:
        producer.send_task(
            "curves.check_tomorrows_curve",
            kwargs={"now": now.isoformat(), "wait_seconds": 15},
            queue="spark",
            task_id=str(uuid.uuid4()),
        )

    yield send
    producer.close()


def enrolled_user_in_area_1(sandbox: SandboxHandle, user_id: str) -> None:
    sandbox.add_user(user_id)
    sandbox.add_location(user_id, f"{user_id}-home", coordinates=IN_AREA_1)
    sandbox.add_resource(user_id, f"{user_id}-home", f"{user_id}-charger")
    sandbox.enroll(user_id)


def wait_for_check(database_url: str, day: date, status: str) -> dict[str, Any]:
    wait_for(
        lambda: (row := check_row(database_url, day)) is not None and row["status"] == status,
        30,
        f"the check for {day} to be {status}",
    )
    row = check_row(database_url, day)
    assert row is not None
    return row


@pytest.mark.slow
def test_it_finds_each_days_curve_from_the_sandbox_with_or_without_webhooks(
    sandbox: SandboxHandle,
    pipeline: Callable[..., WorkerProcess],
    database_url: str,
    sender: Callable[[datetime], None],
) -> None:
    enrolled_user_in_area_1(sandbox, "alice")
    sandbox.control.set_clock(at(SANDBOX_DAY, 12, 59), frozen=True)
    worker = pipeline(concurrency=2, SPARK_EXPECTED_CURVE_AREAS="NO4")

    # Day 1: the curve comes by webhook at 13:00; the 13:30 check finds it.
    sandbox.control.advance_clock(120)
    [day_1] = sandbox.price_curve_events()
    sender(at(SANDBOX_DAY, 13, 30))
    row = wait_for_check(database_url, SANDBOX_DAY + timedelta(days=1), "present")
    assert (row["present_areas"], row["curve_event_ids"]) == (["NO4"], [day_1["id"]])

    # Day 2: no webhook arrives; the check's backfill fetches the curve.
    sandbox.control.set_delivery(enabled=False)
    sandbox.control.advance_clock(24 * 3600)
    day_2 = sandbox.price_curve_events()[-1]
    assert day_2["id"] != day_1["id"]
    sender(at(SANDBOX_DAY + timedelta(days=1), 13, 30))
    row = wait_for_check(database_url, SANDBOX_DAY + timedelta(days=2), "present")
    assert (row["present_areas"], row["curve_event_ids"]) == (["NO4"], [day_2["id"]])
    assert row["backfill_enqueued"] >= 1

    # Day 3: Spark sends nothing; the check alerts at the deadline.
    sandbox.control.set_daily_curves(enabled=False)
    sandbox.control.advance_clock(24 * 3600)
    day_3 = SANDBOX_DAY + timedelta(days=2)
    sender(at(day_3, 13, 30))
    wait_for_check(database_url, day_3 + timedelta(days=1), "open")
    sender(at(day_3, 16, 0))
    wait_for_check(database_url, day_3 + timedelta(days=1), "missing")
    worker.wait_for_log("ALERT: no price curve for 2025-06-13 in expected area(s) NO4")
