"""`reports.sweep` in a real worker, with the clock controlled: what beat runs every hour.
Month ends, a DST month, a beat that was down across a month end, two beats at once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fixtures.sandbox import SandboxHandle
from tests.fixtures.services import WorkerProcess
from tests.reports.support import (
    HOUR,
    Tasks,
    accepted_reports,
    curve,
    due_reports,
    hours_of_local_day,
    import_readings,
    local,
    points_of,
    reading,
    report_rows,
    utc,
    wait_until,
    write_readings,
)

pytestmark = pytest.mark.slow

SWEEP = "reports.sweep"


def day_curves(
    sandbox: SandboxHandle,
    database_url: str,
    tmp_path: Path,
    days: list[datetime],
    *,
    kwh: float,
    imported_at: datetime,
) -> list[tuple[str, list[datetime]]]:
    """For each local day, a curve for ev-1 at home over every hour of it, sent at 13:00 the
    day before, and `kwh` read in each of those hours; the readings imported at
    `imported_at`. The event id and the hours of each curve."""
    curves = []
    readings = []
    for day in days:
        starts = hours_of_local_day(day)
        created = (day.replace(hour=13) - timedelta(days=1)).astimezone(UTC)
        event = curve(sandbox, database_url, [("ev-1", "home")], starts, created_at=created)
        curves.append((event.event_id, starts))
        readings += [reading("ev-1", start, start + HOUR, kwh) for start in starts]
    import_readings(database_url, write_readings(tmp_path / "r.csv", readings), now=imported_at)
    return curves


def sweep_at(tasks: Tasks, worker: WorkerProcess, sandbox: SandboxHandle, now: datetime) -> None:
    """A sweep at `now`, on both clocks; returns when the worker has finished it."""
    sandbox.control.set_clock(now.astimezone(UTC), frozen=True)
    task_id = tasks.send(SWEEP, now=utc(now))
    worker.wait_for_log(f"Task {SWEEP}[{task_id}] succeeded", 60)


def statuses(database_url: str) -> dict[str, str]:
    return {row["event_id"]: row["status"] for row in report_rows(database_url)}


def test_it_reports_a_dst_month_to_its_end_and_the_last_day_within_the_grace(
    sandbox: SandboxHandle,
    database_url: str,
    tasks: Tasks,
    spark_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    # October 2026: Oslo leaves summer time on the 25th, a day of 25 hours.
    days = [local(2026, 10, 24), local(2026, 10, 25), local(2026, 10, 31)]
    curves = day_curves(
        sandbox, database_url, tmp_path, days, kwh=1.5, imported_at=local(2026, 10, 23)
    )
    worker = spark_worker(1)
    (saturday, _), (dst_day, dst_starts), (last_day, last_starts) = curves

    sweep_at(tasks, worker, sandbox, local(2026, 10, 25, 3))
    sweep_at(tasks, worker, sandbox, local(2026, 10, 26, 3))
    sweep_at(tasks, worker, sandbox, local(2026, 10, 31, 12))
    before_end = statuses(database_url)
    sweep_at(tasks, worker, sandbox, local(2026, 11, 1, 0))  # the last day has just ended
    unsettled = statuses(database_url)
    # SPARK_REPORT_SETTLE after the last day, as after every other day.
    sweep_at(tasks, worker, sandbox, local(2026, 11, 1, 2))

    assert before_end == {saturday: "sent", dst_day: "sent", last_day: "pending"}
    assert unsettled == before_end
    assert statuses(database_url) == {saturday: "sent", dst_day: "sent", last_day: "sent"}
    record = accepted_reports(sandbox)
    assert record["countsByEventId"] == {saturday: 1, dst_day: 1, last_day: 1}
    by_event = {r["eventId"]: r for r in record["reports"]}
    assert len(dst_starts) == 25
    sandbox_event = sandbox.state.get_event(dst_day)
    assert sandbox_event is not None
    own = [p["timestamp"] for p in sandbox_event.payload["priceCurveDelta"]["points"]]
    assert [p["timestamp"] for p in points_of(by_event[dst_day]["body"], "ev-1")] == own
    # Sent once settled, inside the grace of one day after the end of October.
    assert by_event[last_day]["createdAt"].startswith("2026-11-01T01:00:00")
    assert len(points_of(by_event[last_day]["body"], "ev-1")) == len(last_starts) == 24
    (last,) = report_rows(database_url, last_day)
    assert last["due_reason"] == "complete"


def test_it_sends_what_can_make_the_grace_after_beat_was_down_across_a_month_end(
    sandbox: SandboxHandle,
    database_url: str,
    tasks: Tasks,
    spark_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    # Beat stops on January 30th at 10:00 and comes back two days later, on February 1st
    # at 10:00: January's reports may still go until February 2nd, 00:00.
    days = [local(2027, 1, 30), local(2027, 1, 31)]
    curves = day_curves(
        sandbox, database_url, tmp_path, days, kwh=1.0, imported_at=local(2027, 1, 29)
    )
    worker = spark_worker(1)
    sweep_at(tasks, worker, sandbox, local(2027, 1, 30, 10))

    sweep_at(tasks, worker, sandbox, local(2027, 2, 1, 10))

    assert set(statuses(database_url).values()) == {"sent"}
    assert accepted_reports(sandbox)["countsByEventId"] == {event: 1 for event, _ in curves}


def test_it_marks_missed_and_alerts_once_what_beat_being_down_made_too_late(
    sandbox: SandboxHandle,
    database_url: str,
    tasks: Tasks,
    spark_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    # Beat stops on January 31st at 10:00 and comes back on February 2nd at 10:00: the
    # report of the 31st is too late, the one of February 1st is not.
    days = [local(2027, 1, 31), local(2027, 2, 1)]
    curves = day_curves(
        sandbox, database_url, tmp_path, days, kwh=1.0, imported_at=local(2027, 1, 30)
    )
    worker = spark_worker(2)
    (january, _), (february, _) = curves
    sweep_at(tasks, worker, sandbox, local(2027, 1, 31, 10))

    # Two beats came back at once.
    back = local(2027, 2, 2, 10)
    sandbox.control.set_clock(back.astimezone(UTC), frozen=True)
    first, second = tasks.send(SWEEP, now=utc(back)), tasks.send(SWEEP, now=utc(back))
    worker.wait_for_log(f"Task {SWEEP}[{first}] succeeded", 60)
    worker.wait_for_log(f"Task {SWEEP}[{second}] succeeded", 60)
    sweep_at(tasks, worker, sandbox, back + HOUR)

    assert statuses(database_url) == {january: "missed", february: "sent"}
    assert accepted_reports(sandbox)["countsByEventId"] == {february: 1}
    assert worker.log().count(f"ALERT report MISSED: event {january}") == 1
    (missed,) = report_rows(database_url, january)
    assert missed["alerted_at"] is not None
    assert missed["missed_at"] == back.astimezone(UTC)


def test_it_sends_each_report_once_when_two_sweeps_run_at_once(
    sandbox: SandboxHandle,
    database_url: str,
    tasks: Tasks,
    spark_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    start = datetime(2026, 5, 12, 8, 0, tzinfo=UTC)
    events = due_reports(sandbox, database_url, tmp_path, start=start, events=8)
    worker = spark_worker(2)
    now = start + 5 * HOUR
    sandbox.control.set_clock(now, frozen=True)

    ids = [tasks.send(SWEEP, now=utc(now)) for _ in range(2)]
    for task_id in ids:
        worker.wait_for_log(f"Task {SWEEP}[{task_id}] succeeded", 60)

    wait_until(lambda: set(statuses(database_url).values()) == {"sent"}, 30, "all sent")
    assert accepted_reports(sandbox)["countsByEventId"] == {event: 1 for event in events}
