"""Tasks of the reports domain. Beat triggers them (worker/schedule.py); what is due, missed
or final is decided in PostgreSQL from `now`, which every task takes as an ISO 8601 string
for tests and defaults to the current time.

- `reports.sweep`: the sweep (worker.reports.ledger), then send what is due, for a bounded
  time; goes on in a new task when more is due. Hourly, and after new readings that may
  complete a report.
- `reports.send_report`: one report; the retry of a failed attempt, queued with its backoff
  as countdown (and, when `now` was given, that much later as its `now`).
- `reports.fetch_compensation`: Spark's compensation feedback, daily.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from celery import shared_task

from shared.config import Settings
from shared.db import connection
from shared.queues import SPARK_QUEUE
from shared.spark_api import SparkClient
from shared.timeutil import isoformat_utc, parse_spark_datetime, utcnow
from worker.celery_app import MAX_COUNTDOWN, RELIABLE_TASK_OPTIONS, current_settings
from worker.reports import compensation, corrections, ledger, sender
from worker.reports.ledger import ReportRules
from worker.reports.sender import SendResult

log = logging.getLogger(__name__)

SWEEP_TASK = "reports.sweep"
SEND_REPORT_TASK = "reports.send_report"
COMPENSATION_TASK = "reports.fetch_compensation"

TIME_LIMIT = 300
# A run stops sending well inside its time limit and hands the rest to a new run.
SEND_BUDGET_SECONDS = 200

# One client per worker process: its token is reused by every task the process runs.
_clients: dict[str, SparkClient] = {}


def spark_client(settings: Settings) -> SparkClient:
    """The process's Spark client for reports (LPC acknowledgements use it too)."""
    key = settings.spark_api_url or ""
    client = _clients.get(key)
    if client is None:
        client = sender.report_client(settings)
        _clients[key] = client
    return client


@dataclass(frozen=True)
class _Setup:
    """What each task here starts from: its `now`, the settings and the report rules."""

    when: datetime
    settings: Settings
    rules: ReportRules

    def client(self) -> SparkClient:
        # Made only when a task is about to call Spark, so that the sweep runs first even when
        # the Spark settings are incomplete.
        return spark_client(self.settings)


def _setup(now: str | None) -> _Setup:
    settings = current_settings()
    return _Setup(
        when=parse_spark_datetime(now) if now else utcnow(),
        settings=settings,
        rules=ReportRules.from_settings(settings),
    )


class Retrying(Protocol):
    """What queue_retries reads of a send's result (a report's, or an LPC acknowledgement's)."""

    @property
    def status(self) -> str: ...
    @property
    def retry_at(self) -> datetime | None: ...


R = TypeVar("R", bound=Retrying)


def queue_retries(
    task: Any,
    results: Sequence[R],
    key: Callable[[R], dict[str, Any]],
    *,
    now: datetime,
    explicit_now: bool,
) -> int:
    """Queue `task` again for each attempt that failed, for when its backoff ends."""
    queued = 0
    for result in results:
        if result.status != "retrying" or result.retry_at is None:
            continue
        delay = max((result.retry_at - now).total_seconds(), 0.0)
        if delay > MAX_COUNTDOWN:
            # The sweep picks it up; a countdown this long would outlive the broker's
            # visibility timeout.
            continue
        task.apply_async(
            kwargs={
                **key(result),
                "now": isoformat_utc(result.retry_at) if explicit_now else None,
            },
            countdown=delay,
            queue=SPARK_QUEUE,
        )
        queued += 1
    return queued


def _report_key(result: SendResult) -> dict[str, Any]:
    return {"report_id": result.report_id}


@shared_task(
    name=SWEEP_TASK,
    queue=SPARK_QUEUE,
    time_limit=TIME_LIMIT,
    soft_time_limit=TIME_LIMIT - 30,
    **{**RELIABLE_TASK_OPTIONS, "max_retries": 10},
)
def sweep_reports(*, now: str | None = None) -> dict[str, Any]:
    setup = _setup(now)
    when = setup.when
    with connection(setup.settings.database_url) as conn:
        swept = ledger.sweep(conn, setup.rules, now=when)
        if not setup.settings.spark_configured:
            log.info("reports not sent: no Spark API configured")
            return {"sweep": swept.to_json(), "sent": []}
        budget_ends = time.monotonic() + SEND_BUDGET_SECONDS
        results = sender.send_due(conn, setup.client(), setup.rules, now=when, deadline=budget_ends)
        corrected = corrections.correct(conn, setup.client(), setup.rules, now=when)
        more_due = ledger.next_attempt_at(conn)
    follow_ups = queue_retries(
        send_report, results, _report_key, now=when, explicit_now=now is not None
    )
    if time.monotonic() >= budget_ends and more_due is not None and more_due <= when:
        # Stopped by its budget with reports still due: go on now.
        sweep_reports.apply_async(kwargs={"now": now}, queue=SPARK_QUEUE)
    return {
        "sweep": swept.to_json(),
        "sent": [result.to_json() for result in results],
        "followUps": follow_ups,
        "corrections": corrected.to_json() if corrected else None,
    }


@shared_task(
    name=SEND_REPORT_TASK,
    queue=SPARK_QUEUE,
    time_limit=TIME_LIMIT,
    soft_time_limit=TIME_LIMIT - 30,
    **{**RELIABLE_TASK_OPTIONS, "max_retries": 10},
)
def send_report(*, report_id: int, now: str | None = None) -> dict[str, Any]:
    """Send report `report_id` if it is due (a retry whose backoff has ended)."""
    setup = _setup(now)
    when = setup.when
    if not setup.settings.spark_configured:
        return {"sent": []}
    with connection(setup.settings.database_url) as conn:
        results = sender.send_due(conn, setup.client(), setup.rules, now=when, report_id=report_id)
    follow_ups = queue_retries(
        send_report, results, _report_key, now=when, explicit_now=now is not None
    )
    return {"sent": [result.to_json() for result in results], "followUps": follow_ups}


@shared_task(
    name=COMPENSATION_TASK,
    queue=SPARK_QUEUE,
    time_limit=TIME_LIMIT,
    soft_time_limit=TIME_LIMIT - 30,
    **{**RELIABLE_TASK_OPTIONS, "max_retries": 5},
)
def fetch_compensation(*, now: str | None = None) -> dict[str, Any]:
    setup = _setup(now)
    if not setup.settings.spark_configured:
        return {"skipped": "Spark API not configured"}
    with connection(setup.settings.database_url) as conn:
        run = compensation.fetch_compensations(
            conn,
            setup.client(),
            setup.rules,
            now=setup.when,
            deadline=time.monotonic() + SEND_BUDGET_SECONDS,
        )
    if run.more and run.stopped is None:
        fetch_compensation.apply_async(kwargs={"now": now}, queue=SPARK_QUEUE)
    elif run.more:
        # Spark is failing: try again in a while rather than at once.
        fetch_compensation.apply_async(
            kwargs={"now": now},
            countdown=min(timedelta(minutes=5).total_seconds(), MAX_COUNTDOWN),
            queue=SPARK_QUEUE,
        )
    return run.to_json()
