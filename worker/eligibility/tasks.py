"""Tasks of the eligibility domain: run reconciles, find due ones, request the daily one."""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app, shared_task

from shared.config import Settings
from shared.db import connection
from shared.queues import SPARK_QUEUE
from shared.spark_api import SparkClient
from shared.timeutil import utcnow
from worker.celery_app import RELIABLE_TASK_OPTIONS, current_settings
from worker.eligibility import reconcile
from worker.eligibility.reconcile import RECONCILE_TASK, ReconcileResult, request_reconcile

log = logging.getLogger(__name__)

RUN_DUE_TASK = "eligibility.run_due_reconciles"
REQUEST_DAILY_TASK = "eligibility.request_daily_reconcile"
# The users domain's task, sent by name so neither domain imports the other.
ENROLL_TASK = "users.enroll_users"
# As many as one enroll task handles without splitting its list.
ENROLL_BATCH = 200

# Paging a million eligible users takes minutes; still far below the visibility timeout.
RECONCILE_TIME_LIMIT = 600

_RECONCILE_OPTIONS: dict[str, Any] = {
    **RELIABLE_TASK_OPTIONS,
    "max_retries": 20,
    # A retry after the worker process died: the dead attempt's connection (and so its claim)
    # is gone by then.
    "default_retry_delay": 5,
}


@shared_task(
    name=RECONCILE_TASK,
    queue=SPARK_QUEUE,
    time_limit=RECONCILE_TIME_LIMIT,
    soft_time_limit=RECONCILE_TIME_LIMIT - 30,
    **_RECONCILE_OPTIONS,
)
def reconcile_eligibility(*, reconcile_id: int) -> dict[str, Any] | None:
    """Run one reconcile if it is due and nobody runs it; a no-op otherwise."""
    settings = current_settings()
    if not settings.spark_configured:
        log.info("eligibility reconcile %d skipped: no Spark API configured", reconcile_id)
        return None
    with SparkClient.from_settings(settings) as client:
        result = reconcile.run_reconcile(
            settings.database_url, client, reconcile_id, auto_enroll=_auto_enroll(settings)
        )
    if result is None:
        return None
    _request_enrollment(result)
    return result.summary()


@shared_task(
    name=RUN_DUE_TASK,
    queue=SPARK_QUEUE,
    time_limit=RECONCILE_TIME_LIMIT,
    soft_time_limit=RECONCILE_TIME_LIMIT - 30,
    **_RECONCILE_OPTIONS,
)
def run_due_reconciles() -> list[dict[str, Any]]:
    """Run every due pending reconcile and every abandoned running one.

    This is what guarantees the reconcile after an event: the task the event's handler
    enqueues only brings it forward.
    """
    settings = current_settings()
    if not settings.spark_configured:
        return []
    with SparkClient.from_settings(settings) as client:
        results = reconcile.run_due_reconciles(
            settings.database_url, client, auto_enroll=_auto_enroll(settings)
        )
    for result in results:
        _request_enrollment(result)
    return [result.summary() for result in results]


@shared_task(
    name=REQUEST_DAILY_TASK, queue=SPARK_QUEUE, **{**RELIABLE_TASK_OPTIONS, "max_retries": 20}
)
def request_daily_reconcile() -> int:
    """Spark has not always announced lost eligibility: compare everything once a day."""
    now = utcnow()
    with connection(current_settings().database_url) as conn, conn.transaction():
        reconcile_id, _ = request_reconcile(conn, "daily", due_at=now, now=now)
    current_app.send_task(RECONCILE_TASK, kwargs={"reconcile_id": reconcile_id}, queue=SPARK_QUEUE)
    return reconcile_id


def _auto_enroll(settings: Settings) -> bool:
    return settings.auto_enroll == "consented"


def _request_enrollment(result: ReconcileResult) -> None:
    if not result.to_enroll:
        return
    try:
        enqueue_enrollment(result.to_enroll)
    except Exception:
        # The reconcile is committed and will not run again, so a retry would not help.
        log.exception(
            "could not request enrollment of %d newly eligible user(s)", len(result.to_enroll)
        )


def enqueue_enrollment(user_ids: list[str]) -> None:
    """Hand consenting users that just became eligible to the users domain, after the commit."""
    for start in range(0, len(user_ids), ENROLL_BATCH):
        batch = user_ids[start : start + ENROLL_BATCH]
        current_app.send_task(ENROLL_TASK, kwargs={"user_ids": batch}, queue=SPARK_QUEUE)
    if user_ids:
        log.info("enrollment requested for %d newly eligible user(s)", len(user_ids))
