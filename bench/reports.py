"""Building one report for 100,000 targets x 24 periods, against one aggregate query over the
same data. Target: the build takes at most twice the aggregate's time.

    .venv/bin/python -m bench.reports [--targets N] [--rounds N]

A fresh database (every migration) gets one price curve (24 hourly periods of a local day,
`--targets` targets) and one hourly reading per target and period (2.4 million rows),
generated in SQL, then VACUUM ANALYZE.

- Baseline, "one aggregate query over the same data": the kWh per target and hour of the
  curve's targets over its day, a join and one GROUP BY, read as a count and a sum (no rows
  travel to the client).
- Candidate: what the sender does with a claimed report, in one transaction: the split into
  periods, sums per target and period, payloads and report bodies (parts of
  SPARK_REPORT_MAX_PAYLOADS), written and committed. Removed again before the next round.

Both run with the same session settings (the builder's BUILD_SETTINGS), interleaved baseline then
candidate for --rounds rounds, after a CHECKPOINT each; the median of the ratios is the
result.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall_time
from zoneinfo import ZoneInfo

import psycopg

from bench.support import fresh_database, print_result
from shared.db import connect
from worker.reports.builder import apply_build_settings, build_report
from worker.reports.ledger import ReportRules

TARGET_RATIO = 2.0
OSLO = ZoneInfo("Europe/Oslo")
DAY = date(2026, 3, 4)
EVENT_ID = "bench-curve"

BASELINE = """
SELECT count(*) AS rows, sum(kwh) AS kwh FROM (
    SELECT t.resource_id, t.location_id, date_trunc('hour', r.start_at), sum(r.kwh) AS kwh
    FROM readings r
    JOIN price_curve_targets t
      ON t.event_id = %(event_id)s
     AND t.resource_id = r.resource_id
     AND t.location_id = r.location_id
    WHERE r.start_at >= %(start)s AND r.start_at < %(end)s
    GROUP BY 1, 2, 3
) AS per_target_and_hour
"""


def day_span() -> tuple[datetime, datetime]:
    start = datetime.combine(DAY, wall_time(0), tzinfo=OSLO).astimezone(UTC)
    return start, start + timedelta(hours=24)


def load(url: str, targets: int) -> None:
    start, end = day_span()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO events (event_id, notification_type, payload_type, event_created_at,"
            " payload, raw_body, first_received_at, last_received_at, first_source)"
            " VALUES (%s, 'PriceCurveCreated', 'PriceCurve', %s, '{}', '\\x00', now(), now(),"
            " 'poll')",
            (EVENT_ID, start - timedelta(hours=11)),
        )
        conn.execute(
            "INSERT INTO price_curves (event_id, event_created_at, price_area, currency,"
            " energy_unit, resolution, local_date, first_period_start, last_period_end,"
            " target_count) VALUES (%s, %s, 'NO1', 'NOK', 'kWh', '1 hour', %s, %s, %s, %s)",
            (EVENT_ID, start - timedelta(hours=11), DAY, start, end, targets),
        )
        conn.execute(
            "INSERT INTO price_curve_periods (event_id, period_start, period_end,"
            " spark_timestamp, price)"
            " SELECT %s, t, t + interval '1 hour',"
            " to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00:00\"'), -0.25"
            " FROM generate_series(%s::timestamptz, %s::timestamptz - interval '1 hour',"
            " interval '1 hour') AS t",
            (EVENT_ID, start, end),
        )
        conn.execute(
            "INSERT INTO price_curve_targets (event_id, resource_id, location_id)"
            " SELECT %s, 'resource-' || lpad(i::text, 7, '0'), 'location-' || lpad(i::text, 7, '0')"
            " FROM generate_series(1, %s) AS i",
            (EVENT_ID, targets),
        )
        conn.execute(
            "INSERT INTO readings (resource_id, start_at, end_at, location_id, kwh, batch_id,"
            " received_at)"
            " SELECT 'resource-' || lpad(i::text, 7, '0'), t, t + interval '1 hour',"
            " 'location-' || lpad(i::text, 7, '0'), round((random() * 3)::numeric, 3), 'bench',"
            " now()"
            " FROM generate_series(%s::timestamptz, %s::timestamptz - interval '1 hour',"
            " interval '1 hour') AS t, generate_series(1, %s) AS i",
            (start, end, targets),
        )
        conn.execute("VACUUM ANALYZE")


def checkpoint(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def baseline(url: str) -> tuple[float, int]:
    start, end = day_span()
    with connect(url) as conn, conn.transaction():
        apply_build_settings(conn)
        began = time.perf_counter()
        row = conn.execute(BASELINE, {"event_id": EVENT_ID, "start": start, "end": end}).fetchone()
        seconds = time.perf_counter() - began
    assert row is not None
    return seconds, int(row["rows"])


def build(url: str, rules: ReportRules) -> tuple[float, int, int]:
    now = day_span()[1] + timedelta(hours=3)
    with connect(url) as conn:
        with conn.transaction():
            conn.execute(
                "INSERT INTO reports (event_id, month, first_period_start, last_period_end,"
                " status, created_at, updated_at)"
                " SELECT event_id, date_trunc('month', local_date), first_period_start,"
                " last_period_end, 'sending', now(), now() FROM price_curves WHERE event_id = %s"
                " RETURNING id",
                (EVENT_ID,),
            )
        row = conn.execute("SELECT id FROM reports WHERE event_id = %s", (EVENT_ID,)).fetchone()
        conn.commit()
        assert row is not None
        began = time.perf_counter()
        with conn.transaction():
            parts = build_report(conn, row["id"], EVENT_ID, rules, now=now)
        seconds = time.perf_counter() - began
        with conn.transaction():
            conn.execute("DELETE FROM report_payloads")
            conn.execute("DELETE FROM reports")
    return seconds, len(parts), sum(part.points for part in parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-payloads", type=int, default=10_000)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    rules = ReportRules(timezone=OSLO, max_payloads=args.max_payloads)

    with fresh_database(args.database_url, "reports") as url:
        began = time.perf_counter()
        load(url, args.targets)
        print(
            f"data: 1 curve, {args.targets} targets x 24 periods, {args.targets * 24} readings"
            f" (loaded in {time.perf_counter() - began:.1f} s)"
        )
        ratios = []
        base_times, build_times = [], []
        for round_no in range(1, args.rounds + 1):
            checkpoint(url)
            base_seconds, groups = baseline(url)
            checkpoint(url)
            build_seconds, parts, points = build(url, rules)
            ratios.append(build_seconds / base_seconds)
            base_times.append(base_seconds)
            build_times.append(build_seconds)
            print(
                f"round {round_no}: aggregate {base_seconds:6.2f} s ({groups} sums)   "
                f"build {build_seconds:6.2f} s ({parts} part(s), {points} points)   "
                f"ratio {ratios[-1]:.2f}"
            )
    ratio = statistics.median(ratios)
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    print(f"median ratio build / aggregate: {ratio:.2f} ({verdict} the target <= {TARGET_RATIO})")
    met = print_result(
        "bench.reports",
        ("one aggregate query over the same data", statistics.median(base_times), "s"),
        (f"one report built, {args.targets} targets x 24", statistics.median(build_times), "s"),
        ratio,
        f"<= {TARGET_RATIO:g}",
    )
    return 0 if met else 2


if __name__ == "__main__":
    raise SystemExit(main())
