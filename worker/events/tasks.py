"""Tasks of the events domain: store what Spark sends, and fetch what it could not deliver."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from shared.db import connection, execute, fetch_all, fetch_one
from shared.queues import INGEST_EVENT_TASK, INGEST_QUEUE, SPARK_QUEUE
from shared.spark_api import SparkClient, SparkError
from shared.timeutil import isoformat_utc, utcnow
from worker.celery_app import INFRASTRUCTURE_ERRORS, RELIABLE_TASK_OPTIONS, current_settings
from worker.events.inbox import Source, ingest

log = logging.getLogger(__name__)

BACKFILL_TASK = "events.backfill_events"


@shared_task(
    name=INGEST_EVENT_TASK,
    bind=True,
    queue=INGEST_QUEUE,
    time_limit=120,
    soft_time_limit=90,
    **{
        **RELIABLE_TASK_OPTIONS,
        # A hung PostgreSQL (SIGSTOP, a dead host whose connections stay open) leaves the task
        # waiting in a query until its soft time limit cuts it off: that is our
        # infrastructure too, so the delivery is retried, not acknowledged away (the ingest is
        # idempotent, and a delivery that always runs out of time is bounded by max_retries).
        # tests/faults/test_postgres_hung.py lost an accepted webhook this way before.
        "autoretry_for": (*INFRASTRUCTURE_ERRORS, SoftTimeLimitExceeded),
        # Bounds both database-outage retries (~8 h with the 10-minute backoff cap) and a
        # message that kills its worker every time. An event given up on here is still
        # in Spark's /events and comes back through the backfill.
        "max_retries": 50,
        # The wait before rerunning a delivery whose worker process died (OOM, kill -9).
        "default_retry_delay": 10,
    },
)
def ingest_event(self: Task, *, body_b64: str, received_at: str, source: Source = "webhook") -> str:
    """Store one delivery. The task id, given at the ingress, identifies the delivery."""
    raw = base64.b64decode(body_b64, validate=True)
    settings = current_settings()
    with connection(settings.database_url) as conn:
        result = ingest(
            conn,
            delivery_id=str(self.request.id),
            raw=raw,
            received_at=datetime.fromisoformat(received_at),
            source=source,
            settings=settings,
            sender=self.app,
        )
    return result.outcome


def enqueue_ingest(raw: bytes, *, source: Source, received_at: datetime | None = None) -> str:
    """Send bytes down the same path the ingress uses, e.g. for polled events."""
    task_id = str(uuid.uuid4())
    ingest_event.apply_async(
        kwargs={
            "body_b64": base64.b64encode(raw).decode("ascii"),
            "received_at": isoformat_utc(received_at or utcnow()),
            "source": source,
        },
        task_id=task_id,
        queue=INGEST_QUEUE,
    )
    return task_id


@dataclass
class BackfillReport:
    pages: int = 0
    seen: int = 0
    enqueued: int = 0
    error: str | None = None


def backfill(client: SparkClient, database_url: str, *, full: bool = False) -> BackfillReport:
    """Page `GET /events` from the newest and enqueue every event the inbox lacks.

    Spark gives up on a webhook after 3 retries, so this is what makes "no event lost" true.
    Paging stops at the first page whose events are all known: deliveries arrive out of order,
    so one known event does not mean everything older is known, but a full known page does.
    `full=True` pages to the end regardless.
    """
    report = BackfillReport()
    with connection(database_url) as conn:
        run = fetch_one(conn, "start_backfill_run")
        conn.commit()
        try:
            for page in client.iter_event_pages():
                report.pages += 1
                report.seen += len(page)
                ids = [str(event.get("id")) for event in page]
                rows = fetch_all(conn, "known_event_ids", {"event_ids": ids})
                known = {row["event_id"] for row in rows}
                conn.commit()
                missing = [event for event in page if str(event.get("id")) not in known]
                for event in missing:
                    raw = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
                    enqueue_ingest(raw, source="poll")
                report.enqueued += len(missing)
                if not missing and not full:
                    break
        except SparkError as exc:
            report.error = str(exc)
            log.warning("backfill stopped: %s", exc)
        finally:
            with conn.transaction():
                run_id = run["id"] if run else None
                execute(conn, "finish_backfill_run", {"id": run_id, **asdict(report)})
    if report.enqueued:
        log.info("backfill enqueued %d missing event(s)", report.enqueued)
    return report


@shared_task(
    name=BACKFILL_TASK,
    queue=SPARK_QUEUE,
    time_limit=280,
    soft_time_limit=250,
    **{**RELIABLE_TASK_OPTIONS, "max_retries": 5},
)
def backfill_events(*, full: bool = False) -> dict[str, Any]:
    settings = current_settings()
    if not settings.spark_configured:
        log.info("backfill skipped: no Spark API configured")
        return asdict(BackfillReport(error="Spark API not configured"))
    with SparkClient.from_settings(settings) as client:
        return asdict(backfill(client, settings.database_url, full=full))
