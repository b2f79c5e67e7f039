"""`LocationLPCRequested`: a cap per location's meter point (behind the meter) and period."""

from __future__ import annotations

from shared.config import Settings
from shared.db import Connection
from worker.events.handling import FollowUp, StoredEvent
from worker.lpc.handling import handle_acted_on


def handle_location_lpc_requested(
    conn: Connection, event: StoredEvent, settings: Settings
) -> list[FollowUp]:
    return handle_acted_on(conn, event, settings, "location")
