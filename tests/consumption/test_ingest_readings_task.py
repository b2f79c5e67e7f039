"""`consumption.ingest_readings`: the task partner code (and the ingress) queues readings with,
run by a real worker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.fixtures.sandbox import SandboxHandle
from tests.fixtures.services import WorkerProcess
from tests.reports.support import (
    HOUR,
    Tasks,
    accepted_reports,
    curve,
    points_of,
    reading,
    report_rows,
    rows,
    spark_env,
    utc,
    wait_until,
)

pytestmark = pytest.mark.slow

TASK = "consumption.ingest_readings"
T0 = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)


@pytest.fixture
def tasks(redis_url: str) -> Iterator[Tasks]:
    client = Tasks(redis_url)
    yield client
    client.close()


def batch(database_url: str, batch_id: str) -> dict[str, object]:
    found = wait_until(
        lambda: rows(
            database_url,
            "SELECT * FROM consumption_batches WHERE batch_id = %s AND stored_at IS NOT NULL",
            (batch_id,),
        ),
        30,
        f"batch {batch_id}",
    )
    result: dict[str, object] = found[0]
    return result


def test_it_stores_good_readings_and_counts_the_bad_ones_with_their_place(
    database_url: str,
    redis_url: str,
    tasks: Tasks,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    start_worker(database_url, redis_url, concurrency=1)
    readings = [
        reading("ev-1", T0, T0 + HOUR, 2.0),
        {"resourceId": "ev-2", "start": utc(T0), "end": utc(T0), "kWh": 1},
        reading("ev-3", T0, T0 + HOUR, 1.0),
    ]

    batch_id = tasks.send(TASK, queue="ingest", readings=readings)

    stored = batch(database_url, batch_id)
    assert (stored["source"], stored["readings"], stored["inserted"], stored["rejected"]) == (
        "task", 3, 2, 1,
    )  # fmt: skip
    assert stored["errors"] == [{"row": 2, "error": "end must be after start"}]
    names = rows(database_url, "SELECT resource_id FROM readings ORDER BY 1")
    assert names == [{"resource_id": "ev-1"}, {"resource_id": "ev-3"}]


def test_it_stores_a_batch_delivered_twice_once(
    database_url: str,
    redis_url: str,
    tasks: Tasks,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker(database_url, redis_url, concurrency=1)
    readings = [reading("ev-1", T0, T0 + HOUR, 2.0)]

    first = tasks.send(TASK, queue="ingest", readings=readings, batch_id="batch-7")
    second = tasks.send(TASK, queue="ingest", readings=readings, batch_id="batch-7")

    worker.wait_for_log(f"Task {TASK}[{second}] succeeded", 30)
    worker.wait_for_log(f"Task {TASK}[{first}] succeeded", 30)
    assert "readings batch batch-7 was stored before" in worker.log()
    stored = batch(database_url, "batch-7")
    assert (stored["readings"], stored["inserted"]) == (1, 1)


def test_it_sends_a_report_that_its_readings_complete(
    sandbox: SandboxHandle,
    database_url: str,
    redis_url: str,
    tasks: Tasks,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    start = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
    event = curve(
        sandbox, database_url, [("ev-1", "home")], [start, start + HOUR],
        created_at=start - timedelta(hours=20),
    )  # fmt: skip
    start_worker(database_url, redis_url, concurrency=1, **spark_env(sandbox))
    now = start + 2 * HOUR + timedelta(hours=3)  # ended and settled
    sandbox.control.set_clock(now, frozen=True)

    tasks.send(
        TASK,
        queue="ingest",
        readings=[reading("ev-1", start, start + 2 * HOUR, 5.0, location_id="home")],
        now=utc(now),
    )

    wait_until(lambda: accepted_reports(sandbox, event.event_id)["reports"], 30, "the report")
    (sent,) = accepted_reports(sandbox, event.event_id)["reports"]
    assert [p["kiloWattHours"] for p in points_of(sent["body"], "ev-1")] == [2.5, 2.5]
    wait_until(lambda: report_rows(database_url)[0]["status"] == "sent", 10, "sent")
    assert report_rows(database_url)[0]["due_reason"] == "complete"
