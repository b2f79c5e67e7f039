"""Storing an LPC event inside its event's transaction: the event, its targets, their caps."""

from __future__ import annotations

from datetime import datetime

from shared.db import Connection, execute, fetch_one
from worker.lpc.payload import LpcEvent


def store_lpc(
    conn: Connection,
    event_id: str,
    lpc: LpcEvent,
    *,
    created_at: datetime | None,
    received_at: datetime,
) -> bool:
    """False when the event was stored before (its handler ran again for a replay)."""
    inserted = fetch_one(
        conn,
        "insert_lpc_event",
        {
            "event_id": event_id,
            "kind": lpc.kind,
            "event_created_at": created_at,
            "received_at": received_at,
            "first_period_start": lpc.first_period_start,
            "last_period_end": lpc.last_period_end,
            "target_count": len(lpc.targets),
        },
    )
    if inserted is None:
        return False
    numbered = list(enumerate(lpc.targets, start=1))
    execute(
        conn,
        "insert_lpc_targets",
        {
            "event_id": event_id,
            "target_nos": [no for no, _ in numbered],
            "resource_ids": [t.resource_id for _, t in numbered],
            "location_ids": [t.location_id for _, t in numbered],
            "meter_point_ids": [t.meter_point_id for _, t in numbered],
            "resolutions": [t.resolution for _, t in numbered],
        },
    )
    caps = [(no, cap) for no, target in numbered for cap in target.caps]
    execute(
        conn,
        "insert_lpc_caps",
        {
            "event_id": event_id,
            "target_nos": [no for no, _ in caps],
            "starts": [cap.start for _, cap in caps],
            "ends": [cap.end for _, cap in caps],
            "timestamps": [cap.spark_timestamp for _, cap in caps],
            "max_kws": [cap.max_kw for _, cap in caps],
        },
    )
    return True
