"""Price curves at scale: one PriceCurveCreated with 100,000 targets, stored and dispatched.

A fresh database is migrated. Then, in this process, as a worker runs them:

1. store: the webhook body (24 hourly points, --targets targets) goes through the inbox's
   `ingest` (parse, event row, the handler: validation, curve and periods, targets by COPY,
   one pending dispatch decision per target), from its first statement to the commit;
2. dispatch: `run_dispatch` with the log dispatcher (logging to a file at INFO), batches of
   SPARK_DISPATCH_BATCH_SIZE' default, until every decision is recorded as sent;
3. change: a changed curve for half the targets (6 periods) is stored, which puts the older
   curve's plans for those targets back to pending; both are dispatched again; and the
   reports' query `effective_periods_for_event` is read for the older curve.

The store is compared with a plain COPY of the same (event, resource, location) rows into a
table shaped like price_curve_targets (same primary key and index), timed in the same run.

    .venv/bin/python -m bench.curves [--targets 100000]

--database-url names the server (a superuser connection); the benchmark creates its own
database there and drops it at the end. --redis-url is where the handler's follow-up task
goes (its own database, emptied at the end).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import redis

from bench.support import fresh_database, print_result
from shared.db import connect
from shared.timeutil import format_spark_datetime

DAY = date(2026, 3, 4)
OSLO = ZoneInfo("Europe/Oslo")


def checkpoint(database_url: str) -> None:
    """Start each timed part with no dirty buffers left by the one before."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def hours() -> list[datetime]:
    start = datetime.combine(DAY, wall_time(0), tzinfo=OSLO).astimezone(UTC)
    return [start + timedelta(hours=i) for i in range(24)]


def notification(
    targets: list[tuple[str, str]], starts: list[datetime], price: float, created: datetime
) -> bytes:
    document = {
        "notificationId": str(uuid.uuid4()),
        "eventId": str(uuid.uuid4()),
        "eventCreatedAtUtc": format_spark_datetime(created),
        "notificationSentUtc": format_spark_datetime(created),
        "notificationType": "PriceCurveCreated",
        "payload": {
            "targets": [{"resourceId": r, "locationId": loc} for r, loc in targets],
            "priceCurveDelta": {
                "points": [{"price": price, "timestamp": format_spark_datetime(s)} for s in starts],
                "energyUnit": "kWh",
                "currency": "NOK",
                "resolution": "01:00:00",
            },
            "priceArea": "NO1",
            "payloadType": "PriceCurve",
        },
    }
    return json.dumps(document, separators=(",", ":")).encode()


def plain_copy(database_url: str, event_id: str, targets: list[tuple[str, str]]) -> float:
    with connect(database_url) as conn:
        conn.execute("CREATE TABLE bench_copy (LIKE price_curve_targets INCLUDING ALL)")
        conn.commit()
        checkpoint(database_url)
        started = time.perf_counter()
        with (
            conn.cursor() as cursor,
            cursor.copy("COPY bench_copy (event_id, resource_id, location_id) FROM STDIN") as copy,
        ):
            for resource_id, location_id in targets:
                copy.write_row((event_id, resource_id, location_id))
        conn.commit()
        return time.perf_counter() - started


def store(database_url: str, redis_url: str, raw: bytes) -> tuple[float, Any]:
    from shared.config import load_settings
    from worker.celery_app import create_app
    from worker.events.inbox import ingest

    settings = load_settings({"DATABASE_URL": database_url, "REDIS_URL": redis_url})
    # An app that only sends: the handler's follow-up goes to --redis-url.
    sender = create_app(settings, current=False)
    with connect(database_url) as conn:
        checkpoint(database_url)
        started = time.perf_counter()
        result = ingest(
            conn,
            delivery_id=str(uuid.uuid4()),
            raw=raw,
            received_at=datetime.now(UTC),
            source="webhook",
            settings=settings,
            sender=sender,
        )
        return time.perf_counter() - started, result


def dispatch(database_url: str, batch_size: int) -> tuple[float, Any]:
    from worker.curves.dispatch import RetryPolicy, run_dispatch
    from worker.curves.dispatchers import LogDispatcher
    from worker.plan_kinds import PLAN_KINDS

    checkpoint(database_url)
    started = time.perf_counter()
    report = run_dispatch(
        database_url,
        LogDispatcher(),
        RetryPolicy(max_attempts=6, first_delay=timedelta(seconds=30)),
        kinds=PLAN_KINDS,
        batch_size=batch_size,
        lease=timedelta(minutes=2),
        budget_seconds=3600,
    )
    return time.perf_counter() - started, report


def effective_rows(database_url: str, event_id: str) -> tuple[float, int]:
    with connect(database_url) as conn:
        started = time.perf_counter()
        rows = 0
        with conn.cursor(name="effective") as cursor:
            cursor.execute(_query("effective_periods_for_event"), {"event_id": event_id})
            while batch := cursor.fetchmany(10_000):
                rows += len(batch)
        conn.commit()
        return time.perf_counter() - started, rows


def _query(name: str) -> Any:
    from shared.db.queries import QUERIES

    return QUERIES[name]


def statuses(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT status || '/' || revision, count(*) FROM curve_dispatches GROUP BY 1"
        ).fetchall()
    return {str(row[0]): int(row[1]) for row in rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", type=int, default=100_000, help="targets of the curve")
    parser.add_argument("--batch-size", type=int, default=500, help="plans per dispatcher call")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args(argv)

    # The worker modules read their settings once, at import: set them first.
    os.environ["REDIS_URL"] = args.redis_url
    log_path = Path(tempfile.gettempdir()) / f"bench-curves-{os.getpid()}.log"
    logging.basicConfig(filename=log_path, level=logging.INFO, force=True)

    targets = [(str(uuid.uuid4()), str(uuid.uuid4())) for _ in range(args.targets)]
    created = datetime(2026, 3, 3, 12, 0, 1, tzinfo=UTC)
    raw = notification(targets, hours(), -0.25, created)
    half = targets[::2]
    changed_raw = notification(half, hours()[8:14], 0.5, created + timedelta(hours=2))
    print(f"curve: {args.targets} targets, 24 points, body {len(raw) / 1e6:.1f} MB")

    broker = redis.Redis.from_url(args.redis_url)
    try:
        with fresh_database(args.database_url, "curves") as url:
            copy_seconds = plain_copy(url, "baseline-event", targets)
            store_seconds, stored = store(url, args.redis_url, raw)
            dispatch_seconds, sent = dispatch(url, args.batch_size)
            change_seconds, _ = store(url, args.redis_url, changed_raw)
            redispatch_seconds, resent = dispatch(url, args.batch_size)
            effective_seconds, effective = effective_rows(url, stored.event_id)
            final = statuses(url)
    finally:
        broker.flushdb()
        broker.close()

    def line(label: str, seconds: float, compare: bool = False) -> None:
        ratio = f"   {seconds / copy_seconds:5.1f} x the COPY" if compare else ""
        print(f"{label:<58} {seconds:7.2f} s{ratio}")

    line(f"plain COPY of the {args.targets} target rows", copy_seconds)
    line(f"store (ingest to commit; event {stored.status})", store_seconds, compare=True)
    line(f"dispatch (log, {sent.batches} batches, {sent.sent} sent)", dispatch_seconds, True)
    line("store + dispatch", store_seconds + dispatch_seconds, compare=True)
    line(f"changed curve for {len(half)} targets stored", change_seconds)
    line(f"dispatch after it ({resent.sent} sent, {resent.skipped} skipped)", redispatch_seconds)
    line(f"effective_periods_for_event, older curve ({effective} rows)", effective_seconds)
    print(f"decisions (status/revision): {final}")
    print(f"log: {log_path} ({log_path.stat().st_size / 1e6:.1f} MB)")
    print_result(
        "bench.curves",
        (f"plain COPY of the {args.targets} target rows", copy_seconds, "s"),
        ("store + dispatch", store_seconds + dispatch_seconds, "s"),
        (store_seconds + dispatch_seconds) / copy_seconds,
        "printed",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
