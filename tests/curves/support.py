"""What the price-curve tests share: curves built like Spark builds them, stored as the inbox
stores them, and views of what is in force."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall_time
from typing import Any
from zoneinfo import ZoneInfo

from psycopg.types.json import Jsonb

from shared.config import load_settings
from shared.db import Connection, fetch_all, fetch_one
from shared.timeutil import format_spark_datetime
from tests.worker.events import body
from worker.curves.handler import handle_price_curve_created
from worker.events.handling import FollowUp, StoredEvent

OSLO = ZoneInfo("Europe/Oslo")
# The defaults, whatever the environment: SPARK_TIMEZONE is Europe/Oslo.
SETTINGS = load_settings({})

Target = tuple[str, str]


def local_hours(day: date, timezone: ZoneInfo = OSLO) -> list[datetime]:
    """The UTC start of every hour of a local day: 24, or 23 and 25 on the DST days."""
    start = datetime.combine(day, wall_time(0), tzinfo=timezone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), wall_time(0), tzinfo=timezone)
    hours = []
    while start < end.astimezone(UTC):
        hours.append(start)
        start += timedelta(hours=1)
    return hours


def points(starts: Iterable[datetime], prices: Iterable[float]) -> list[dict[str, Any]]:
    return [
        {"price": price, "timestamp": format_spark_datetime(start)}
        for start, price in zip(starts, prices, strict=True)
    ]


def targets(count: int, prefix: str = "r") -> list[Target]:
    return [(f"{prefix}-{index:06d}", f"loc-{index:06d}") for index in range(count)]


def curve_payload(
    curve_points: list[dict[str, Any]],
    curve_targets: list[Target],
    *,
    area: str = "NO1",
    unit: str = "kWh",
    currency: str = "NOK",
    resolution: str = "01:00:00",
) -> dict[str, Any]:
    return {
        "targets": [{"resourceId": r, "locationId": loc} for r, loc in curve_targets],
        "priceCurveDelta": {
            "points": curve_points,
            "energyUnit": unit,
            "currency": currency,
            "resolution": resolution,
        },
        "priceArea": area,
        "payloadType": "PriceCurve",
    }


def curve_event(
    payload: dict[str, Any], created_at: datetime, event_id: str | None = None
) -> dict[str, Any]:
    """A PriceCurveCreated webhook notification, as Spark sends it."""
    return {
        "notificationId": str(uuid.uuid4()),
        "eventId": event_id or str(uuid.uuid4()),
        "eventCreatedAtUtc": format_spark_datetime(created_at),
        "notificationSentUtc": format_spark_datetime(created_at + timedelta(seconds=2)),
        "notificationType": "PriceCurveCreated",
        "payload": payload,
    }


def store(conn: Connection, document: dict[str, Any]) -> list[FollowUp]:
    """Store the event as the inbox does and run the curve handler in its transaction,
    committed; the follow-ups are returned, not run (they would enqueue on the broker)."""
    created_at = datetime.fromisoformat(document["eventCreatedAtUtc"])
    with conn.transaction():
        fetch_one(
            conn,
            "insert_event",
            {
                "event_id": document["eventId"],
                "notification_type": document["notificationType"],
                "payload_type": "PriceCurve",
                "event_created_at": created_at,
                "payload": Jsonb(document["payload"]),
                "raw_body": body(document),
                "received_at": datetime.now(UTC),
                "source": "webhook",
            },
        )
        event = StoredEvent(
            event_id=document["eventId"],
            notification_type=document["notificationType"],
            payload_type="PriceCurve",
            created_at=created_at,
            payload=document["payload"],
        )
        return handle_price_curve_created(conn, event, SETTINGS)


def effective(conn: Connection, event_id: str) -> dict[Target, dict[datetime, float]]:
    """Through the reports' query: target → period start → delta still in force."""
    rows = fetch_all(conn, "effective_periods_for_event", {"event_id": event_id})
    conn.commit()
    found: dict[Target, dict[datetime, float]] = {}
    for row in rows:
        found.setdefault((row["resource_id"], row["location_id"]), {})[row["period_start"]] = row[
            "price"
        ]
    return found


def decisions(conn: Connection, event_id: str) -> dict[Target, dict[str, Any]]:
    rows = conn.execute(
        "SELECT * FROM curve_dispatches WHERE event_id = %s", (event_id,)
    ).fetchall()
    conn.commit()
    return {(row["resource_id"], row["location_id"]): dict(row) for row in rows}
