from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from shared.db import Connection
from tests.worker.events import body, eligibility_payload, example, notification
from worker.events import handlers
from worker.events.handlers import AfterCommit, StoredEvent
from worker.events.inbox import ingest, replay_dead_letter, replay_event

RECEIVED = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)


def _ingest(conn: Connection, raw: bytes, source: str = "webhook", delivery_id: str | None = None):
    return ingest(
        conn,
        delivery_id=delivery_id or str(uuid.uuid4()),
        raw=raw,
        received_at=RECEIVED,
        source=source,  # type: ignore[arg-type]
    )


def _count(conn: Connection, table: str) -> int:
    row = conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()  # noqa: S608
    assert row is not None
    return int(row["n"])


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Register a handler for UserEligibilityUpdated that writes a row, as real handlers do."""
    calls: list[str] = []

    def handle(conn: Connection, event: StoredEvent) -> list[AfterCommit]:
        conn.execute("CREATE TABLE IF NOT EXISTS handled (event_id text PRIMARY KEY)")
        conn.execute("INSERT INTO handled VALUES (%s)", (event.event_id,))
        return [lambda: calls.append(event.event_id)]

    monkeypatch.setitem(handlers.HANDLERS, "UserEligibilityUpdated", handle)
    return calls


def test_it_stores_a_new_event_and_runs_its_handler_once(
    db: Connection, recorded: list[str]
) -> None:
    document = notification()
    raw = body(document)

    first = _ingest(db, raw)
    second = _ingest(db, raw)

    assert first.outcome == "new"
    assert first.status == "processed"
    assert second.outcome == "duplicate"
    assert not second.conflict
    assert recorded == [document["eventId"]]
    assert _count(db, "events") == 1
    assert _count(db, "event_deliveries") == 2
    assert _count(db, "handled") == 1
    row = db.execute("SELECT * FROM events").fetchone()
    assert row is not None
    assert bytes(row["raw_body"]) == raw
    assert row["event_created_at"] == datetime(2024, 9, 12, 13, 48, 47, 193685, tzinfo=UTC)
    assert row["payload"] == document["payload"]


def test_it_records_a_redelivered_task_message_once(db: Connection) -> None:
    raw = body(notification())
    _ingest(db, raw, delivery_id="task-1")
    _ingest(db, raw, delivery_id="task-1")

    assert _count(db, "event_deliveries") == 1


def test_it_flags_a_repeat_with_a_different_body_and_keeps_the_first(db: Connection) -> None:
    event_id = str(uuid.uuid4())
    first = notification(event_id, payload=eligibility_payload(added=["a"]))
    changed = notification(event_id, payload=eligibility_payload(added=["b"]))

    _ingest(db, body(first))
    result = _ingest(db, body(changed))

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


def test_it_keeps_types_without_a_handler_as_unhandled(db: Connection) -> None:
    lpc = notification(
        notification_type="LocationLPCRequested",
        payload={"targets": [], "payloadType": "LocationLPC"},
    )
    unknown = notification(
        notification_type="SomethingNew", payload={"payloadType": "SomethingNew", "x": 1}
    )

    assert _ingest(db, body(lpc)).status == "unhandled"
    assert _ingest(db, body(unknown)).status == "unhandled"
    statuses = {r["status"] for r in db.execute("SELECT status FROM events")}
    assert statuses == {"unhandled"}


def test_it_marks_a_failing_handler_failed_and_replays_it_after_a_fix(
    db: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(conn: Connection, event: StoredEvent) -> list[AfterCommit]:
        conn.execute("CREATE TABLE partial (x int)")  # rolled back with the savepoint
        raise KeyError("targets")

    monkeypatch.setitem(handlers.HANDLERS, "UserEligibilityUpdated", broken)
    document = notification()
    result = _ingest(db, body(document))

    assert result.status == "failed"
    row = db.execute("SELECT status, error FROM events").fetchone()
    assert row is not None
    assert row["status"] == "failed"
    assert "KeyError" in row["error"]
    assert db.execute("SELECT to_regclass('partial') AS t").fetchone() == {"t": None}

    monkeypatch.setitem(handlers.HANDLERS, "UserEligibilityUpdated", lambda conn, event: [])
    assert replay_event(db, document["eventId"]) == "processed"
    assert replay_event(db, "no-such-event") is None


def test_it_lets_a_database_error_in_a_handler_propagate_so_the_delivery_is_retried(
    db: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    def outage(conn: Connection, event: StoredEvent) -> list[AfterCommit]:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setitem(handlers.HANDLERS, "UserEligibilityUpdated", outage)
    with pytest.raises(psycopg.OperationalError):
        _ingest(db, body(notification()))
    assert _count(db, "events") == 0
    assert _count(db, "event_deliveries") == 0


def test_it_keeps_a_follow_up_failure_from_failing_the_committed_delivery(
    db: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broker_down() -> None:
        raise ConnectionError("redis is down")

    monkeypatch.setitem(
        handlers.HANDLERS, "UserEligibilityUpdated", lambda conn, event: [broker_down]
    )
    assert _ingest(db, body(notification())).status == "processed"


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
    ],
)
def test_it_turns_a_signed_but_broken_body_into_a_dead_letter(
    db: Connection, raw: bytes, reason: str
) -> None:
    result = _ingest(db, raw)
    again = _ingest(db, raw)

    assert result.outcome == again.outcome == "dead_letter"
    assert reason in (result.reason or "")
    row = db.execute("SELECT raw_body, reason, deliveries FROM dead_letters").fetchone()
    assert row is not None
    assert bytes(row["raw_body"]) == raw
    assert reason in row["reason"]
    assert row["deliveries"] == 2
    assert _count(db, "events") == 0


def test_it_replays_a_dead_letter_that_a_fix_made_readable(db: Connection) -> None:
    broken = body({**notification(), "eventCreatedAtUtc": "2024-09-12T13:48:47"})
    _ingest(db, broken)
    dead_letter_id = db.execute("SELECT id FROM dead_letters").fetchone()["id"]  # type: ignore[index]
    db.commit()

    assert replay_dead_letter(db, dead_letter_id, "replay-1").startswith("still broken")  # type: ignore[union-attr]

    db.execute("UPDATE dead_letters SET raw_body = %s", (body(notification()),))
    db.commit()
    result = replay_dead_letter(db, dead_letter_id, "replay-2")
    assert result is not None
    assert result.startswith("new: event")
    assert _count(db, "events") == 1
    assert replay_dead_letter(db, 999_999, "replay-3") is None


def test_it_tolerates_unknown_fields_and_both_timestamp_forms(db: Connection) -> None:
    document = notification(futureField={"nested": True})
    document["eventCreatedAtUtc"] = "2024-09-12T13:48:47Z"
    document["payload"]["extra"] = 1

    assert _ingest(db, body(document)).outcome == "new"
    row = db.execute("SELECT event_created_at FROM events").fetchone()
    assert row == {"event_created_at": datetime(2024, 9, 12, 13, 48, 47, tzinfo=UTC)}


def test_it_reads_polled_events_in_the_shape_of_get_events(db: Connection) -> None:
    listed = example("openapi-example.events-list-response.json")["events"]
    types = set()
    for number, example_event in enumerate(listed):
        event = {**example_event, "id": f"{example_event['id']}-{number}"}  # examples share an id
        result = _ingest(db, body(event), source="poll")
        assert result.outcome == "new"
        types.add(
            db.execute(
                "SELECT notification_type FROM events WHERE event_id = %s", (event["id"],)
            ).fetchone()["notification_type"]
        )  # type: ignore[index]
    assert types == {
        "LocationLPCRequested",
        "ResourceLPCRequested",
        "UserEligibilityUpdated",
        "PriceCurveCreated",
    }
    sources = {r["source"] for r in db.execute("SELECT source FROM event_deliveries")}
    assert sources == {"poll"}


def test_it_treats_a_webhook_and_a_poll_of_the_same_event_as_one(db: Connection) -> None:
    polled = example("openapi-example.event-by-id-response.pricecurve.json")
    pushed = notification(polled["id"], "PriceCurveCreated", polled["payload"])

    assert _ingest(db, body(pushed)).outcome == "new"
    again = _ingest(db, body(polled), source="poll")

    assert again.outcome == "duplicate"
    assert not again.conflict
    assert _count(db, "events") == 1
