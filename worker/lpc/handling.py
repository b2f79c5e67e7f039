"""What the three LPC handlers share: read the payload, store the event with its caps, and
for a resource or location event plan its caps to the control system and its
acknowledgement, sent after the commit."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from shared.config import Settings
from shared.db import Connection, fetch_one
from shared.queues import DISPATCH_QUEUE, SPARK_QUEUE
from shared.timeutil import utcnow
from worker.celery_app import MAX_COUNTDOWN
from worker.events.handling import FollowUp, StoredEvent
from worker.lpc.ack import ack_due_by, plan_ack
from worker.lpc.dispatch import make_answered_acks_due, plan_dispatches
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


# Named here, not imported from the task modules, which import Celery's task machinery.
SEND_ACK_TASK = "lpc.send_ack"
DISPATCH_DUE_TASK = "curves.dispatch_due"
# After due_by, so the task never finds it not yet due.
ACK_COUNTDOWN_MARGIN_SECONDS = 0.5


def plan_reaction(conn: Connection, event_id: str, *, within: timedelta, now: datetime) -> None:
    """In the stored event's transaction, once however often it comes: its caps' plans, due
    `now`, and its acknowledgement, due by its deadline from the event's first arrival (or at
    once, when no target is to be asked about)."""
    row = fetch_one(conn, "get_lpc_event", {"event_id": event_id})
    assert row is not None
    due_by = ack_due_by(row["received_at"], row["first_period_start"], within)
    if plan_ack(conn, event_id, received_at=row["received_at"], due_by=due_by):
        plan_dispatches(conn, event_id, now=now)
        make_answered_acks_due(conn, [event_id], now=now)


def handle_acted_on(
    conn: Connection, event: StoredEvent, settings: Settings, kind: Kind
) -> list[FollowUp]:
    """A resource or location event: stored; its caps' plans and its acknowledgement planned
    (once, however often the event comes). After the commit the dispatch run sends the caps,
    and the acknowledgement is queued for its deadline (sooner when the answers are in)."""
    store_lpc_event(conn, event, kind)
    now = utcnow()
    plan_reaction(conn, event.event_id, within=settings.lpc_ack_within, now=now)
    follow_ups = [FollowUp(DISPATCH_DUE_TASK, DISPATCH_QUEUE)]
    ack = fetch_one(conn, "get_lpc_ack", {"event_id": event.event_id})
    if ack is not None and ack["status"] in ("due", "retrying") and ack["next_attempt_at"]:
        wait = max((ack["next_attempt_at"] - now).total_seconds(), 0.0)
        # A longer wait than an ETA may be is left to the every-minute sweep.
        if wait + ACK_COUNTDOWN_MARGIN_SECONDS <= MAX_COUNTDOWN:
            countdown = wait + ACK_COUNTDOWN_MARGIN_SECONDS if wait else None
            follow_ups.append(
                FollowUp(SEND_ACK_TASK, SPARK_QUEUE, {"event_id": event.event_id}, countdown)
            )
    return follow_ups
