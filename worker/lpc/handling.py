"""What the three LPC handlers share: read the payload, store the event with its caps, and
for a resource or location event plan its acknowledgement, sent after the commit."""

from __future__ import annotations

import logging

from shared.config import Settings
from shared.db import Connection, fetch_one
from shared.queues import SPARK_QUEUE
from shared.timeutil import utcnow
from worker.events.handling import FollowUp, StoredEvent
from worker.lpc.ack import plan_ack
from worker.lpc.payload import Kind, parse_lpc
from worker.lpc.store import store_lpc

log = logging.getLogger(__name__)


def store_lpc_event(conn: Connection, event: StoredEvent, kind: Kind) -> bool:
    """Store the event's targets and caps; False when it was stored before (a replay)."""
    lpc = parse_lpc(event.payload, kind)
    if lpc.duplicate_targets:
        log.warning(
            "LPC event %s names %d target(s) more than once; stored once each",
            event.event_id,
            lpc.duplicate_targets,
        )
    received_at = utcnow()
    new = store_lpc(conn, event.event_id, lpc, created_at=event.created_at, received_at=received_at)
    if new:
        log.info(
            "LPC event %s (%s): %d target(s), periods %s to %s",
            event.event_id,
            kind,
            len(lpc.targets),
            lpc.first_period_start.isoformat() if lpc.first_period_start else "-",
            lpc.last_period_end.isoformat() if lpc.last_period_end else "-",
        )
    return new


# Named here, not imported from worker.lpc.tasks, which imports Celery's task machinery.
SEND_ACK_TASK = "lpc.send_ack"


def handle_acted_on(
    conn: Connection, event: StoredEvent, settings: Settings, kind: Kind
) -> list[FollowUp]:
    """A resource or location event: stored, its acknowledgement planned (once, however often
    the event comes) and sent by a follow-up once the event's transaction has committed."""
    store_lpc_event(conn, event, kind)
    # The first arrival counts, not a replay's.
    row = fetch_one(conn, "get_lpc_event", {"event_id": event.event_id})
    assert row is not None
    plan_ack(conn, event.event_id, received_at=row["received_at"], within=settings.lpc_ack_within)
    return [FollowUp(SEND_ACK_TASK, SPARK_QUEUE, {"event_id": event.event_id})]
