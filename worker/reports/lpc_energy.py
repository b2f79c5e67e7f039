"""The energy report after an LPC event (ledger kind `lpc_energy`): one report per resource or
location LPC event, planned by the sweep, due under the price curves' rules (settled and
covered by readings, or SPARK_REPORT_MAX_WAIT after the event's end, or the month's final
sweeps) and sent by the same sender.

Its payloads are in the event's own periods: each target's caps, in that target's resolution
(a two-hour event gives two-hour points), each point at the cap's timestamp as Spark wrote it.
A resource event gets `EnergyUsage` payloads, a location event `LocationEnergyUsage` payloads
with the target's locationId and meterPointId. The sums are one named query
(`lpc_energy_points` in shared/db/reports.sql, which says which readings count for a target);
LPC events name a handful of targets, so the body is assembled here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.db import Connection, fetch_all, fetch_one
from worker.curves.payload import format_time_span
from worker.reports.ledger import ReportRules

PAYLOAD_TYPES = {"resource": "EnergyUsage", "location": "LocationEnergyUsage"}


@dataclass(frozen=True)
class LpcEnergyBody:
    body: str
    payloads: int
    points: int
    kwh: float


def energy_body(conn: Connection, event_id: str, rules: ReportRules) -> LpcEnergyBody | None:
    """The event's energy report from the readings now; None when no target used energy in
    its periods (or it is not a resource or location LPC event)."""
    event = fetch_one(conn, "lpc_ack_event_kind", {"event_id": event_id})
    if event is None or event["kind"] not in PAYLOAD_TYPES:
        return None
    payload_type = PAYLOAD_TYPES[event["kind"]]
    by_target: dict[int, list[Any]] = {}
    for row in fetch_all(conn, "lpc_energy_points", {"event_id": event_id}):
        by_target.setdefault(int(row["target_no"]), []).append(row)
    if not by_target:
        return None
    payloads = [_payload(payload_type, rows, rules) for _, rows in sorted(by_target.items())]
    body = json.dumps(
        {"eventId": event_id, "payloads": payloads}, separators=(",", ":"), ensure_ascii=False
    )
    points = sum(len(rows) for rows in by_target.values())
    kwh = sum(float(row["kwh"]) for rows in by_target.values() for row in rows)
    return LpcEnergyBody(body, len(payloads), points, kwh)


def _payload(payload_type: str, rows: list[Any], rules: ReportRules) -> dict[str, Any]:
    first = rows[0]
    points = [{"timestamp": row["spark_timestamp"], "kiloWattHours": row["kwh"]} for row in rows]
    # payloadType first, as in the price curves' reports.
    payload: dict[str, Any] = {"payloadType": payload_type}
    if payload_type == "EnergyUsage":
        payload["resourceId"] = first["resource_id"]
    payload["locationId"] = first["location_id"]
    payload["meterPointId"] = first["meter_point_id"]
    # LocationEnergyUsage has `points` only; EnergyUsage may be configured to the
    # deprecated `curvePoints` (SPARK_REPORT_POINTS_FIELD), as the price curves' reports.
    payload["points" if payload_type != "EnergyUsage" else rules.points_field] = points
    payload["resolution"] = format_time_span(first["resolution"])
    return payload


def build_lpc_energy(
    conn: Connection, report_id: int, event_id: str, rules: ReportRules, *, now: datetime
) -> LpcEnergyBody | None:
    """Build the claimed report `report_id` of LPC event `event_id` in the caller's
    transaction; None when there is nothing to report (the caller marks it empty)."""
    built = energy_body(conn, event_id, rules)
    if built is None:
        return None
    written = fetch_one(
        conn,
        "write_lpc_energy_report",
        {
            "id": report_id,
            "body": built.body,
            "now": now,
            "payloads": built.payloads,
            "points": built.points,
            "kwh": built.kwh,
        },
    )
    if written is None:
        raise RuntimeError(f"report {report_id} of LPC event {event_id} is not being sent")
    return built
