"""ResourceLPCRequested, LocationLPCRequested and LPCReservationCreated: stored per target and
period with the event's own resolution, shown by `spark-partner lpc list|show`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from celery import Celery

from shared.db import Connection
from tests.fixtures.sandbox import SandboxHandle, spark_env
from tests.lpc.support import (
    location_payload,
    location_target,
    reservation_payload,
    resource_payload,
    resource_target,
)
from tests.worker.cli import run, run_json
from tests.worker.events import body, notification
from worker.events.inbox import ingest


def _ingest(db: Connection, app: Celery, document: dict[str, Any]) -> str | None:
    result = ingest(
        db,
        delivery_id=str(uuid.uuid4()),
        raw=body(document),
        received_at=datetime.now(UTC),
        source="webhook",
        settings=app.conf.spark_settings,
        sender=app,
    )
    db.commit()
    return result.status


def test_it_stores_a_resource_event_per_target_and_period_in_its_own_resolution(
    database_url: str, db: Connection, worker_app: Celery
) -> None:
    document = notification(
        notification_type="ResourceLPCRequested",
        payload=resource_payload(
            resource_target("r-1"),
            resource_target(
                "r-2",
                location_id="loc-2",
                resolution="00:15:00",
                caps=(("2026-03-04T10:15:00+00:00", 1), ("2026-03-04T10:00:00+00:00", 0)),
            ),
        ),
    )

    assert _ingest(db, worker_app, document) == "processed"

    shown = run_json(database_url, "lpc", "show", document["eventId"])
    assert shown["kind"] == "resource"
    assert shown["actedOn"] is True
    assert shown["firstPeriodStart"] == "2026-03-04T10:00:00+00:00"
    assert shown["lastPeriodEnd"] == "2026-03-04T14:00:00+00:00"
    first, second = shown["targetList"]
    assert (first["resourceId"], first["locationId"], first["resolution"]) == (
        "r-1",
        "loc-1",
        "02:00:00",
    )
    assert [(c["start"], c["end"], c["maxPowerInKiloWatts"]) for c in first["caps"]] == [
        ("2026-03-04T10:00:00+00:00", "2026-03-04T12:00:00+00:00", 3.5),
        ("2026-03-04T12:00:00+00:00", "2026-03-04T14:00:00+00:00", 2.0),
    ]  # fmt: skip
    assert second["resolution"] == "00:15:00"
    assert [(c["start"], c["end"], c["maxPowerInKiloWatts"]) for c in second["caps"]] == [
        ("2026-03-04T10:00:00+00:00", "2026-03-04T10:15:00+00:00", 0.0),
        ("2026-03-04T10:15:00+00:00", "2026-03-04T10:30:00+00:00", 1.0),
    ]  # fmt: skip
    assert second["caps"][0]["timestamp"] == "2026-03-04T10:00:00+00:00"


def test_it_stores_a_location_event_and_a_reservation_which_is_not_acted_on(
    database_url: str, db: Connection, worker_app: Celery
) -> None:
    location = notification(
        notification_type="LocationLPCRequested",
        payload=location_payload(location_target("loc-9", meter_point_id="707057500000000009")),
    )
    reservation = notification(
        notification_type="LPCReservationCreated",
        payload=reservation_payload(location_target("loc-8")),
    )

    assert _ingest(db, worker_app, location) == "processed"
    assert _ingest(db, worker_app, reservation) == "processed"

    listed = {item["eventId"]: item for item in run_json(database_url, "lpc", "list")}
    assert listed[location["eventId"]]["kind"] == "location"
    assert listed[reservation["eventId"]]["kind"] == "reservation"
    assert listed[reservation["eventId"]]["actedOn"] is False
    [target] = run_json(database_url, "lpc", "show", location["eventId"])["targetList"]
    assert target["resourceId"] is None
    assert target["meterPointId"] == "707057500000000009"
    assert [c["maxPowerInKiloWatts"] for c in target["caps"]] == [11.0]
    text = run(database_url, "lpc", "show", reservation["eventId"]).output
    assert "stored only" in text
    assert "loc-8" in text


def test_it_stores_a_twice_named_target_once_and_a_redelivery_not_again(
    database_url: str, db: Connection, worker_app: Celery
) -> None:
    document = notification(
        notification_type="ResourceLPCRequested",
        payload=resource_payload(resource_target("r-1"), resource_target("r-1")),
    )

    assert _ingest(db, worker_app, document) == "processed"
    _ingest(db, worker_app, {**document, "notificationId": str(uuid.uuid4())})

    shown = run_json(database_url, "lpc", "show", document["eventId"])
    assert shown["targets"] == 1
    assert len(shown["targetList"]) == 1
    assert len(run_json(database_url, "lpc", "list")) == 1


def test_it_keeps_a_payload_with_overlapping_or_bad_caps_as_failed_with_the_reason(
    database_url: str, db: Connection, worker_app: Celery
) -> None:
    overlapping = notification(
        notification_type="ResourceLPCRequested",
        payload=resource_payload(
            resource_target(
                "r-1", caps=(("2026-03-04T10:00:00+00:00", 1), ("2026-03-04T11:00:00+00:00", 1))
            )
        ),
    )
    negative = notification(
        notification_type="LocationLPCRequested",
        payload=location_payload(
            location_target("loc-1", caps=(("2026-03-04T10:00:00+00:00", -1),))
        ),
    )
    no_mpid = notification(
        notification_type="LocationLPCRequested",
        payload=location_payload({"locationId": "loc-1", "resolution": "01:00:00", "points": []}),
    )

    for document in (overlapping, negative, no_mpid):
        assert _ingest(db, worker_app, document) == "failed"

    shown = [
        run_json(database_url, "events", "show", d["eventId"])
        for d in (overlapping, negative, no_mpid)
    ]
    errors = {item["eventId"]: item["error"] for item in shown}
    assert "overlap with resolution 02:00:00" in errors[overlapping["eventId"]]
    assert "maxPowerInKiloWatts must be finite and >= 0" in errors[negative["eventId"]]
    assert "meterPointId must be a non-empty string" in errors[no_mpid["eventId"]]
    assert run_json(database_url, "lpc", "list") == []
    missing = run(database_url, "lpc", "show", "nope")
    assert missing.exit_code == 1
    assert "no LPC event nope" in missing.output


def test_it_subscribes_a_new_webhook_to_every_type_with_a_handler(
    database_url: str, sandbox: SandboxHandle
) -> None:
    result = run(database_url, "webhooks", "register", "--url", "https://partner.example.com/w",
                 SPARK_WEBHOOK_SECRETS="current-one", **spark_env(sandbox))  # fmt: skip

    assert result.exit_code == 0, result.output
    [webhook] = sandbox.state.list_webhooks()
    assert set(webhook.notification_types) == {
        "PriceCurveCreated",
        "UserEligibilityUpdated",
        "ResourceLPCRequested",
        "LocationLPCRequested",
        "LPCReservationCreated",
    }


def test_it_shows_which_targets_our_registry_knows(
    database_url: str, db: Connection, worker_app: Celery
) -> None:
    db.execute("INSERT INTO users (user_id) VALUES ('u-1')")
    db.execute("INSERT INTO users (user_id, deleted_at) VALUES ('gone', now())")
    db.execute(
        "INSERT INTO locations (location_id, user_id, meter_point_ids) VALUES"
        " ('loc-1', 'u-1', '{707057500012345678}'), ('loc-2', 'gone', '{707057500000000002}')"
    )
    db.execute(
        "INSERT INTO resources (resource_id, user_id, location_id, resource_type) VALUES"
        " ('r-1', 'u-1', 'loc-1', 'Charger'), ('r-2', 'gone', 'loc-2', 'Charger')"
    )
    db.commit()
    resources = notification(
        notification_type="ResourceLPCRequested",
        payload=resource_payload(
            resource_target("r-1"),
            resource_target("r-1", location_id="loc-elsewhere"),
            resource_target("r-2", location_id="loc-2"),
            resource_target("r-unknown"),
        ),
    )
    locations = notification(
        notification_type="LocationLPCRequested",
        payload=location_payload(
            location_target("loc-1"),
            location_target("loc-1", meter_point_id="707057500099999999"),
        ),
    )
    _ingest(db, worker_app, resources)
    _ingest(db, worker_app, locations)

    shown = run_json(database_url, "lpc", "show", resources["eventId"])["targetList"]
    assert [t["knownToRegistry"] for t in shown] == [True, False, False, False]
    shown = run_json(database_url, "lpc", "show", locations["eventId"])["targetList"]
    assert [t["knownToRegistry"] for t in shown] == [True, False]
    text = run(database_url, "lpc", "show", resources["eventId"]).output
    assert text.count("unknown to our registry") == 3
