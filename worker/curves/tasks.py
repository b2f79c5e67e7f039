"""Tasks of the price-curve domain: dispatch plans (price curves' and LPC caps'), sweep for
due ones, check tomorrow's curve."""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from celery import current_app, shared_task

from shared.config import CurveSettings, Settings
from shared.queues import DISPATCH_QUEUE, SPARK_QUEUE
from shared.spark_api import SparkClient
from shared.timeutil import utcnow
from worker.celery_app import RELIABLE_TASK_OPTIONS, current_settings
from worker.curves.check import run_check
from worker.curves.dispatch import DispatchReport, RetryPolicy, run_dispatch
from worker.curves.dispatchers import dispatcher_from_settings
from worker.curves.handler import DISPATCH_CURVE_TASK
from worker.lpc.handling import SEND_ACK_TASK
from worker.plan_kinds import PLAN_KINDS

log = logging.getLogger(__name__)

DISPATCH_DUE_TASK = "curves.dispatch_due"
CHECK_TASK = "curves.check_tomorrows_curve"

DISPATCH_TIME_LIMIT = 300
# A run stops taking new batches after this, leaving room for one more dispatcher call.
DISPATCH_BUDGET_SECONDS = 120.0
# Retries due sooner than this are woken by a delayed task; later ones by the sweep on beat.
WAKE_UP_HORIZON = timedelta(seconds=60)

_DISPATCH_OPTIONS: dict[str, Any] = {
    **RELIABLE_TASK_OPTIONS,
    "max_retries": 20,
    "time_limit": DISPATCH_TIME_LIMIT,
    "soft_time_limit": DISPATCH_TIME_LIMIT - 30,
}


@shared_task(name=DISPATCH_CURVE_TASK, queue=DISPATCH_QUEUE, **_DISPATCH_OPTIONS)
def dispatch_curve(*, event_id: str) -> dict[str, Any]:
    """Send the plans of a just stored (or superseding) curve.

    A run sends everything due, not only this curve's plans: when another run is busy, that
    one picks these up, so the event id only says why this run started.
    """
    log.info("dispatch requested for curve %s", event_id)
    return _dispatch(current_settings())


@shared_task(name=DISPATCH_DUE_TASK, queue=DISPATCH_QUEUE, **_DISPATCH_OPTIONS)
def dispatch_due() -> dict[str, Any]:
    """The sweep: retries whose time has come, plans whose worker died, and any curve whose
    follow-up task was lost. Returns at once when nothing is due."""
    return _dispatch(current_settings())


def dispatch_lease(curves: CurveSettings) -> timedelta:
    """How long a run's claim lasts: long enough for one dispatcher call (connect and read
    timeouts) and its records. A claim a run could not hand back waits this long, and then
    for beat's sweep."""
    return timedelta(seconds=4 * curves.dispatch_timeout_seconds + 60)


def _dispatch(settings: Settings) -> dict[str, Any]:
    curves = settings.curves
    dispatcher = dispatcher_from_settings(curves, current_app)
    try:
        report = run_dispatch(
            settings.database_url,
            dispatcher,
            RetryPolicy.from_settings(curves),
            kinds=PLAN_KINDS,
            batch_size=curves.dispatch_batch_size,
            lease=dispatch_lease(curves),
            budget_seconds=DISPATCH_BUDGET_SECONDS,
        )
    finally:
        dispatcher.close()
    for event_id in report.answered:
        # Every cap of the event has the control system's answer: acknowledge now.
        current_app.send_task(SEND_ACK_TASK, kwargs={"event_id": event_id}, queue=SPARK_QUEUE)
    _wake_up_for(report)
    return {**asdict(report), "next_due_at": _iso(report.next_due_at)}


def _wake_up_for(report: DispatchReport) -> None:
    if report.busy:
        return
    if report.more:
        dispatch_due.apply_async(queue=DISPATCH_QUEUE)
        return
    if report.next_due_at is None:
        return
    wait = report.next_due_at - utcnow()
    if wait <= WAKE_UP_HORIZON:
        dispatch_due.apply_async(
            countdown=max(wait.total_seconds(), 0.0),
            queue=DISPATCH_QUEUE,
            expires=WAKE_UP_HORIZON.total_seconds() * 2,
        )


@shared_task(
    name=CHECK_TASK,
    queue=SPARK_QUEUE,
    time_limit=240,
    soft_time_limit=210,
    **{**RELIABLE_TASK_OPTIONS, "max_retries": 5},
)
def check_tomorrows_curve(*, now: str | None = None, wait_seconds: float = 30.0) -> Any:
    """The daily check, run every 15 minutes; PostgreSQL decides whether it is due.

    `now` (ISO 8601) stands in for the current time, for tests and for rerunning a day.
    """
    settings = current_settings()
    at = datetime.fromisoformat(now) if now else utcnow()
    client = SparkClient.from_settings(settings) if settings.spark_configured else None
    try:
        result = run_check(
            settings.database_url,
            settings.curves,
            settings.timezone,
            client=client,
            now=at,
            wait_seconds=wait_seconds,
        )
    finally:
        if client is not None:
            client.close()
    return None if result is None else result.to_json()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
