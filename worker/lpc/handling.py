"""What the three LPC handlers share: read the payload, store the event with its caps."""

from __future__ import annotations

import logging

from shared.db import Connection
from shared.timeutil import utcnow
from worker.events.handling import StoredEvent
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
    new = store_lpc(conn, event.event_id, lpc, created_at=event.created_at, received_at=utcnow())
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
