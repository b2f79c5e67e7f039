"""`UserEligibilityUpdated`: note what the event says, and make sure a full reconcile follows.

The event's `addedUsers` and `removedUsers` are hints, not truth: Spark has not always
announced removals. They are kept so the reconcile can say which changes an event announced.
Every event of a burst joins the one pending reconcile (PostgreSQL allows only one), so a
burst costs one read of Spark's full list, however many events it holds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from shared.config import Settings
from shared.db import Connection, execute
from shared.queues import SPARK_QUEUE
from shared.timeutil import utcnow
from worker.celery_app import MAX_COUNTDOWN
from worker.eligibility.reconcile import RECONCILE_TASK, request_reconcile
from worker.events.handling import FollowUp, StoredEvent

log = logging.getLogger(__name__)


def handle_user_eligibility_updated(
    conn: Connection, event: StoredEvent, settings: Settings
) -> list[FollowUp]:
    settle = settings.eligibility_settle_seconds
    now = utcnow()
    reconcile_id, due_at = request_reconcile(
        conn, "event", due_at=now + timedelta(seconds=settle), now=now
    )
    added = _user_ids(event, "addedUsers")
    removed = _user_ids(event, "removedUsers")
    execute(
        conn,
        "insert_eligibility_hints",
        {
            "event_id": event.event_id,
            "reconcile_id": reconcile_id,
            "user_ids": [*added, *removed],
            "changes": ["added"] * len(added) + ["removed"] * len(removed),
        },
    )
    # Only a shortcut to the due time: the every-minute sweep runs the reconcile anyway, so a
    # wait longer than an ETA may be (worker.celery_app.MAX_COUNTDOWN) is left to the sweep.
    countdown = max(0.0, (due_at - now).total_seconds())
    if countdown > MAX_COUNTDOWN:
        return []
    return [
        FollowUp(RECONCILE_TASK, SPARK_QUEUE, {"reconcile_id": reconcile_id}, countdown=countdown)
    ]


def _user_ids(event: StoredEvent, field: str) -> list[str]:
    """The distinct user ids of one list of the payload; anything else is logged and skipped,
    since the reconcile decides from Spark's list anyway."""
    value: Any = event.payload.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        log.warning("event %s: %s is not a list; ignored", event.event_id, field)
        return []
    valid = _strings(value)
    if len(valid) != len(value):
        log.warning(
            "event %s: %d entries of %s are not user ids; ignored",
            event.event_id,
            len(value) - len(valid),
            field,
        )
    return list(dict.fromkeys(valid))


def _strings(values: Iterable[Any]) -> list[str]:
    return [value for value in values if isinstance(value, str) and value]
