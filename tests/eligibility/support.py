"""What the eligibility tests share: events stored as the inbox stores them, local users,
Spark users inside or outside a neighbourhood, and views of the resulting state."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from celery import Celery
from psycopg.types.json import Jsonb

from shared.config import load_settings
from shared.db import Connection, fetch_one
from shared.queues import SPARK_QUEUE
from shared.spark_api import SparkClient
from shared.timeutil import utcnow
from tests.fixtures.sandbox import AREA_1_METER, OUTSIDE_AREAS, SandboxHandle
from tests.worker.events import body, eligibility_payload, notification
from worker.eligibility.handler import handle_user_eligibility_updated
from worker.events.handling import FollowUp, StoredEvent

# The defaults, whatever the environment: a settle delay of 60 s.
SETTINGS = load_settings({})


def eligibility_event(
    added: list[Any] | None = None, removed: list[Any] | None = None
) -> dict[str, Any]:
    return notification(payload=eligibility_payload(added=added or [], removed=removed or []))


def store_event(conn: Connection, document: dict[str, Any]) -> StoredEvent:
    """Store an event in the inbox as the ingest does, without running its handler."""
    created_at = utcnow()
    fetch_one(
        conn,
        "insert_event",
        {
            "event_id": document["eventId"],
            "notification_type": document["notificationType"],
            "payload_type": document["payload"].get("payloadType"),
            "event_created_at": created_at,
            "payload": Jsonb(document["payload"]),
            "raw_body": body(document),
            "received_at": created_at,
            "source": "webhook",
        },
    )
    return StoredEvent(
        event_id=document["eventId"],
        notification_type=document["notificationType"],
        payload_type=document["payload"].get("payloadType"),
        created_at=created_at,
        payload=document["payload"],
    )


def handle_event(conn: Connection, document: dict[str, Any]) -> list[FollowUp]:
    """Store the event and run the eligibility handler, committed (follow-ups not run)."""
    with conn.transaction():
        return handle_user_eligibility_updated(conn, store_event(conn, document), SETTINGS)


def local_user(
    conn: Connection,
    user_id: str,
    *,
    eligible: bool = False,
    consented: bool = False,
    enrolled: bool = False,
    deleted: bool = False,
) -> None:
    conn.execute(
        "INSERT INTO users (user_id, eligible, consented, enrolled, deleted_at)"
        " VALUES (%s, %s, %s, %s, CASE WHEN %s THEN now() END)",
        (user_id, eligible, consented, enrolled, deleted),
    )
    conn.commit()


def eligible_in_spark(sandbox: SandboxHandle, *user_ids: str) -> None:
    """Users Spark has, each with a location inside a neighbourhood (by meter point id)."""
    for user_id in user_ids:
        sandbox.add_user(user_id)
        sandbox.add_location(user_id, f"{user_id}-home", meterPointIds=[AREA_1_METER])


def not_eligible_in_spark(sandbox: SandboxHandle, *user_ids: str) -> None:
    for user_id in user_ids:
        sandbox.add_user(user_id)
        sandbox.add_location(user_id, f"{user_id}-home", coordinates=OUTSIDE_AREAS)


def users(conn: Connection) -> dict[str, dict[str, Any]]:
    rows = conn.execute(
        "SELECT user_id, eligible, known_locally, eligible_changed_at, deleted_at FROM users"
    )
    return {row["user_id"]: dict(row) for row in rows}


def eligible_users(conn: Connection) -> set[str]:
    return {row["user_id"] for row in conn.execute("SELECT user_id FROM users WHERE eligible")}


def transitions(conn: Connection) -> set[tuple[str, bool, str, str | None]]:
    """(user, became eligible, reason, event id) of every recorded transition."""
    rows = conn.execute(
        "SELECT user_id, became_eligible, reason, event_id FROM eligibility_transitions"
    )
    return {(r["user_id"], r["became_eligible"], r["reason"], r["event_id"]) for r in rows}


def reconcile_row(conn: Connection, reconcile_id: int) -> dict[str, Any]:
    row = conn.execute(
        "SELECT * FROM eligibility_reconciles WHERE id = %s", (reconcile_id,)
    ).fetchone()
    conn.commit()
    assert row is not None
    return dict(row)


def new_reconcile(
    conn: Connection, *, status: str = "pending", due_at: datetime | None = None, attempts: int = 0
) -> int:
    row = conn.execute(
        "INSERT INTO eligibility_reconciles (trigger, status, due_at, started_at, attempts)"
        " VALUES ('manual', %s, coalesce(%s, now()), CASE WHEN %s <> 'pending' THEN now() END, %s)"
        " RETURNING id",
        (status, due_at, status, attempts),
    ).fetchone()
    conn.commit()
    assert row is not None
    return int(row["id"])


@contextmanager
def spark_client(sandbox: SandboxHandle) -> Iterator[SparkClient]:
    """A client for the sandbox that gives up quickly."""
    with SparkClient(
        sandbox.base_url,
        sandbox.token_url,
        sandbox.client_id,
        sandbox.client_secret,
        max_attempts=2,
        backoff_base=0.01,
        backoff_max=0.05,
    ) as client:
        yield client


@contextmanager
def beat_like(redis_url: str) -> Iterator[Callable[[str], None]]:
    """Send a task by name onto the spark queue, with no arguments, as a beat entry does."""
    producer = Celery("test-beat", broker=redis_url, set_as_current=False)
    try:
        yield lambda name: producer.send_task(name, queue=SPARK_QUEUE)
    finally:
        producer.close()


def reconciles(database_url: str) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute("SELECT * FROM eligibility_reconciles ORDER BY id").fetchall()
