"""The task that stores readings, for the ingress (`POST /consumption`) and for partner code.

Partner code queues readings with any Celery client, on the ingest queue:

    app.send_task(
        "consumption.ingest_readings",
        kwargs={"readings": [{"resourceId": "ev-1", "locationId": "home-1",
                              "start": "2026-03-04T10:00:00Z", "end": "2026-03-04T11:00:00Z",
                              "kWh": 7.2, "readingId": "session-881"}]},
        queue="ingest",
    )

The task id is the batch id unless `batch_id` is given: a message delivered twice stores its
readings once. Readings that fail the checks are counted and reported in the batch
(`spark-partner consumption batches`) and the rest is stored. `now` (ISO 8601) stands in for
the current time, for tests.

The batch's status record in Redis (shared/batch_status.py, read by
`GET /consumption/batches/{id}`) says `queued` again as the task starts, and `stored` with the
counts once the readings are committed; a batch found stored already (a redelivered message)
writes its `stored` record again, so a record lost with Redis comes back with the message.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime
from typing import Any

import psycopg
import redis
from celery import Task, current_app, shared_task

from shared.batch_status import mark_queued, mark_stored
from shared.db import Connection, connection
from shared.queues import INGEST_QUEUE, SPARK_QUEUE
from shared.readings import INGEST_READINGS_TASK
from shared.timeutil import parse_spark_datetime, utcnow
from worker.celery_app import INFRASTRUCTURE_ERRORS, RELIABLE_TASK_OPTIONS, current_settings
from worker.consumption.store import batch_counts, get_batch, open_batch, store_items
from worker.reports.ledger import ReportRules, waiting_for_readings
from worker.reports.tasks import SWEEP_TASK

log = logging.getLogger(__name__)

SOURCES = ("api", "file", "task")

# Two batches storing the same readingId with different spans at the same time: the second
# meets the first's row only once that commits, as a unique violation of
# readings_reading_id_key. Run again, its chunk then moves the first's span as it should.
RETRIED_ERRORS = (*INFRASTRUCTURE_ERRORS, psycopg.errors.UniqueViolation, redis.RedisError)


@functools.cache
def status_client(redis_url: str) -> redis.Redis:
    """One client per process for the batches' status records."""
    return redis.Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=5)


def _publish_stored(client: redis.Redis, conn: Connection, batch: str) -> None:
    row = get_batch(conn, batch)
    if row is None or row["stored_at"] is None:
        raise RuntimeError(f"readings batch {batch} is not stored")
    mark_stored(
        client, batch, received_at=row["received_at"], stored_at=row["stored_at"],
        counts=batch_counts(row),
    )  # fmt: skip


@shared_task(
    name=INGEST_READINGS_TASK,
    bind=True,
    queue=INGEST_QUEUE,
    time_limit=240,
    soft_time_limit=210,
    **{
        **RELIABLE_TASK_OPTIONS,
        "autoretry_for": RETRIED_ERRORS,
        "max_retries": 50,
        "default_retry_delay": 10,
    },
)
def ingest_readings(
    self: Task,
    *,
    readings: list[Any],
    batch_id: str | None = None,
    source: str = "task",
    received_at: str | None = None,
    now: str | None = None,
) -> dict[str, Any]:
    when = parse_spark_datetime(now) if now else utcnow()
    received = parse_spark_datetime(received_at) if received_at else when
    batch = batch_id or str(self.request.id)
    if source not in SOURCES:
        source = "task"
    settings = current_settings()
    rules = ReportRules.from_settings(settings)
    statuses = status_client(settings.redis_url)
    with connection(settings.database_url) as conn:
        if not open_batch(conn, batch, source=source, received_at=received):
            known = get_batch(conn, batch)
            if known is not None and known["stored_at"] is not None:
                log.info("readings batch %s was stored before; nothing to do", batch)
                _publish_stored(statuses, conn, batch)
                return {"batchId": batch, "alreadyStored": True}
        # News of the batch: `unknown` is a full window away again (a retry after an outage).
        mark_queued(
            statuses, batch, received_at=received, now=_wall_clock(),
            pending=settings.consumption_batch_pending, readings=len(readings),
        )  # fmt: skip
        result = store_items(conn, readings, batch_id=batch, now=when)
        wake = (result.inserted or result.replaced) and waiting_for_readings(conn, rules, now=when)
        if result.rejected:
            log.warning(
                "readings batch %s: %d of %d rejected", batch, result.rejected, result.readings
            )
        if result.late:
            log.warning(
                "readings batch %s: %d reading(s) came after their report", batch, result.late
            )
        if wake:
            # A report waiting for these readings may be complete now.
            current_app.send_task(SWEEP_TASK, kwargs={"now": now}, queue=SPARK_QUEUE)
        # Last: should this write fail, the task is retried and finds the batch stored (the
        # sweep above was sent already).
        _publish_stored(statuses, conn, batch)
    return result.to_json()


def _wall_clock() -> datetime:
    # The status window runs on real time, which the ingress reads too: not on `now`, which
    # tests move to place readings before or after reports.
    return utcnow()
