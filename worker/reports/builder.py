"""Building a curve's report, set-wise: two statements whatever the number of targets.

1. `report_shares`: the pro rata split of each distinct reading span into the curve's
   periods (a few dozen rows for meter values; a small table for charging sessions).
2. `build_report`: every target's readings, split and summed per period, as EnergyUsage
   payloads at the curve's own timestamps, numbered into parts of SPARK_REPORT_MAX_PAYLOADS,
   written as payload rows and report bodies in the same statement.

Supersession has one implementation, `effective_periods_for_event` in shared/db/curves.sql.
A curve that no newer curve overlaps (`curves_around`, also theirs) has every period in force
and is built without it; otherwise that query is put in the place `build_report` keeps for
it, so that a newer curve's periods are reported by the newer curve only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import LiteralString

from shared.db import Connection, execute, fetch_all, fetch_one
from shared.db.queries import QUERIES
from worker.curves.payload import format_time_span
from worker.reports.ledger import ReportRules

# In build_report: the stand-in for effective_periods_for_event when nothing is superseded.
EFFECTIVE_PLACEHOLDER: LiteralString = (
    "SELECT NULL::text AS resource_id, NULL::text AS location_id, "
    "NULL::timestamptz AS period_start WHERE false"
)
# Sorting and hashing 2.4 million rows (100,000 targets x 24 periods) in memory rather than
# in temporary files; for this transaction only.
BUILD_WORK_MEM = "256MB"


@dataclass(frozen=True)
class BuiltPart:
    report_id: int
    part: int
    parts: int
    payloads: int
    points: int
    kwh: float


def build_sql(superseded: bool) -> LiteralString:
    sql = QUERIES["build_report"]
    if not superseded:
        return sql
    if sql.count(EFFECTIVE_PLACEHOLDER) != 1:
        raise RuntimeError("build_report lost its place for effective_periods_for_event")
    effective = QUERIES["effective_periods_for_event"].rstrip().removesuffix(";")
    return sql.replace(EFFECTIVE_PLACEHOLDER, effective)


def point_prefix(spark_timestamp: str) -> str:
    """A point up to its kWh: the timestamp exactly as the curve gave it."""
    return '{"timestamp":' + json.dumps(spark_timestamp) + ',"kiloWattHours":'


def has_newer_curve(conn: Connection, event_id: str) -> bool:
    return any(row["newer"] for row in fetch_all(conn, "curves_around", {"event_id": event_id}))


def build_report(
    conn: Connection, report_id: int, event_id: str, rules: ReportRules, *, now: datetime
) -> list[BuiltPart]:
    """Build the report(s) of `event_id` into the claimed row `report_id` (part 1) and new
    rows for further parts. Runs in the caller's transaction. No parts: nothing to report."""
    window = fetch_one(conn, "report_window", {"event_id": event_id})
    if window is None:
        return []
    span = {
        "event_id": event_id,
        "earliest_start": window["earliest_start"],
        "first_period_start": window["first_period_start"],
        "last_period_end": window["last_period_end"],
    }
    shares = fetch_all(conn, "report_shares", span)
    if not shares:
        return []
    superseded = has_newer_curve(conn, event_id)
    execute(conn, "set_local_setting", {"name": "work_mem", "value": BUILD_WORK_MEM})
    if superseded:
        # The planner takes the supersession query for a handful of rows: a nested loop over
        # its 2.4 million would take hours.
        execute(conn, "set_local_setting", {"name": "enable_nestloop", "value": "off"})
    params = {
        **span,
        "report_id": report_id,
        "now": now,
        "superseded": superseded,
        "span_starts": [row["start_at"] for row in shares],
        "span_ends": [row["end_at"] for row in shares],
        "slots": [row["slot"] for row in shares],
        "shares": [float(row["share"]) for row in shares],
        "period_starts": window["period_starts"],
        "point_prefixes": [point_prefix(ts) for ts in window["spark_timestamps"]],
        "points_field": rules.points_field,
        "resolution": format_time_span(window["resolution"]),
        "max_payloads": rules.max_payloads,
    }
    rows = conn.execute(build_sql(superseded), params).fetchall()
    return [
        BuiltPart(
            report_id=row["id"],
            part=row["part"],
            parts=row["parts"],
            payloads=row["payload_count"],
            points=row["point_count"],
            kwh=row["total_kwh"],
        )
        for row in sorted(rows, key=lambda r: r["part"])
    ]
