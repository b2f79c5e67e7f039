"""The inbox: every event stored once by eventId, every delivery recorded, handlers run once.

1. Parse the raw body; a signed but unusable body becomes a dead letter, never an exception
   that would either loop or be acknowledged away.
2. In one transaction: insert the event (`ON CONFLICT DO NOTHING`), record the delivery, and,
   only if the event is new, run its handler. A crash anywhere before the commit leaves
   nothing; a crash after it makes the redelivered message a no-op.
3. After the commit, run the handler's follow-ups (e.g. enqueue a task).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from psycopg.types.json import Jsonb

from shared import logging as logs
from shared.db import TRANSIENT_ERRORS, Connection, execute, fetch_one
from worker.events.envelope import BrokenBody, Envelope, parse
from worker.events.handlers import AfterCommit, StoredEvent, handler_for

log = logging.getLogger(__name__)

Source = Literal["webhook", "poll"]


@dataclass(frozen=True)
class IngestResult:
    outcome: Literal["new", "duplicate", "dead_letter"]
    event_id: str | None = None
    status: str | None = None
    conflict: bool = False
    reason: str | None = None


def ingest(
    conn: Connection, *, delivery_id: str, raw: bytes, received_at: datetime, source: Source
) -> IngestResult:
    digest = hashlib.sha256(raw).digest()
    try:
        envelope = parse(raw, source)
    except BrokenBody as exc:
        with conn.transaction():
            execute(
                conn,
                "upsert_dead_letter",
                {
                    "body_sha256": digest,
                    "raw_body": raw,
                    "reason": exc.reason,
                    "source": source,
                    "received_at": received_at,
                },
            )
        log.warning(
            "dead letter: %s (source=%s sha256=%s)", exc.reason, source, digest.hex()[:16]
        )
        return IngestResult("dead_letter", reason=exc.reason)

    # Every line from here on (handlers included) names the event; the task's postrun clears it.
    logs.unbind("event_id", "notification_id")
    logs.bind(event_id=envelope.event_id, notification_id=envelope.notification_id)
    follow_ups: list[AfterCommit] = []
    with conn.transaction():
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
                "received_at": received_at,
                "source": source,
            },
        )
        conflict = False
        if new is None:
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
        recorded = fetch_one(
            conn,
            "insert_delivery",
            {
                "delivery_id": delivery_id,
                "event_id": envelope.event_id,
                "notification_id": envelope.notification_id,
                "source": source,
                "received_at": received_at,
                "body_sha256": digest,
                "conflict": conflict,
            },
        )
        if new is None:
            if recorded is not None:
                execute(
                    conn,
                    "touch_event",
                    {
                        "event_id": envelope.event_id,
                        "received_at": received_at,
                        "conflict": conflict,
                    },
                )
            if conflict and recorded is not None:
                log.warning(
                    "event %s delivered again with a different body (delivery %s); "
                    "the first one is kept",
                    envelope.event_id,
                    delivery_id,
                )
            return IngestResult("duplicate", envelope.event_id, conflict=conflict)
        status, follow_ups = _run_handler(conn, _stored(envelope))
    _run_follow_ups(envelope.event_id, follow_ups)
    log.info(
        "event %s (%s) stored from %s: %s",
        envelope.event_id,
        envelope.notification_type,
        source,
        status,
    )
    return IngestResult("new", envelope.event_id, status=status)


def _stored(envelope: Envelope) -> StoredEvent:
    return StoredEvent(
        event_id=envelope.event_id,
        notification_type=envelope.notification_type,
        payload_type=envelope.payload_type,
        created_at=envelope.created_at,
        payload=envelope.payload,
    )


def _run_handler(conn: Connection, event: StoredEvent) -> tuple[str, list[AfterCommit]]:
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
                follow_ups = handler(conn, event)
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


def _run_follow_ups(event_id: str, follow_ups: list[AfterCommit]) -> None:
    # Handlers keep the state of pending work in PostgreSQL, where a scheduled sweep finds it;
    # a follow-up that fails here (broker down) only delays that work, so it must not fail
    # the delivery, which is already committed.
    for follow_up in follow_ups:
        try:
            follow_up()
        except Exception:
            log.exception("follow-up of event %s failed; a scheduled sweep catches up", event_id)


def replay_event(conn: Connection, event_id: str) -> str | None:
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
        status, follow_ups = _run_handler(conn, event)
    _run_follow_ups(event_id, follow_ups)
    return status


def replay_dead_letter(conn: Connection, dead_letter_id: int, delivery_id: str) -> str | None:
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
        )
        status = outcome.status or "already stored"
        result = f"{outcome.outcome}: event {outcome.event_id} ({status})"
    with conn.transaction():
        execute(conn, "mark_dead_letter_replayed", {"id": dead_letter_id, "result": result})
    return result
