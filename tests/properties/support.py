"""What the property tests that need PostgreSQL share: storing a price curve the way the
worker's ingest does, and one transaction per example, rolled back after it (one database
serves every example of a test; the code under test opens its transactions inside it, as
savepoints, and commits nothing itself)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from psycopg.types.json import Jsonb

from shared.db import Connection, connect, fetch_one
from worker.curves.payload import format_time_span, parse_curve
from worker.curves.store import store_curve


@contextmanager
def rolled_back(database_url: str) -> Iterator[Connection]:
    """A connection in a transaction that is rolled back at the end: the example leaves
    nothing behind (much faster than emptying the tables, which takes seconds per test)."""
    with connect(database_url) as conn:
        conn.execute("SELECT 1")  # opens the transaction the code's own ones nest in
        try:
            yield conn
        finally:
            conn.rollback()


def store_price_curve(
    conn: Connection,
    event_id: str,
    *,
    price_area: str,
    starts: Sequence[datetime],
    resolution: timedelta,
    targets: Sequence[tuple[str, str]],
    created_at: datetime,
    timezone: ZoneInfo,
) -> None:
    """A PriceCurve event stored as the ingest stores it: the inbox row, then the curve."""
    payload: dict[str, Any] = {
        "payloadType": "PriceCurve",
        "priceArea": price_area,
        "targets": [{"resourceId": r, "locationId": loc} for r, loc in targets],
        "priceCurveDelta": {
            "resolution": format_time_span(resolution),
            "energyUnit": "kWh",
            "currency": "NOK",
            "points": [
                {"timestamp": start.astimezone(UTC).isoformat(), "price": -0.5} for start in starts
            ],
        },
    }
    with conn.transaction():
        fetch_one(
            conn,
            "insert_event",
            {
                "event_id": event_id,
                "notification_type": "PriceCurveCreated",
                "payload_type": "PriceCurve",
                "event_created_at": created_at,
                "payload": Jsonb(payload),
                "raw_body": json.dumps(payload).encode(),
                "received_at": created_at,
                "source": "webhook",
            },
        )
        curve = parse_curve(payload, created_at=created_at, timezone=timezone)
        store_curve(conn, event_id, curve, now=created_at)
