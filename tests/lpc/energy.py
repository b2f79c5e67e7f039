"""LPC events stored the way the worker's handlers store them (the inbox row, then the event
with its targets and caps), without planning their acknowledgement: what the energy report
after an LPC event is built and planned from."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from shared.db import connect, fetch_one
from tests.lpc.support import location_payload, resource_payload
from worker.lpc.payload import Kind, parse_lpc
from worker.lpc.store import store_lpc

NOTIFICATION_TYPES = {"resource": "ResourceLPCRequested", "location": "LocationLPCRequested"}


def store_lpc_event(
    database_url: str,
    kind: Kind,
    *targets: dict[str, Any],
    received_at: datetime,
    event_id: str | None = None,
) -> str:
    """A resource or location LPC event with `targets`, stored at `received_at`; its id."""
    event_id = event_id or str(uuid.uuid4())
    payload = resource_payload(*targets) if kind == "resource" else location_payload(*targets)
    with connect(database_url) as conn, conn.transaction():
        fetch_one(
            conn,
            "insert_event",
            {
                "event_id": event_id,
                "notification_type": NOTIFICATION_TYPES[kind],
                "payload_type": payload["payloadType"],
                "event_created_at": received_at,
                "payload": Jsonb(payload),
                "raw_body": json.dumps(payload).encode(),
                "received_at": received_at,
                "source": "poll",
            },
        )
        store_lpc(
            conn,
            event_id,
            parse_lpc(payload, kind),
            created_at=received_at,
            received_at=received_at,
        )
    return event_id
