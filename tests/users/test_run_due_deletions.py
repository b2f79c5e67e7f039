"""`users.run_due_deletions`: scheduled users go once their local month is over and reported.

The clock is the test's: every call gets `now` explicitly.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from celery import Celery

from shared.db import Connection, connect
from shared.queues import SPARK_QUEUE
from shared.spark_api import SparkClient
from tests.fixtures.sandbox import SandboxHandle
from tests.fixtures.services import WorkerProcess
from tests.users.helpers import (
    add_report,
    cli_json,
    execute,
    rows,
    spark_env,
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


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=OSLO)  # type: ignore[misc]


def deleted(database_url: str) -> list[str]:
    found = rows(database_url, "SELECT user_id FROM users WHERE deleted_at IS NOT NULL")
    return sorted(row["user_id"] for row in found)


def at_spark(sandbox: SandboxHandle, user_id: str) -> bool:
    return sandbox.api("GET", f"/users/{user_id}").status_code == 200


@pytest.mark.parametrize(
    "times",
    [
        # October 2026 ends in winter time (UTC+1): local midnight is 23:00Z on the 31st,
        # a month whose last week began with the end of summer time.
        (local(2026, 10, 15, 12, 0), local(2026, 10, 31, 23, 59), local(2026, 11, 1, 0, 0, 30)),
        # June ends in summer time (UTC+2): local midnight is 22:00Z on the 30th.
        (local(2026, 6, 1, 0, 0), local(2026, 6, 30, 23, 59, 59), local(2026, 7, 1, 0, 1)),
    ],
)
def test_it_deletes_right_after_local_midnight_ending_the_month(
    registry: Connection,
    client: SparkClient,
    sandbox: SandboxHandle,
    database_url: str,
    times: tuple[datetime, datetime, datetime],
) -> None:
    scheduled_at, last_minute, after_midnight = times
    month = schedule_deletion(registry, "leaver", now=scheduled_at, tz=OSLO)
    schedule_deletion(registry, "later", now=after_midnight, tz=OSLO)
    assert month == scheduled_at.date().replace(day=1)
    # The UTC date still is the old month's last day when the local month is over.
    assert after_midnight.astimezone(UTC).month == month.month

    early = run_due_deletions(registry, client, now=last_minute.astimezone(UTC), tz=OSLO)

    assert early == []
    assert deleted(database_url) == []
    assert at_spark(sandbox, "leaver")

    results = run_due_deletions(registry, client, now=after_midnight.astimezone(UTC), tz=OSLO)

    assert [(r.user_id, r.outcome, r.month) for r in results] == [("leaver", "deleted", month)]
    assert deleted(database_url) == ["leaver"]
    assert not at_spark(sandbox, "leaver")
    assert at_spark(sandbox, "stayer")
    assert at_spark(sandbox, "later")
    stamp = rows(database_url, "SELECT deleted_at FROM users WHERE user_id = 'leaver'")
    assert stamp == [{"deleted_at": after_midnight.astimezone(UTC)}]

    again = run_due_deletions(registry, client, now=after_midnight.astimezone(UTC), tz=OSLO)
    assert again == []


def test_it_waits_while_the_months_reports_are_pending(
    registry: Connection, client: SparkClient, sandbox: SandboxHandle, database_url: str
) -> None:
    # The curve for October's last day: its report is not sent yet after midnight.
    add_report(database_url, event_id="last-day", month=date(2026, 10, 1), status="due",
               target=("leaver-heater", "leaver-home"))  # fmt: skip
    schedule_deletion(registry, "leaver", now=local(2026, 10, 2, 9, 0), tz=OSLO)
    november = local(2026, 11, 1, 1, 0).astimezone(UTC)

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
        worker.wait_for_log(run_at(local(2026, 10, 31, 23, 59)))
        assert deleted(database_url) == []
        worker.wait_for_log(run_at(local(2026, 11, 1, 0, 0, 1)))
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
    november = local(2026, 11, 1, 3, 0).astimezone(UTC)

    refused = run_due_deletions(registry, client, now=november, tz=OSLO)

    assert [(r.user_id, r.outcome) for r in refused] == [("leaver", "failed")]
    assert rows(database_url, "SELECT delete_after_month, deletion_error FROM users"
                " WHERE user_id = 'leaver'") == [
        {"delete_after_month": date(2026, 10, 1), "deletion_error": 'Spark answered 400: "locked"'}
    ]  # fmt: skip

    retried = run_due_deletions(registry, client, now=november, tz=OSLO)
    assert [(r.user_id, r.outcome) for r in retried] == [("leaver", "deleted")]
