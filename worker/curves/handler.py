"""`PriceCurveCreated`: validate and store the curve, then have its plans dispatched.

Runs inside the event's transaction, so the curve, its targets and their pending dispatch
decisions commit together with the inbox row. A payload that is not a usable curve raises
`CurveError`: the event is kept as failed with the reason, and can be replayed after a fix.
"""

from __future__ import annotations

import logging

from shared.config import Settings
from shared.db import Connection
from shared.queues import DISPATCH_QUEUE
from shared.timeutil import utcnow
from worker.curves.payload import parse_curve
from worker.curves.store import store_curve
from worker.events.handling import FollowUp, StoredEvent

log = logging.getLogger(__name__)

DISPATCH_CURVE_TASK = "curves.dispatch_curve"


def handle_price_curve_created(
    conn: Connection, event: StoredEvent, settings: Settings
) -> list[FollowUp]:
    curve = parse_curve(event.payload, created_at=event.created_at, timezone=settings.timezone)
    if curve.duplicate_targets:
        log.warning(
            "curve %s names %d target(s) more than once; stored once each",
            event.event_id,
            curve.duplicate_targets,
        )
    stored = store_curve(conn, event.event_id, curve, now=utcnow())
    if stored.redispatched:
        older = ", ".join(f"{eid} ({n} target(s))" for eid, n in stored.redispatched.items())
        log.info("curve %s supersedes periods of older curve(s): %s", event.event_id, older)
    if not stored.new:
        log.info("curve %s was already stored; its pending plans are sent", event.event_id)
    elif not stored.dispatch_needed:
        # No targets or no periods: stored for the record, nothing to tell anyone.
        return []
    # Only brings the dispatch forward: the every-minute sweep sends pending plans anyway.
    return [FollowUp(DISPATCH_CURVE_TASK, DISPATCH_QUEUE, {"event_id": event.event_id})]
