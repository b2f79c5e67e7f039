"""The inbox: every event stored once by eventId, every delivery recorded, handlers run once.

1. Parse the raw body; a signed but unusable body becomes a dead letter, never an exception
   that would either loop or be acknowledged away.
2. In one transaction: insert the event (`ON CONFLICT DO NOTHING`), record the delivery, and,
   only if the event is new, run its handler. A crash anywhere before the commit leaves
   nothing; a crash after it makes the redelivered message a no-op.
3. After the commit, send the tasks the handler returned as its follow-up work.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from psycopg.types.json import Jsonb

from shared import logging as logs
from shared.config import Settings
from shared.db import TRANSIENT_ERRORS, Connection, execute, fetch_one
from worker.events.envelope import BrokenBody, Envelope, parse
from worker.events.handlers import handler_for
from worker.events.handling import FollowUp, StoredEvent, TaskSender

log = logging.getLogger(__name__)

Source = Literal["webhook", "poll"]


@dataclass(frozen=True)
class IngestResult:
    outcome: Literal["new", "duplicate", "dead_letter"]
    event_id: str | None = None
    status: str | None = None
    conflict: bool = False
    reason: str | None = None


@dataclass(frozen=True)
class Delivery:
    """One arrival of a body: a webhook's queued message, or an event the backfill fetched."""

    delivery_id: str
    source: Source
    received_at: datetime
    body_sha256: bytes


def ingest(
    conn: Connection,
    *,
    delivery_id: str,
    raw: bytes,
    received_at: datetime,
    source: Source,
    settings: Settings,
    sender: TaskSender,
) -> IngestResult:
    delivery = Delivery(delivery_id, source, received_at, hashlib.sha256(raw).digest())
    try:
        envelope = parse(raw, source)
    except BrokenBody as exc:
        _store_dead_letter(conn, raw, delivery, exc.reason)
        return IngestResult("dead_letter", reason=exc.reason)

    # Every line from here on (handlers included) names the event; the task's postrun clears it.
    logs.unbind("event_id", "notification_id")
    logs.bind(event_id=envelope.event_id, notification_id=envelope.notification_id)
    with conn.transaction():
        if not _store_event(conn, envelope, raw, delivery):
            conflict = _record_repeat(conn, envelope, delivery)
            return IngestResult("duplicate", envelope.event_id, conflict=conflict)
        _record_delivery(conn, envelope, delivery, conflict=False)
        status, follow_ups = _run_handler(conn, _stored(envelope), settings)
    send_follow_ups(sender, envelope.event_id, follow_ups)
    log.info(
        "event %s (%s) stored from %s: %s",
        envelope.event_id,
        envelope.notification_type,
        source,
        status,
    )
    return IngestResult("new", envelope.event_id, status=status)


def _store_dead_letter(conn: Connection, raw: bytes, delivery: Delivery, reason: str) -> None:
    with conn.transaction():
        execute(
            conn,
            "upsert_dead_letter",
            {
                "body_sha256": delivery.body_sha256,
                "raw_body": raw,
                "reason": reason,
                "source": delivery.source,
                "received_at": delivery.received_at,
            },
        )
    log.warning(
        "dead letter: %s (source=%s sha256=%s)",
        reason,
        delivery.source,
        delivery.body_sha256.hex()[:16],
    )


def _store_event(conn: Connection, envelope: Envelope, raw: bytes, delivery: Delivery) -> bool:
    """Insert the event unless its eventId is known; True when it is new."""
    new = fetch_one(
        conn,
        "insert_event",
        {
            "event_id": envelope.event_id,
            "notification_type": envelope.notification_type,
            "payload_type": envelope.payload_type,
            "event_created_at": envelope.created_at,
            "payload": Jsonb(envelope.payload),
            "raw_body": raw,
            "received_at": delivery.received_at,
            "source": delivery.source,
        },
    )
    return new is not None


def _record_delivery(
    conn: Connection, envelope: Envelope, delivery: Delivery, *, conflict: bool
) -> bool:
    """Record the delivery; False when this delivery (a redelivered message) is known."""
    recorded = fetch_one(
        conn,
        "insert_delivery",
        {
            "delivery_id": delivery.delivery_id,
            "event_id": envelope.event_id,
            "notification_id": envelope.notification_id,
            "source": delivery.source,
            "received_at": delivery.received_at,
            "body_sha256": delivery.body_sha256,
            "conflict": conflict,
        },
    )
    return recorded is not None


def _record_repeat(conn: Connection, envelope: Envelope, delivery: Delivery) -> bool:
    """Record another delivery of a stored event; True when its body differs from the first."""
    compared = fetch_one(
        conn,
        "compare_event",
        {
            "event_id": envelope.event_id,
            "payload": Jsonb(envelope.payload),
            "notification_type": envelope.notification_type,
        },
    )
    conflict = bool(compared and compared["conflict"])
    if not _record_delivery(conn, envelope, delivery, conflict=conflict):
        return conflict
    execute(
        conn,
        "touch_event",
        {"event_id": envelope.event_id, "received_at": delivery.received_at, "conflict": conflict},
    )
    if conflict:
        log.warning(
            "event %s delivered again with a different body (delivery %s); the first one is kept",
            envelope.event_id,
            delivery.delivery_id,
        )
    return conflict


def _stored(envelope: Envelope) -> StoredEvent:
    return StoredEvent(
        event_id=envelope.event_id,
        notification_type=envelope.notification_type,
        payload_type=envelope.payload_type,
        created_at=envelope.created_at,
        payload=envelope.payload,
    )


def _run_handler(
    conn: Connection, event: StoredEvent, settings: Settings
) -> tuple[str, list[FollowUp]]:
    """Run the event's handler in a savepoint and record the outcome on the event row.

    A database outage propagates, so the whole delivery is retried. Any other error is a bug
    or bad data: the event is kept as `failed` with the reason, for a replay after a fix,
    instead of being retried forever or acknowledged away.
    """
    handler = handler_for(event.notification_type)
    status, error, follow_ups = "unhandled", None, []
    if handler is not None:
        try:
            with conn.transaction():
                follow_ups = handler(conn, event, settings)
            status = "processed"
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:
            log.exception(
                "handler for %s failed on event %s", event.notification_type, event.event_id
            )
            status, error = "failed", f"{type(exc).__name__}: {exc}"
    execute(conn, "mark_event", {"event_id": event.event_id, "status": status, "error": error})
    return status, follow_ups


def send_follow_ups(sender: TaskSender, event_id: str, follow_ups: list[FollowUp]) -> None:
    """Send a committed event's follow-up tasks.

    Handlers keep the state of pending work in PostgreSQL, where a scheduled sweep finds it;
    a follow-up that cannot be sent (broker down) only delays that work, so it must not fail
    the delivery, which is already committed.
    """
    for follow_up in follow_ups:
        try:
            sender.send_task(
                follow_up.task,
                kwargs=follow_up.kwargs,
                queue=follow_up.queue,
                countdown=follow_up.countdown,
            )
        except Exception:
            log.exception(
                "follow-up %s of event %s failed; a scheduled sweep catches up",
                follow_up.task,
                event_id,
            )


def replay_event(
    conn: Connection, event_id: str, *, settings: Settings, sender: TaskSender
) -> str | None:
    """Run the handler again for a stored event (unhandled, failed, or on purpose)."""
    with conn.transaction():
        row = fetch_one(conn, "get_event_for_update", {"event_id": event_id})
        if row is None:
            return None
        event = StoredEvent(
            event_id=row["event_id"],
            notification_type=row["notification_type"],
            payload_type=row["payload_type"],
            created_at=row["event_created_at"],
            payload=row["payload"],
        )
        status, follow_ups = _run_handler(conn, event, settings)
    send_follow_ups(sender, event_id, follow_ups)
    return status


def replay_dead_letter(
    conn: Connection,
    dead_letter_id: int,
    delivery_id: str,
    *,
    settings: Settings,
    sender: TaskSender,
) -> str | None:
    """Feed a dead letter's bytes through the ingest path again, e.g. after a parser fix."""
    row = fetch_one(conn, "get_dead_letter", {"id": dead_letter_id})
    conn.commit()
    if row is None:
        return None
    raw = bytes(row["raw_body"])
    try:
        parse(raw, row["source"])
    except BrokenBody as exc:
        result = f"still broken: {exc.reason}"
    else:
        outcome = ingest(
            conn,
            delivery_id=delivery_id,
            raw=raw,
            received_at=row["last_received_at"],
            source=row["source"],
            settings=settings,
            sender=sender,
        )
        status = outcome.status or "already stored"
        result = f"{outcome.outcome}: event {outcome.event_id} ({status})"
    with conn.transaction():
        execute(conn, "mark_dead_letter_replayed", {"id": dead_letter_id, "result": result})
    return result
