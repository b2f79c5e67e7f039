from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from celery import Celery

from shared.config import Settings
from shared.db import Connection
from tests.worker.cli import run, run_json
from tests.worker.events import body, notification
from worker.events import handlers
from worker.events.handling import FollowUp, StoredEvent
from worker.events.inbox import Source, ingest


def _store(
    db: Connection, app: Celery, document: dict[str, Any], source: Source = "webhook"
) -> None:
    ingest(
        db,
        delivery_id=str(uuid.uuid4()),
        raw=body(document),
        received_at=datetime.now(UTC),
        source=source,
        settings=app.conf.spark_settings,
        sender=app,
    )


def test_it_lists_events_with_their_deliveries_and_filters(
    database_url: str, db: Connection, worker_app: Celery
) -> None:
    eligibility = notification()
    lpc = notification(
        notification_type="SomethingNew",
        payload={"payloadType": "SomethingNew"},
    )
    _store(db, worker_app, eligibility)
    _store(db, worker_app, eligibility)
    _store(db, worker_app, lpc)

    listed = run_json(database_url, "events", "list")
    by_id = {item["eventId"]: item for item in listed}
    assert set(by_id) == {eligibility["eventId"], lpc["eventId"]}
    assert by_id[eligibility["eventId"]]["deliveries"] == 2
    assert by_id[eligibility["eventId"]]["notificationType"] == "UserEligibilityUpdated"
    assert by_id[eligibility["eventId"]]["source"] == "webhook"
    assert by_id[lpc["eventId"]]["status"] == "unhandled"
    assert (
        by_id[eligibility["eventId"]]["firstReceivedAt"]
        <= by_id[eligibility["eventId"]]["lastReceivedAt"]
    )

    only_lpc = run_json(database_url, "events", "list", "--type", "SomethingNew")
    assert [item["eventId"] for item in only_lpc] == [lpc["eventId"]]
    assert run_json(database_url, "events", "list", "--status", "failed") == []

    text = run(database_url, "events", "list")
    assert eligibility["eventId"] in text.output


def test_it_shows_one_event_with_payload_and_deliveries(
    database_url: str, db: Connection, worker_app: Celery
) -> None:
    document = notification()
    _store(db, worker_app, document)

    shown = run_json(database_url, "events", "show", document["eventId"])

    assert shown["payload"] == document["payload"]
    assert shown["rawBody"] == body(document).decode()
    assert [d["notificationId"] for d in shown["deliveries"]] == [document["notificationId"]]
    missing = run(database_url, "events", "show", "nope")
    assert missing.exit_code == 1
    assert "no event nope" in missing.output


def test_it_replays_an_unhandled_event_once_a_handler_exists(
    database_url: str, db: Connection, worker_app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = notification(
        notification_type="SomethingNew",
        payload={"payloadType": "SomethingNew"},
    )
    _store(db, worker_app, document)
    db.commit()
    assert run_json(database_url, "events", "show", document["eventId"])["status"] == "unhandled"

    seen: list[str] = []

    def handle(conn: Connection, event: StoredEvent, settings: Settings) -> list[FollowUp]:
        seen.append(event.event_id)
        return []

    monkeypatch.setitem(handlers.HANDLERS, "SomethingNew", handle)
    result = run(database_url, "events", "replay", document["eventId"])

    assert result.exit_code == 0, result.output
    assert f"{document['eventId']}: processed" in result.output
    assert seen == [document["eventId"]]
    assert run_json(database_url, "events", "show", document["eventId"])["status"] == "processed"
    assert run(database_url, "events", "replay", "nope").exit_code == 1
