"""`spark-partner status` names the LPC events Spark has no acknowledgement of."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from celery import Celery

from shared.db import Connection
from tests.lpc.support import (
    location_target,
    reservation_payload,
    resource_payload,
    resource_target,
)
from tests.ops.support import checks, status
from tests.worker.events import body, notification
from worker.events.inbox import ingest


def test_it_warns_of_a_fresh_lpc_event_and_acts_on_one_unacknowledged_for_15_minutes(
    database_url: str, redis_url: str, db: Connection, worker_app: Celery
) -> None:
    _, report = status(database_url, redis_url)
    assert checks(report)["LPC events unacknowledged"]["level"] == "ok"

    event = notification(
        notification_type="ResourceLPCRequested", payload=resource_payload(resource_target("r"))
    )
    reservation = notification(
        notification_type="LPCReservationCreated",
        payload=reservation_payload(location_target("l")),
    )
    for document in (event, reservation):
        ingest(
            db,
            delivery_id=str(uuid.uuid4()),
            raw=body(document),
            received_at=datetime.now(UTC),
            source="webhook",
            settings=worker_app.conf.spark_settings,
            sender=worker_app,
        )
    db.commit()

    line = checks(status(database_url, redis_url)[1])["LPC events unacknowledged"]
    assert (line["level"], line["events"]) == ("warn", 1)

    db.execute(
        "UPDATE lpc_events SET received_at = received_at - interval '16 minutes'"
        " WHERE event_id = %s",
        (event["eventId"],),
    )
    db.commit()
    line = checks(status(database_url, redis_url)[1])["LPC events unacknowledged"]
    assert line["level"] == "act"
    assert line["oldestAgeSeconds"] >= 16 * 60
