"""Building a curve's report, set-wise: three statements whatever the number of targets.

1. `report_shares`: the pro rata split of each distinct reading span into the curve's
   periods (a few dozen rows for meter values; a small table for charging sessions).
2. The sums (`sums_sql`, below), kept in the temporary table `report_build`: every target's
   readings, split and summed per period, its kWh per period (NULL where left out). The
   statement writes no table rows, so PostgreSQL may read, join and sum the readings in
   parallel workers.
3. The write (`write_sql`): the payloads numbered into parts of SPARK_REPORT_MAX_PAYLOADS,
   written as payload rows and report bodies, each payload's points at the curve's own
   timestamps. The points are text only here, once: about 1.5 KB per target, 150 MB for
   100,000 targets, which cost more to store, sort and read again than the numbers.

Both have one column per period of the curve (a day has 23, 24 or 25), so they are written
out here for the curve at hand rather than kept as named queries; the reports' tests prepare
them against the migrated schema for several period counts. One column per period lets
PostgreSQL sum a target's energy in a single hash aggregate. In bench.reports the build took
1.8-2.1 times the aggregate as one statement (in one process, the aggregate in three), and
1.4-1.55 times as these two.

Supersession has one implementation, `effective_periods_for_event` in shared/db/curves.sql.
A curve that no newer curve overlaps for one of its targets (`has_newer_curve`, also theirs)
has every period in force and is built without it; otherwise that query is put in the place
the build keeps for it, so that a newer curve's periods are reported by the newer curve only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, LiteralString

from shared.db import Connection, execute, fetch_all, fetch_one
from shared.db.queries import QUERIES
from worker.curves.payload import format_time_span
from worker.reports.ledger import ReportRules

# In the build: the stand-in for effective_periods_for_event when nothing is superseded.
NOTHING_SUPERSEDED: LiteralString = (
    "SELECT NULL::text AS resource_id, NULL::text AS location_id, "
    "NULL::timestamptz AS period_start WHERE false"
)
# Planner settings for the build's transaction. The planner cannot estimate the joins of
# readings with a curve's spans and targets (it expects a few rows where there are millions),
# and for a few rows it would sort them to group them, and loop over the resources, or over
# the supersession query's 2.4 million rows (which took hours), once per row. The build is
# made of bulk joins and aggregates only, so it is told so: hash everything, in memory
# (100,000 targets' sums and the report bodies), and skip JIT, which for the costs the
# disabled plans carry would compile for longer than the statement runs.
# A curve of a few targets is left to the planner: there its estimates hold, and these
# settings would make it hash every reading in the curve's window, so that a two-target
# build's cost grows with the readings of every curve of its hours (bench.sweep). A
# superseded curve of 999 targets built in the same time with them or without.
BUILD_SETTINGS_FROM_TARGETS = 1_000
BUILD_SETTINGS: dict[str, str] = {
    "work_mem": "256MB",
    "enable_sort": "off",
    "enable_nestloop": "off",
    "jit": "off",
}

# Each target's payload of one curve, from the split (the spans and shares that report_shares
# found). Each {slot_...} marker becomes one item per period slot (1..n):
#   1. the readings in the curve's window of resources it targets, split into its periods
#      and summed per slot, per resource and location as the readings name them. PostgreSQL
#      estimates that grouping well (unlike the join with the targets that follows), so it
#      runs it in parallel workers, as it does the baseline of bench.reports. Each part is
#      counted in whole nano-kWh: sums of whole numbers in double precision are exact (below
#      2^53, 9 GWh), so they do not depend on the order the workers add them in;
#   2. those sums given to the targets: a reading without a locationId counts for its
#      resource when the curve names that resource at one location only;
#   3. rounded half up to the Wh's thousandth (6 decimals); periods without energy are left out,
#      and, when a newer curve overlaps (superseded), so are the periods it took over for
#      that target ({effective});
#   4. one row per target with energy: its point count, its kWh, and its kWh per slot.
# build_report keeps the rows in a temporary table (CREATE TABLE AS: a statement that writes
# table rows would not run in parallel), for WRITE_TEMPLATE.
SUMS_TEMPLATE: LiteralString = """
WITH effective AS (
    {effective}
), effective_by_target AS (
    SELECT resource_id, location_id, array_agg(period_start) AS starts
    FROM effective
    GROUP BY resource_id, location_id
), shares AS (
    SELECT *
    FROM unnest(%(span_starts)s::timestamptz[], %(span_ends)s::timestamptz[],
                %(slots)s::integer[], %(shares)s::double precision[])
         AS s(start_at, end_at, slot, share)
), per_reading_key AS (
    SELECT r.resource_id, r.location_id,
           {slot_sums}
    FROM readings r
    JOIN shares s ON s.start_at = r.start_at AND s.end_at = r.end_at
    WHERE r.start_at > %(earliest_start)s
      AND r.start_at < %(last_period_end)s
      AND r.end_at > %(first_period_start)s
      AND r.resource_id IN (
          SELECT resource_id FROM price_curve_targets WHERE event_id = %(event_id)s
      )
    GROUP BY 1, 2
), targets AS (
    -- Whether a target is left out (report_exclusions) does not change which location a
    -- reading without one counts for: that is a question of the curve's targets.
    SELECT t.resource_id, t.location_id,
           count(*) OVER (PARTITION BY t.resource_id) = 1 AS only_location,
           -- A correction (%(correction)s) takes in targets that had no readings before.
           x.reason IS NOT NULL AND NOT (%(correction)s AND x.reason = 'no_readings')
               AS excluded
    FROM price_curve_targets t
    LEFT JOIN report_exclusions x
      ON x.event_id = t.event_id
     AND x.resource_id = t.resource_id
     AND x.location_id = t.location_id
    WHERE t.event_id = %(event_id)s
), per_target AS (
    SELECT t.resource_id COLLATE "C" AS resource_id, t.location_id COLLATE "C" AS location_id,
           {slot_target_sums}
    FROM per_reading_key r
    JOIN targets t
      ON t.resource_id = r.resource_id
     AND (t.location_id = r.location_id OR (r.location_id IS NULL AND t.only_location))
    WHERE NOT t.excluded
    GROUP BY 1, 2
), kept AS (
    -- NULL for a slot that is left out.
    SELECT pt.resource_id, pt.location_id,
           {slot_kept}
    FROM per_target pt
    LEFT JOIN effective_by_target e
      ON e.resource_id = pt.resource_id AND e.location_id = pt.location_id
), payloads AS (
    -- Arrays, not function arguments: a function takes at most 100 (a day of quarter hours
    -- with the autumn's extra hour has 100 periods).
    SELECT resource_id, location_id,
           cardinality(array_remove(ARRAY[{slot_kwh}], NULL)) AS points,
           {slot_total} AS kwh,
           {slot_kwh}
    FROM kept
)
SELECT *
FROM payloads
WHERE points > 0
"""

# {payloads_body} of WRITE_TEMPLATE and CORRECTION_TEMPLATE: the JSON body of a report from the
# rows of `numbered`, one EnergyUsage payload per row in resource and location order. One text,
# so that a correction's body compares with a sent one byte for byte.
PAYLOADS_BODY: LiteralString = """
       '{"eventId":' || to_json(%(event_id)s::text)::text || ',"payloads":['
       || string_agg(
              '{"payloadType":"EnergyUsage","resourceId":' || to_json(resource_id::text)::text
              || ',"locationId":' || to_json(location_id::text)::text
              || coalesce(',"meterPointId":' || to_json(meter_point_id)::text, '')
              || ',' || to_json(%(points_field)s::text)::text || ':['
              || array_to_string(ARRAY[{slot_points}], ',')
              || '],"resolution":' || to_json(%(resolution)s::text)::text || '}',
              ',' ORDER BY resource_id, location_id)
       || ']}'"""

# The report(s) of one curve from `report_build`: the payloads numbered into parts of
# max_payloads, written as payload rows and one report row per part with its body, the
# points of each payload at the curve's own timestamps (part 1 is the claimed row report_id,
# updated; further parts are inserted due). Returns one row per part; none when no target
# used energy.
WRITE_TEMPLATE: LiteralString = """
WITH numbered AS (
    SELECT p.*, res.meter_point_id,
           (row_number() OVER (ORDER BY p.resource_id, p.location_id) - 1)
               / %(max_payloads)s + 1 AS part
    FROM report_build p
    LEFT JOIN resources res ON res.resource_id = p.resource_id
), saved AS (
    INSERT INTO report_payloads (
        event_id, part, resource_id, location_id, meter_point_id, kwh, points
    )
    SELECT %(event_id)s, part, resource_id, location_id, meter_point_id, kwh, points
    FROM numbered
    RETURNING 1
), bodies AS (
    SELECT part, count(*) AS payloads, sum(points) AS points, sum(kwh) AS kwh,
       {payloads_body} AS body
    FROM numbered
    GROUP BY part
), base AS (
    SELECT event_id, month, zone, first_period_start, last_period_end, due_reason, due_at
    FROM reports
    WHERE id = %(report_id)s
)
INSERT INTO reports (
    event_id, part, parts, month, zone, first_period_start, last_period_end, status,
    due_reason, due_at, next_attempt_at, body, built_at, payload_count, point_count,
    total_kwh, idempotency_key, created_at, updated_at
)
SELECT base.event_id, b.part, (SELECT count(*) FROM bodies), base.month, base.zone,
       base.first_period_start, base.last_period_end, 'due', base.due_reason, base.due_at,
       %(now)s, b.body, %(now)s, b.payloads, b.points, b.kwh,
       base.event_id || '/' || b.part || '/' || md5(b.body), %(now)s, %(now)s
FROM bodies b
CROSS JOIN base
ON CONFLICT (kind, event_id, part) DO UPDATE
SET parts = EXCLUDED.parts,
    body = EXCLUDED.body,
    built_at = EXCLUDED.built_at,
    payload_count = EXCLUDED.payload_count,
    point_count = EXCLUDED.point_count,
    total_kwh = EXCLUDED.total_kwh,
    idempotency_key = EXCLUDED.idempotency_key,
    updated_at = EXCLUDED.updated_at
RETURNING id, part, parts, payload_count, point_count, total_kwh
"""

# A corrected report (worker/reports/corrections.py) of one curve from `report_build`: one
# body with every payload, in the order and form of WRITE_TEMPLATE's, written nowhere.
CORRECTION_TEMPLATE: LiteralString = """
WITH numbered AS (
    SELECT p.*, res.meter_point_id
    FROM report_build p
    LEFT JOIN resources res ON res.resource_id = p.resource_id
)
SELECT count(*) AS payloads, coalesce(sum(kwh), 0) AS kwh,
       {payloads_body} AS body
FROM numbered
"""

# One item per slot {k}, for the markers of SUMS_TEMPLATE and WRITE_TEMPLATE.
SLOT_ITEMS: dict[str, tuple[str, str]] = {
    "slot_sums": (
        "sum(round(r.kwh * s.share * 1e9)) FILTER (WHERE s.slot = {k}) AS sum_{k}",
        ",\n",
    ),
    "slot_target_sums": ("sum(r.sum_{k}) AS sum_{k}", ",\n"),
    "slot_kept": (
        "CASE WHEN (pt.sum_{k}::bigint + 500) / 1000 > 0"
        " AND (NOT %(superseded)s OR (%(period_starts)s::timestamptz[])[{k}] = ANY (e.starts))"
        " THEN ((pt.sum_{k}::bigint + 500) / 1000)::double precision / 1000000 END AS kwh_{k}",
        ",\n",
    ),
    "slot_kwh": ("kwh_{k}", ", "),
    "slot_total": ("coalesce(kwh_{k}, 0)", " + "),
    "slot_points": ("(%(point_prefixes)s::text[])[{k}] || kwh_{k} || '}}'", ",\n"),
}


def sums_sql(slots: int, superseded: bool) -> LiteralString:
    """The query whose rows make `report_build`, for a curve of `slots` periods."""
    effective = (
        QUERIES["effective_periods_for_event"].rstrip().removesuffix(";")
        if superseded
        else NOTHING_SUPERSEDED
    )
    return _written_out(SUMS_TEMPLATE.replace("{effective}", effective), slots)


def write_sql(slots: int) -> LiteralString:
    """The statement that writes the parts from `report_build`, for `slots` periods."""
    return _written_out(WRITE_TEMPLATE.replace("{payloads_body}", PAYLOADS_BODY), slots)


def _written_out(template: LiteralString, slots: int) -> LiteralString:
    """`template` with each {slot_...} marker written out for slots 1..`slots`."""
    if slots < 1:
        raise ValueError("a curve has at least one period")
    sql = template
    for marker, (item, separator) in SLOT_ITEMS.items():
        sql = sql.replace(
            "{" + marker + "}", separator.join(item.format(k=k) for k in range(1, slots + 1))
        )
    if "{slot_" in sql or "{effective}" in sql:
        raise RuntimeError("a build statement has a marker left that nothing writes out")
    # Made of this module's text and slot numbers only: as literal as inline SQL.
    return sql


@dataclass(frozen=True)
class BuiltPart:
    report_id: int
    part: int
    parts: int
    payloads: int
    points: int
    kwh: float


def apply_build_settings(conn: Connection, targets: int = BUILD_SETTINGS_FROM_TARGETS) -> None:
    """BUILD_SETTINGS, for the rest of the caller's transaction, for a curve of `targets`."""
    if targets < BUILD_SETTINGS_FROM_TARGETS:
        return
    for name, value in BUILD_SETTINGS.items():
        execute(conn, "set_local_setting", {"name": name, "value": value})


def point_prefix(spark_timestamp: str) -> str:
    """A point up to its kWh: the timestamp exactly as the curve gave it."""
    return '{"timestamp":' + json.dumps(spark_timestamp) + ',"kiloWattHours":'


def has_newer_curve(conn: Connection, event_id: str) -> bool:
    row = fetch_one(conn, "has_newer_curve", {"event_id": event_id})
    return bool(row and row["newer"])


def leave_out_unacceptable(conn: Connection, event_id: str, *, now: datetime) -> None:
    """Before a build: leave out the targets Spark cannot accept (their user deleted at
    Spark, a meterPointId not at their location), recorded with the reason; what the last
    build left out is found again (Spark's refusals stay set aside)."""
    execute(conn, "forget_recomputed_exclusions", {"event_id": event_id})
    execute(conn, "leave_out_unacceptable_targets", {"event_id": event_id, "now": now})


def record_targets_without_readings(
    conn: Connection, event_id: str, last_period_end: datetime, *, now: datetime
) -> None:
    """After a build: the targets it carries no payload for because their readings stop
    short of the event's end (no energy to report), recorded as left out."""
    execute(
        conn,
        "record_targets_without_readings",
        {"event_id": event_id, "last_period_end": last_period_end, "now": now},
    )


@dataclass(frozen=True)
class CorrectedBody:
    body: str
    payloads: int
    kwh: float


def build_correction(
    conn: Connection, event_id: str, rules: ReportRules, *, now: datetime
) -> CorrectedBody | None:
    """The event's full report built again from the readings now, as one body written nowhere
    (the targets left out for lack of readings taken in); None when nothing is left."""
    prepared = _prepare_build(conn, event_id, rules, now=now, correction=True)
    if prepared is None:
        return None
    params, slots, sums = prepared
    conn.execute("CREATE TEMPORARY TABLE report_build ON COMMIT DROP AS " + sums, params)
    correction = CORRECTION_TEMPLATE.replace("{payloads_body}", PAYLOADS_BODY)
    row = conn.execute(_written_out(correction, slots), params).fetchone()
    conn.execute("DROP TABLE report_build")
    if row is None or not row["payloads"]:
        return None
    return CorrectedBody(row["body"], int(row["payloads"]), float(row["kwh"]))


def _prepare_build(
    conn: Connection, event_id: str, rules: ReportRules, *, now: datetime, correction: bool
) -> tuple[dict[str, Any], int, LiteralString] | None:
    window = fetch_one(conn, "report_window", {"event_id": event_id})
    if window is None:
        return None
    span = {
        "event_id": event_id,
        "earliest_start": window["earliest_start"],
        "first_period_start": window["first_period_start"],
        "last_period_end": window["last_period_end"],
    }
    shares = fetch_all(conn, "report_shares", span)
    if not shares:
        return None
    superseded = has_newer_curve(conn, event_id)
    apply_build_settings(conn, window["target_count"])
    slots = len(window["period_starts"])
    params: dict[str, Any] = {
        **span,
        "now": now,
        "superseded": superseded,
        "correction": correction,
        "span_starts": [row["start_at"] for row in shares],
        "span_ends": [row["end_at"] for row in shares],
        "slots": [row["slot"] for row in shares],
        "shares": [float(row["share"]) for row in shares],
        "period_starts": window["period_starts"],
        "point_prefixes": [point_prefix(ts) for ts in window["spark_timestamps"]],
        "points_field": rules.points_field,
        "resolution": format_time_span(window["resolution"]),
    }
    return params, slots, sums_sql(slots, superseded)


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
    leave_out_unacceptable(conn, event_id, now=now)
    shares = fetch_all(conn, "report_shares", span)
    if not shares:
        record_targets_without_readings(conn, event_id, window["last_period_end"], now=now)
        return []
    superseded = has_newer_curve(conn, event_id)
    apply_build_settings(conn, window["target_count"])
    params = {
        **span,
        "report_id": report_id,
        "now": now,
        "superseded": superseded,
        "correction": False,
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
    slots = len(window["period_starts"])
    sums = sums_sql(slots, superseded)
    conn.execute("CREATE TEMPORARY TABLE report_build ON COMMIT DROP AS " + sums, params)
    rows = conn.execute(write_sql(slots), params).fetchall()
    record_targets_without_readings(conn, event_id, window["last_period_end"], now=now)
    # Gone at commit anyway; dropped now so that a second build in the transaction can run.
    conn.execute("DROP TABLE report_build")
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
