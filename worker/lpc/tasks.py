"""Tasks of the LPC domain: sending acknowledgements (worker.lpc.ack). Every task takes `now`
as an ISO 8601 string for tests and defaults to the current time.

- `lpc.send_ack`: the given event's acknowledgement if it is due: the follow-up of a stored
  event (after its commit), and the retry of a failed attempt, queued with its backoff.
- `lpc.sweep_acks`: every minute (worker/schedule.py): take back acknowledgements whose
  sender died, alert those not accepted within 15 minutes, send whatever is due.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import shared_task

from shared.db import connection
from shared.queues import SPARK_QUEUE
from shared.timeutil import parse_spark_datetime, utcnow
from worker.celery_app import RELIABLE_TASK_OPTIONS, current_settings
from worker.lpc import ack
from worker.reports.tasks import queue_retries, spark_client

log = logging.getLogger(__name__)

SEND_ACK_TASK = "lpc.send_ack"
SWEEP_ACKS_TASK = "lpc.sweep_acks"

TIME_LIMIT = 120
SEND_BUDGET_SECONDS = 60


def _ack_key(result: ack.AckResult) -> dict[str, Any]:
    return {"event_id": result.event_id}


@shared_task(
    name=SEND_ACK_TASK,
    queue=SPARK_QUEUE,
    time_limit=TIME_LIMIT,
    soft_time_limit=TIME_LIMIT - 30,
    **{**RELIABLE_TASK_OPTIONS, "max_retries": 10},
)
def send_ack(*, event_id: str, now: str | None = None) -> dict[str, Any]:
    settings = current_settings()
    when = parse_spark_datetime(now) if now else utcnow()
    if not settings.spark_configured:
        log.info("LPC acknowledgement of %s not sent: no Spark API configured", event_id)
        return {"sent": []}
    with connection(settings.database_url) as conn:
        results = ack.send_due(conn, spark_client(settings), now=when, event_id=event_id)
    follow_ups = queue_retries(send_ack, results, _ack_key, now=when, explicit_now=now is not None)
    return {"sent": [result.to_json() for result in results], "followUps": follow_ups}


@shared_task(
    name=SWEEP_ACKS_TASK,
    queue=SPARK_QUEUE,
    time_limit=TIME_LIMIT,
    soft_time_limit=TIME_LIMIT - 30,
    **{**RELIABLE_TASK_OPTIONS, "max_retries": 10},
)
def sweep_acks(*, now: str | None = None) -> dict[str, Any]:
    settings = current_settings()
    when = parse_spark_datetime(now) if now else utcnow()
    with connection(settings.database_url) as conn:
        swept = ack.sweep(conn, now=when)
        if not settings.spark_configured:
            return {"sweep": swept.to_json(), "sent": []}
        more = ack.next_attempt_at(conn)
        if more is None or more > when:
            return {"sweep": swept.to_json(), "sent": []}
        results = ack.send_due(
            conn,
            spark_client(settings),
            now=when,
            deadline=time.monotonic() + SEND_BUDGET_SECONDS,
        )
    follow_ups = queue_retries(send_ack, results, _ack_key, now=when, explicit_now=now is not None)
    return {
        "sweep": swept.to_json(),
        "sent": [result.to_json() for result in results],
        "followUps": follow_ups,
    }
