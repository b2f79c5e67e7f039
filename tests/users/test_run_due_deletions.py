"""`users.run_due_deletions`: scheduled users go once their month's deadline has passed in
every zone (the user's price areas', SPARK_TIMEZONE's and UTC's month end, plus the grace) and
its reports concerning them are sent.

The clock is the test's: every call gets `now` explicitly.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from celery import Celery

from shared.db import Connection, connect
from shared.queues import SPARK_QUEUE
from shared.spark_api import SparkClient
from tests.fixtures.sandbox import SandboxHandle, spark_env
from tests.fixtures.services import WorkerProcess
from tests.users.helpers import (
    add_report,
    cli_json,
    execute,
    rows,
    user_document,
    write_json,
)
from worker.schedule import beat_schedule
from worker.users.deletion import run_due_deletions, schedule_deletion

OSLO = ZoneInfo("Europe/Oslo")


@pytest.fixture
def registry(sandbox: SandboxHandle, database_url: str, tmp_path: Path) -> Iterator[Connection]:
    """leaver, stayer and later in the registry and at Spark; a connection to the registry."""
    names = ("leaver", "stayer", "later")
    users = [user_document(u, resources=((f"{u}-heater", "HVAC"),)) for u in names]
    cli_json(database_url, "users", "import", str(write_json(tmp_path / "u.json", users)),
             sandbox=sandbox)  # fmt: skip
    with connect(database_url) as conn:
        yield conn


@pytest.fixture
def client(sandbox: SandboxHandle) -> Iterator[SparkClient]:
    with SparkClient(
        sandbox.base_url, sandbox.token_url, sandbox.client_id, sandbox.client_secret
    ) as spark:
        yield spark


def local(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=OSLO)


def deleted(database_url: str) -> list[str]:
    found = rows(database_url, "SELECT user_id FROM users WHERE deleted_at IS NOT NULL")
    return sorted(row["user_id"] for row in found)


def at_spark(sandbox: SandboxHandle, user_id: str) -> bool:
    return sandbox.api("GET", f"/users/{user_id}").status_code == 200


@pytest.mark.parametrize(
    "times",
    [
        # October 2026 ends in winter time (UTC+1): local midnight is 23:00Z on the 31st, UTC's
        # an hour later; the deadline is a day of grace after the later one.
        (
            local(2026, 10, 15, 12, 0),
            datetime(2026, 11, 1, 23, 59, 59, tzinfo=UTC),
            datetime(2026, 11, 2, 0, 0, tzinfo=UTC),
        ),
        # June ends in summer time (UTC+2): local midnight is 22:00Z on the 30th.
        (
            local(2026, 6, 1, 0, 0),
            datetime(2026, 7, 1, 23, 59, 59, tzinfo=UTC),
            datetime(2026, 7, 2, 0, 0, tzinfo=UTC),
        ),
    ],
)
def test_it_deletes_only_once_the_months_deadline_has_passed_in_every_zone(
    registry: Connection,
    client: SparkClient,
    sandbox: SandboxHandle,
    database_url: str,
    times: tuple[datetime, datetime, datetime],
) -> None:
    scheduled_at, last_second, deadline = times
    month = schedule_deletion(registry, "leaver", now=scheduled_at, tz=OSLO)
    schedule_deletion(registry, "later", now=deadline, tz=OSLO)
    assert month == scheduled_at.date().replace(day=1)
    local_midnight = datetime.combine(deadline.date(), datetime.min.time(), OSLO) - timedelta(
        days=1
    )

    before_midnight = run_due_deletions(
        registry, client, now=local_midnight - timedelta(seconds=1), tz=OSLO
    )
    early = run_due_deletions(registry, client, now=last_second, tz=OSLO)

    assert before_midnight == []
    # The local month is over, but Spark may still count it (UTC, and the grace).
    assert [(r.user_id, r.outcome, r.deadline) for r in early] == [("leaver", "waiting", deadline)]
    assert deleted(database_url) == []
    assert at_spark(sandbox, "leaver")

    results = run_due_deletions(registry, client, now=deadline, tz=OSLO)

    assert [(r.user_id, r.outcome, r.month) for r in results] == [("leaver", "deleted", month)]
    assert deleted(database_url) == ["leaver"]
    assert not at_spark(sandbox, "leaver")
    assert at_spark(sandbox, "stayer")
    assert at_spark(sandbox, "later")
    stamp = rows(database_url, "SELECT deleted_at FROM users WHERE user_id = 'leaver'")
    assert stamp == [{"deleted_at": deadline}]

    again = run_due_deletions(registry, client, now=deadline, tz=OSLO)
    assert again == []


def test_it_waits_for_the_latest_month_end_of_the_users_price_areas(
    registry: Connection, client: SparkClient, database_url: str
) -> None:
    # A report of the user's in a zone west of UTC (an area with SPARK_TIMEZONE of its own):
    # its October ends at 01:00Z on November 1st, an hour after UTC's.
    add_report(database_url, event_id="azores", month=date(2026, 10, 1), status="sent",
               target=("leaver-heater", "leaver-home"))  # fmt: skip
    execute(database_url, "UPDATE reports SET zone = 'Atlantic/Azores'")
    schedule_deletion(registry, "leaver", now=local(2026, 10, 2, 9, 0), tz=OSLO)
    deadline = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)

    early = run_due_deletions(registry, client, now=deadline - timedelta(minutes=1), tz=OSLO)
    done = run_due_deletions(registry, client, now=deadline, tz=OSLO)

    assert [(r.outcome, r.deadline) for r in early] == [("waiting", deadline)]
    assert [(r.user_id, r.outcome) for r in done] == [("leaver", "deleted")]


def test_it_waits_while_the_months_reports_are_pending(
    registry: Connection, client: SparkClient, sandbox: SandboxHandle, database_url: str
) -> None:
    # The curve for October's last day: its report is not sent yet after midnight.
    add_report(database_url, event_id="last-day", month=date(2026, 10, 1), status="due",
               target=("leaver-heater", "leaver-home"))  # fmt: skip
    schedule_deletion(registry, "leaver", now=local(2026, 10, 2, 9, 0), tz=OSLO)
    november = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # past the deadline

    waiting = run_due_deletions(registry, client, now=november, tz=OSLO)

    assert [(r.user_id, r.outcome, r.pending) for r in waiting] == [("leaver", "waiting", 1)]
    assert deleted(database_url) == []
    assert at_spark(sandbox, "leaver")

    execute(database_url, "UPDATE reports SET status = 'sent', sent_at = now()")
    done = run_due_deletions(registry, client, now=november, tz=OSLO)

    assert [(r.user_id, r.outcome) for r in done] == [("leaver", "deleted")]
    assert not at_spark(sandbox, "leaver")


def test_it_runs_as_a_task_with_the_clock_it_is_given(
    registry: Connection,
    sandbox: SandboxHandle,
    database_url: str,
    redis_url: str,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    schedule_deletion(registry, "leaver", now=local(2026, 10, 15, 12, 0), tz=OSLO)
    worker = start_worker(
        database_url, redis_url, concurrency=1, **spark_env(sandbox, SPARK_TIMEZONE="Europe/Oslo")
    )
    producer = Celery("test-sender", broker=redis_url, set_as_current=False)

    def run_at(when: datetime) -> str:
        task_id = str(uuid.uuid4())
        producer.send_task(
            "users.run_due_deletions",
            kwargs={"now": when.isoformat()},
            queue=SPARK_QUEUE,
            task_id=task_id,
        )
        return f"users.run_due_deletions[{task_id}] succeeded"

    try:
        worker.wait_for_log(run_at(datetime(2026, 11, 1, 23, 59, tzinfo=UTC)))
        assert deleted(database_url) == []
        worker.wait_for_log(run_at(datetime(2026, 11, 2, 0, 0, 1, tzinfo=UTC)))
        assert deleted(database_url) == ["leaver"]
    finally:
        producer.close()
    assert not at_spark(sandbox, "leaver")
    entry = beat_schedule()["run-due-user-deletions"]
    assert entry["task"] == "users.run_due_deletions"
    assert entry["options"]["queue"] == SPARK_QUEUE


def test_it_keeps_the_schedule_when_spark_refuses(
    registry: Connection, client: SparkClient, sandbox: SandboxHandle, database_url: str
) -> None:
    schedule_deletion(registry, "leaver", now=local(2026, 10, 15, 12, 0), tz=OSLO)
    sandbox.control.add_faults("DELETE", "/users/leaver", [{"status": 400, "body": "locked"}])
    november = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)

    refused = run_due_deletions(registry, client, now=november, tz=OSLO)

    assert [(r.user_id, r.outcome) for r in refused] == [("leaver", "failed")]
    assert rows(database_url, "SELECT delete_after_month, deletion_error FROM users"
                " WHERE user_id = 'leaver'") == [
        {"delete_after_month": date(2026, 10, 1), "deletion_error": 'Spark answered 400: "locked"'}
    ]  # fmt: skip

    retried = run_due_deletions(registry, client, now=november, tz=OSLO)
    assert [(r.user_id, r.outcome) for r in retried] == [("leaver", "deleted")]


def test_it_deletes_a_user_scheduled_on_the_20th_after_the_deadline_and_its_last_report(
    registry: Connection,
    client: SparkClient,
    sandbox: SandboxHandle,
    database_url: str,
    tmp_path: Path,
) -> None:
    from tests.reports.support import (
        HOUR,
        accepted_reports,
        curve,
        import_readings,
        reading,
        write_readings,
    )
    from tests.reports.support import cli_json as reports_cli

    schedule_deletion(registry, "leaver", now=local(2026, 10, 20, 12, 0), tz=OSLO)
    start = local(2026, 10, 31, 22, 0)
    event = curve(sandbox, database_url, [("leaver-heater", "leaver-home")],
                  [start, start + HOUR], created_at=start - 20 * HOUR)  # fmt: skip
    readings = [reading("leaver-heater", start, start + 2 * HOUR, 3.0)]
    path = write_readings(tmp_path / "r.csv", readings)
    end = start + 2 * HOUR
    import_readings(database_url, path, now=end + HOUR)
    deadline = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)

    on_the_1st = run_due_deletions(registry, client, now=end + 3 * HOUR, tz=OSLO)
    sandbox.control.set_clock((end + 3 * HOUR).astimezone(UTC), frozen=True)
    reports_cli(database_url, "reports", "send", "--due", "--now", (end + 3 * HOUR).isoformat(),
                sandbox=sandbox)  # fmt: skip
    before = run_due_deletions(registry, client, now=deadline - timedelta(seconds=1), tz=OSLO)
    after = run_due_deletions(registry, client, now=deadline, tz=OSLO)

    assert [(r.outcome, r.deadline) for r in on_the_1st] == [("waiting", deadline)]
    assert [r.outcome for r in before] == ["waiting"]
    assert [r.outcome for r in after] == ["deleted"]
    (sent,) = accepted_reports(sandbox, event.event_id)["reports"]
    assert [p["resourceId"] for p in sent["body"]["payloads"]] == ["leaver-heater"]
    assert not at_spark(sandbox, "leaver")
