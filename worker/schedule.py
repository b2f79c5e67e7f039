"""Every periodic task, in one table: beat only triggers, PostgreSQL decides what is due.

Times are UTC. Anything tied to a local day or month (SPARK_TIMEZONE) is decided by the task
from the database, so a late, missed or doubled beat tick converges to the same result.
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab, schedule

from shared.queues import SPARK_QUEUE

BACKFILL_EVERY_SECONDS = 15 * 60


def beat_schedule() -> dict[str, dict[str, Any]]:
    return {
        "backfill-events": {
            "task": "events.backfill_events",
            "schedule": schedule(BACKFILL_EVERY_SECONDS),
            "options": {"queue": SPARK_QUEUE, "expires": BACKFILL_EVERY_SECONDS},
        },
    }


__all__ = ["beat_schedule", "crontab"]
