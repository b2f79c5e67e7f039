from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import redis
from celery import Celery

from devstack.servers import free_port
from shared.config import Settings, load_settings
from shared.db import Connection
from shared.queues import SPARK_QUEUE
from tests.worker.events import body, eligibility_payload, example, notification
from worker.celery_app import create_app
from worker.events import handlers
from worker.events.handling import FollowUp, StoredEvent, TaskSender
from worker.events.inbox import IngestResult, ingest, replay_dead_letter, replay_event

RECEIVED = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
FOLLOW_UP_TASK = "tests.recorded"


@pytest.fixture
def inbox(db: Connection, worker_app: Celery) -> Inbox:
    return Inbox(db, worker_app.conf.spark_settings, worker_app)


class Inbox:
    """The inbox on this test's database, sending follow-ups to this test's Redis."""

    def __init__(self, conn: Connection, settings: Settings, sender: TaskSender) -> None:
        self.conn, self.settings, self.sender = conn, settings, sender

    def ingest(
        self, raw: bytes, source: str = "webhook", delivery_id: str | None = None
    ) -> IngestResult:
        return ingest(
            self.conn,
            delivery_id=delivery_id or str(uuid.uuid4()),
            raw=raw,
            received_at=RECEIVED,
            source=source,  # type: ignore[arg-type]
            settings=self.settings,
            sender=self.sender,
        )

    def replay_event(self, event_id: str) -> str | None:
        return replay_event(self.conn, event_id, settings=self.settings, sender=self.sender)

    def replay_dead_letter(self, dead_letter_id: int, delivery_id: str) -> str | None:
        return replay_dead_letter(
            self.conn, dead_letter_id, delivery_id, settings=self.settings, sender=self.sender
        )


def queued(redis_url: str, queue: str) -> list[tuple[str, dict[str, Any]]]:
    """(task name, kwargs) of every message waiting in `queue`, oldest first."""
    client = redis.Redis.from_url(redis_url)
    try:
        raws = client.lrange(queue, 0, -1)
    finally:
        client.close()
    messages = [json.loads(raw) for raw in reversed(raws)]
    return [
        (message["headers"]["task"], json.loads(base64.b64decode(message["body"]))[1])
        for message in messages
    ]


def _count(conn: Connection, table: str) -> int:
    row = conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()  # noqa: S608
    assert row is not None
    return int(row["n"])


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register a handler for UserEligibilityUpdated that writes a row, as real handlers do,
    and returns one follow-up task."""

    def handle(conn: Connection, event: StoredEvent, settings: Settings) -> list[FollowUp]:
        conn.execute("CREATE TABLE IF NOT EXISTS handled (event_id text PRIMARY KEY)")
        conn.execute("INSERT INTO handled VALUES (%s)", (event.event_id,))
        return [FollowUp(FOLLOW_UP_TASK, SPARK_QUEUE, {"event_id": event.event_id})]

    monkeypatch.setitem(handlers.HANDLERS, "UserEligibilityUpdated", handle)


@pytest.mark.usefixtures("recorded")
def test_it_stores_a_new_event_runs_its_handler_once_and_sends_its_follow_up(
    db: Connection, inbox: Inbox, redis_url: str
) -> None:
    document = notification()
    raw = body(document)

    first = inbox.ingest(raw)
    second = inbox.ingest(raw)

    assert first.outcome == "new"
    assert first.status == "processed"
    assert second.outcome == "duplicate"
    assert not second.conflict
    assert queued(redis_url, SPARK_QUEUE) == [(FOLLOW_UP_TASK, {"event_id": document["eventId"]})]
    assert _count(db, "events") == 1
    assert _count(db, "event_deliveries") == 2
    assert _count(db, "handled") == 1
    row = db.execute("SELECT * FROM events").fetchone()
    assert row is not None
    assert bytes(row["raw_body"]) == raw
    assert row["event_created_at"] == datetime(2024, 9, 12, 13, 48, 47, 193685, tzinfo=UTC)
    assert row["payload"] == document["payload"]


def test_it_records_a_redelivered_task_message_once(db: Connection, inbox: Inbox) -> None:
    raw = body(notification())
    inbox.ingest(raw, delivery_id="task-1")
    inbox.ingest(raw, delivery_id="task-1")

    assert _count(db, "event_deliveries") == 1


def test_it_flags_a_repeat_with_a_different_body_and_keeps_the_first(
    db: Connection, inbox: Inbox
) -> None:
    event_id = str(uuid.uuid4())
    first = notification(event_id, payload=eligibility_payload(added=["a"]))
    changed = notification(event_id, payload=eligibility_payload(added=["b"]))

    inbox.ingest(body(first))
    result = inbox.ingest(body(changed))

    assert result.outcome == "duplicate"
    assert result.conflict
    row = db.execute("SELECT payload, conflicts FROM events").fetchone()
    assert row is not None
    assert row["payload"]["addedUsers"] == ["a"]
    assert row["conflicts"] == 1
    flags = [
        r["conflict"]
        for r in db.execute("SELECT conflict FROM event_deliveries ORDER BY received_at, stored_at")
    ]
    assert sorted(flags) == [False, True]


def test_it_keeps_types_without_a_handler_as_unhandled(db: Connection, inbox: Inbox) -> None:
    unknown = notification(
        notification_type="SomethingNew", payload={"payloadType": "SomethingNew", "x": 1}
    )

    assert inbox.ingest(body(unknown)).status == "unhandled"
    statuses = {r["status"] for r in db.execute("SELECT status FROM events")}
    assert statuses == {"unhandled"}


def test_it_marks_a_failing_handler_failed_and_replays_it_after_a_fix(
    db: Connection, inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(conn: Connection, event: StoredEvent, settings: Settings) -> list[FollowUp]:
        conn.execute("CREATE TABLE partial (x int)")  # rolled back with the savepoint
        raise KeyError("targets")

    monkeypatch.setitem(handlers.HANDLERS, "UserEligibilityUpdated", broken)
    document = notification()
    result = inbox.ingest(body(document))

    assert result.status == "failed"
    row = db.execute("SELECT status, error FROM events").fetchone()
    assert row is not None
    assert row["status"] == "failed"
    assert "KeyError" in row["error"]
    assert db.execute("SELECT to_regclass('partial') AS t").fetchone() == {"t": None}

    monkeypatch.setitem(handlers.HANDLERS, "UserEligibilityUpdated", lambda *_: [])
    assert inbox.replay_event(document["eventId"]) == "processed"
    assert inbox.replay_event("no-such-event") is None


def test_it_lets_a_database_error_in_a_handler_propagate_so_the_delivery_is_retried(
    db: Connection, inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    def outage(conn: Connection, event: StoredEvent, settings: Settings) -> list[FollowUp]:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setitem(handlers.HANDLERS, "UserEligibilityUpdated", outage)
    with pytest.raises(psycopg.OperationalError):
        inbox.ingest(body(notification()))
    assert _count(db, "events") == 0
    assert _count(db, "event_deliveries") == 0


@pytest.mark.usefixtures("recorded")
def test_it_keeps_a_follow_up_failure_from_failing_the_committed_delivery(
    db: Connection, database_url: str
) -> None:
    # A Redis that does not answer: nothing listens on the port.
    env = {"DATABASE_URL": database_url, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    broker_down = create_app(load_settings(env), current=False)
    try:
        result = Inbox(db, broker_down.conf.spark_settings, broker_down).ingest(
            body(notification())
        )
    finally:
        broker_down.close()

    assert result.status == "processed"
    assert _count(db, "handled") == 1


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe not utf-8", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
        (b'{"a":' * 40 + b"1" + b"}" * 40, "nested deeper"),
        (b"[1, 2, 3]", "not an event envelope: a JSON list"),
        (b'{"eventId": "x"}', "not an event envelope"),
        (body({**notification(), "eventCreatedAtUtc": "yesterday"}), "eventCreatedAtUtc"),
        (body({**notification(), "eventCreatedAtUtc": "2024-09-12T13:48:47"}), "UTC offset"),
        # Found by the fuzzing: a blank eventId (every one would be the same event), and valid
        # JSON that PostgreSQL's text and jsonb cannot hold.
        (body({**notification(), "eventId": ""}), "must not be blank"),
        (body({**notification(), "eventId": " \t"}), "must not be blank"),
        (body({**notification(), "eventCreatedAtUtc": "0001-01-01T00:00:00+01:00"}), "range"),
        (body({**notification(), "eventId": "a\x00b"}), "NUL or a lone surrogate"),
        (body({**notification(), "payload": {"x": ["\ud800"]}}), "NUL or a lone surrogate"),
        (body({**notification(), "payload": {"\x00": 1}}), "NUL or a lone surrogate"),
    ],
)
def test_it_turns_a_signed_but_broken_body_into_a_dead_letter(
    db: Connection, inbox: Inbox, raw: bytes, reason: str
) -> None:
    result = inbox.ingest(raw)
    again = inbox.ingest(raw)

    assert result.outcome == again.outcome == "dead_letter"
    assert reason in (result.reason or "")
    row = db.execute("SELECT raw_body, reason, deliveries FROM dead_letters").fetchone()
    assert row is not None
    assert bytes(row["raw_body"]) == raw
    assert reason in row["reason"]
    assert row["deliveries"] == 2
    assert _count(db, "events") == 0


def test_it_replays_a_dead_letter_that_a_fix_made_readable(db: Connection, inbox: Inbox) -> None:
    broken = body({**notification(), "eventCreatedAtUtc": "2024-09-12T13:48:47"})
    inbox.ingest(broken)
    dead_letter_id = db.execute("SELECT id FROM dead_letters").fetchone()["id"]  # type: ignore[index]
    db.commit()

    assert inbox.replay_dead_letter(dead_letter_id, "replay-1").startswith("still broken")  # type: ignore[union-attr]

    db.execute("UPDATE dead_letters SET raw_body = %s", (body(notification()),))
    db.commit()
    result = inbox.replay_dead_letter(dead_letter_id, "replay-2")
    assert result is not None
    assert result.startswith("new: event")
    assert _count(db, "events") == 1
    assert inbox.replay_dead_letter(999_999, "replay-3") is None


def test_it_tolerates_unknown_fields_and_both_timestamp_forms(db: Connection, inbox: Inbox) -> None:
    document = notification(futureField={"nested": True})
    document["eventCreatedAtUtc"] = "2024-09-12T13:48:47Z"
    document["payload"]["extra"] = 1

    assert inbox.ingest(body(document)).outcome == "new"
    row = db.execute("SELECT event_created_at FROM events").fetchone()
    assert row == {"event_created_at": datetime(2024, 9, 12, 13, 48, 47, tzinfo=UTC)}


def test_it_reads_polled_events_in_the_shape_of_get_events(db: Connection, inbox: Inbox) -> None:
    listed = example("openapi-example.events-list-response.json")["events"]
    types = set()
    for number, example_event in enumerate(listed):
        event = {**example_event, "id": f"{example_event['id']}-{number}"}  # examples share an id
        result = inbox.ingest(body(event), source="poll")
        assert result.outcome == "new"
        row = db.execute(
            "SELECT notification_type FROM events WHERE event_id = %s", (event["id"],)
        ).fetchone()
        assert row is not None
        types.add(row["notification_type"])
    assert types == {
        "LocationLPCRequested",
        "ResourceLPCRequested",
        "UserEligibilityUpdated",
        "PriceCurveCreated",
    }
    sources = {r["source"] for r in db.execute("SELECT source FROM event_deliveries")}
    assert sources == {"poll"}


def test_it_treats_a_webhook_and_a_poll_of_the_same_event_as_one(
    db: Connection, inbox: Inbox
) -> None:
    polled = example("openapi-example.event-by-id-response.pricecurve.json")
    pushed = notification(polled["id"], "PriceCurveCreated", polled["payload"])

    assert inbox.ingest(body(pushed)).outcome == "new"
    again = inbox.ingest(body(polled), source="poll")

    assert again.outcome == "duplicate"
    assert not again.conflict
    assert _count(db, "events") == 1
