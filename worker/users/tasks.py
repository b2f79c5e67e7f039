"""Tasks of the users domain: push the registry to Spark, enroll, delete at month end."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from celery import Task, shared_task

from shared.backoff import backoff_seconds
from shared.db import connection
from shared.queues import SPARK_QUEUE
from shared.spark_api import SparkClient, SparkError, SparkHTTPError
from shared.timeutil import parse_spark_datetime, utcnow
from worker.celery_app import MAX_COUNTDOWN, RELIABLE_TASK_OPTIONS, current_settings
from worker.users import deletion, enrollment, sync

log = logging.getLogger(__name__)

SYNC_TASK = "users.sync_registry"
ENROLL_TASK = "users.enroll_users"
DUE_DELETIONS_TASK = "users.run_due_deletions"

# A sync run stops well inside the task's time limit and hands the rest to a new run.
SYNC_TIME_LIMIT = 300
SYNC_BUDGET_SECONDS = 240
# One enroll task sends at most this many POSTs; a longer list is split into several tasks.
ENROLL_CHUNK = 200
SPARK_RETRY_BASE_SECONDS = 30
SPARK_RETRY_MAX_SECONDS = MAX_COUNTDOWN


@shared_task(
    name=SYNC_TASK,
    queue=SPARK_QUEUE,
    time_limit=SYNC_TIME_LIMIT,
    soft_time_limit=SYNC_TIME_LIMIT - 30,
    **{**RELIABLE_TASK_OPTIONS, "max_retries": 5},
)
def sync_registry(*, retry_errors: bool = False) -> dict[str, Any]:
    """Push what the registry has and Spark lacks; a no-op when nothing is unsynced."""
    settings = current_settings()
    if not settings.spark_configured:
        log.info("registry sync skipped: no Spark API configured")
        return {"skipped": "Spark API not configured"}
    with connection(settings.database_url) as conn:
        with conn.transaction():
            pending = sync.anything_to_push(conn)
        if not pending and not retry_errors:
            return {"pending": False}
        with SparkClient.from_settings(settings) as client:
            report = sync.sync_registry(
                conn,
                client,
                deadline=time.monotonic() + SYNC_BUDGET_SECONDS,
                retry_errors=retry_errors,
            )
    if not report.complete and not report.busy and report.aborted is None:
        # Stopped by its time budget with more to push: go on now, not at the next beat tick.
        sync_registry.apply_async(queue=SPARK_QUEUE)
    return report.to_json()


@shared_task(
    name=ENROLL_TASK,
    bind=True,
    queue=SPARK_QUEUE,
    **{**RELIABLE_TASK_OPTIONS, "max_retries": 20},
)
def enroll_users(self: Task, *, user_ids: list[str]) -> dict[str, Any]:
    """Enroll those of `user_ids` that SPARK_AUTO_ENROLL says to (eligible and consenting
    under "consented"; nobody under "off"). Enqueued after an eligibility reconcile."""
    settings = current_settings()
    if settings.auto_enroll != enrollment.AUTO_ENROLL_POLICY:
        log.info("enrollment skipped: SPARK_AUTO_ENROLL=%s", settings.auto_enroll)
        return {"policy": settings.auto_enroll, "results": []}
    if len(user_ids) > ENROLL_CHUNK:
        # Split, and do none of the work here: a retry of this task must not split again.
        for start in range(0, len(user_ids), ENROLL_CHUNK):
            enroll_users.apply_async(
                kwargs={"user_ids": user_ids[start : start + ENROLL_CHUNK]}, queue=SPARK_QUEUE
            )
        return {"policy": settings.auto_enroll, "split": len(user_ids)}
    if not settings.spark_configured:
        log.warning("enrollment of %d user(s) skipped: no Spark API configured", len(user_ids))
        return {"skipped": "Spark API not configured"}
    try:
        with (
            connection(settings.database_url) as conn,
            SparkClient.from_settings(settings) as client,
        ):
            results = enrollment.auto_enroll(conn, client, user_ids, policy=settings.auto_enroll)
    except SparkError as exc:
        # Users enrolled before the failure are skipped by the retry: they are enrolled now.
        raise self.retry(exc=exc, countdown=_spark_retry_delay(exc, self.request.retries)) from exc
    return {"policy": settings.auto_enroll, "results": [r.to_json() for r in results]}


@shared_task(
    name=DUE_DELETIONS_TASK,
    queue=SPARK_QUEUE,
    **{**RELIABLE_TASK_OPTIONS, "max_retries": 5},
)
def run_due_deletions(*, now: str | None = None) -> dict[str, Any]:
    """Delete the users scheduled with `--at-month-end` whose month is over and reported.
    `now` (ISO 8601 with offset) stands in for the current time, for tests."""
    settings = current_settings()
    when: datetime = parse_spark_datetime(now) if now else utcnow()
    if not settings.spark_configured:
        log.info("month-end deletions skipped: no Spark API configured")
        return {"skipped": "Spark API not configured"}
    with connection(settings.database_url) as conn, SparkClient.from_settings(settings) as client:
        results = deletion.run_due_deletions(
            conn, client, now=when, tz=settings.timezone, grace=settings.report_grace
        )
    for result in results:
        log.info("month-end deletion of user %s: %s", result.user_id, result.outcome)
    return {"results": [r.to_json() for r in results]}


def _spark_retry_delay(exc: SparkError, retries: int) -> float:
    # Retry-After is a floor, but the countdown stays below the broker's visibility timeout.
    retry_after = exc.retry_after if isinstance(exc, SparkHTTPError) else None
    delay = backoff_seconds(
        retries + 1,
        base=SPARK_RETRY_BASE_SECONDS,
        cap=SPARK_RETRY_MAX_SECONDS,
        at_least=retry_after,
    )
    return min(delay, SPARK_RETRY_MAX_SECONDS)
