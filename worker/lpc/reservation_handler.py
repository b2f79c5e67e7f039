"""`LPCReservationCreated`: stored and shown with its targets, not acted on.

Spark documents nothing about it beyond its schema (location targets with points), so we
neither tell the control system nor report on it; `lpc show` lets an operator see it.
"""

from __future__ import annotations

from shared.config import Settings
from shared.db import Connection
from worker.events.handling import FollowUp, StoredEvent
from worker.lpc.handling import store_lpc_event


def handle_lpc_reservation_created(
    conn: Connection, event: StoredEvent, settings: Settings
) -> list[FollowUp]:
    store_lpc_event(conn, event, "reservation")
    return []
