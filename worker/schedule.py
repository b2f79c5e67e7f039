"""Every periodic task, in one table: beat only triggers, PostgreSQL decides what is due.

Times are UTC. Anything tied to a local day or month (SPARK_TIMEZONE) is decided by the task
from the database, so a late, missed or doubled beat tick converges to the same result.
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab, schedule

from shared.queues import DISPATCH_QUEUE, SPARK_QUEUE

BACKFILL_EVERY_SECONDS = 15 * 60
USERS_SYNC_EVERY_SECONDS = 5 * 60
DELIVERY_LOG_EVERY_SECONDS = 15 * 60


def beat_schedule() -> dict[str, dict[str, Any]]:
    return {
        "backfill-events": {
            "task": "events.backfill_events",
            "schedule": schedule(BACKFILL_EVERY_SECONDS),
            "options": {"queue": SPARK_QUEUE, "expires": BACKFILL_EVERY_SECONDS},
        },
        # Spark's delivery log and our webhook's health: recovers what Spark failed to deliver
        # and alerts when Spark reports the webhook unhealthy or disabled.
        "check-delivery-log": {
            "task": "webhooks.check_delivery_log",
            "schedule": schedule(DELIVERY_LOG_EVERY_SECONDS),
            "options": {"queue": SPARK_QUEUE, "expires": DELIVERY_LOG_EVERY_SECONDS},
        },
        # Returns at once when nothing is unsynced.
        "sync-users-registry": {
            "task": "users.sync_registry",
            "schedule": schedule(USERS_SYNC_EVERY_SECONDS),
            "options": {"queue": SPARK_QUEUE, "expires": USERS_SYNC_EVERY_SECONDS},
        },
        # Month ends are local (SPARK_TIMEZONE): the task decides what is due, hourly.
        "run-due-user-deletions": {
            "task": "users.run_due_deletions",
            "schedule": crontab(minute=5),
            "options": {"queue": SPARK_QUEUE, "expires": 3600},
        },
        # Runs the reconciles that eligibility events requested once they are due, and reruns
        # any whose worker died; returns at once when there is none.
        "run-due-eligibility-reconciles": {
            "task": "eligibility.run_due_reconciles",
            "schedule": schedule(60),
            "options": {"queue": SPARK_QUEUE, "expires": 60},
        },
        # Spark has not always announced lost eligibility: a full comparison once a day, at a
        # quiet hour.
        "daily-eligibility-reconcile": {
            "task": "eligibility.request_daily_reconcile",
            "schedule": crontab(minute=20, hour=3),
            "options": {"queue": SPARK_QUEUE, "expires": 3600},
        },
        # Price-curve plans whose retry is due, or whose worker died; returns at once when
        # there is none.
        "dispatch-due-curve-plans": {
            "task": "curves.dispatch_due",
            "schedule": schedule(60),
            "options": {"queue": DISPATCH_QUEUE, "expires": 60},
        },
        # Tomorrow's curve, from 13:30 local (SPARK_CURVE_CHECK_TIME): the task decides from
        # the clock and PostgreSQL whether a check is due.
        "check-tomorrows-curve": {
            "task": "curves.check_tomorrows_curve",
            "schedule": crontab(minute="*/15"),
            "options": {"queue": SPARK_QUEUE, "expires": 15 * 60},
        },
        # Reports, every hour on the hour. From 12:00 local (SPARK_TIMEZONE) on a month's last
        # day these are the final sweeps (12:00 and 18:00, and each hour after): PostgreSQL
        # sees it from `now` and sends everything of the month that has ended. New readings
        # that may complete a report trigger a sweep too.
        "sweep-reports": {
            "task": "reports.sweep",
            "schedule": crontab(minute=0),
            "options": {"queue": SPARK_QUEUE, "expires": 3600},
        },
        # LPC acknowledgements: each is sent at once by a follow-up of its event; this takes
        # back any a lost task or a dead sender left, and alerts those not accepted within
        # 15 minutes. Returns at once when nothing is due.
        "sweep-lpc-acks": {
            "task": "lpc.sweep_acks",
            "schedule": schedule(60),
            "options": {"queue": SPARK_QUEUE, "expires": 60},
        },
        # Spark's compensation feedback for users with reports this month, once a day.
        "fetch-compensation": {
            "task": "reports.fetch_compensation",
            "schedule": crontab(minute=40, hour=4),
            "options": {"queue": SPARK_QUEUE, "expires": 3600},
        },
    }


__all__ = ["beat_schedule", "crontab"]
