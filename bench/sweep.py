"""A month-end sweep: 10,000 due reports sent to the sandbox, against the sandbox's own
accept rate. Target: at least 0.8 of it.

    .venv/bin/python -m bench.sweep [--reports N]

A sandbox runs in this process (its clock frozen) and makes --reports PriceCurve events, each
for two targets and two hours of the 30th of March 2026; each is stored as the worker's ingest
stores it (the inbox row, then the curve) in a fresh database (every migration), with one
reading per target and hour. The clock then stands at the last day of the month, after
SPARK_REPORT_MAX_WAIT: the ledger's sweep plans every report and makes it due.

- Candidate: `send_due`, what `reports send --due` and the worker's send task run: for each
  report, claim it (FOR UPDATE SKIP LOCKED, a lease), build its body, POST it, record Spark's
  answer, each step committed. No SPARK_RATE_LIMIT here (production's 10/s would be the bound
  otherwise: that is the rate limit's figure, not the sender's).
- Baseline, the sandbox's accept rate: the same bodies (read back from the ledger) POSTed
  again, one after another, by the same client, with nothing else done (the sandbox takes a
  report for an event twice, as Spark would).

The rates are reports per second; their ratio is the result. Every report must be accepted.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg

from bench.support import fresh_database, print_result, store_event_curve
from sandbox.app import RunningSandbox, serve
from sandbox.config import SandboxConfig
from sandbox.simulation import PriceCurveRequest
from shared.db import connect
from shared.spark_api import SparkClient
from worker.reports.ledger import ReportRules, sweep
from worker.reports.sender import send_due

TARGET_RATIO = 0.8
CLIENT_ID = "bench-sweep"
CLIENT_SECRET = "bench-sweep-secret"  # noqa: S105 (a local sandbox's)
OSLO = ZoneInfo("Europe/Oslo")
FIRST_HOUR = datetime(2026, 3, 30, 8, tzinfo=OSLO)
CREATED = datetime(2026, 3, 29, 12, tzinfo=UTC)
# After the last event's end plus SPARK_REPORT_MAX_WAIT, before the month's end.
NOW = datetime(2026, 3, 31, 12, tzinfo=UTC)


def make_events(server: RunningSandbox, database_url: str, count: int) -> None:
    sandbox = server.sandbox
    sandbox.clock.set(CREATED, frozen=True)
    starts = [FIRST_HOUR, FIRST_HOUR + timedelta(hours=1)]
    with connect(database_url) as conn:
        for n in range(count):
            request = PriceCurveRequest(
                targets=[
                    {"resourceId": f"ev-{n}-{k}", "locationId": f"home-{n}-{k}"} for k in (0, 1)
                ],
                delta={
                    "points": [
                        {"price": -0.5, "timestamp": s.astimezone(UTC).isoformat()} for s in starts
                    ],
                    "resolution": "01:00:00",
                    "energyUnit": "kWh",
                    "currency": "NOK",
                },
                price_area="NO1",
            )
            event = sandbox.simulate_price_curve(request)
            store_event_curve(conn, event, OSLO)
        with conn.transaction():
            conn.execute(
                "INSERT INTO readings (resource_id, start_at, end_at, location_id, kwh,"
                " batch_id, received_at)"
                " SELECT t.resource_id, p.period_start, p.period_end, t.location_id, 1.5,"
                " 'bench', %s"
                " FROM price_curve_targets t JOIN price_curve_periods p USING (event_id)",
                (NOW - timedelta(hours=20),),
            )
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("VACUUM ANALYZE")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sweep", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--reports", type=int, default=10_000, help="due reports (events)")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    rules = ReportRules(timezone=OSLO)

    with ExitStack() as stack:
        server = serve(SandboxConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET), quiet=True)
        stack.callback(server.stop)
        url = stack.enter_context(fresh_database(args.database_url, "sweep"))
        began = time.perf_counter()
        make_events(server, url, args.reports)
        print(
            f"month-end sweep: {args.reports} price curves of 2 targets x 2 hours, stored, with "
            f"readings (made in {time.perf_counter() - began:.1f} s)"
        )
        server.sandbox.clock.set(NOW, frozen=True)
        client = stack.enter_context(
            SparkClient(server.base_url, server.token_url, CLIENT_ID, CLIENT_SECRET)
        )
        conn = stack.enter_context(connect(url))
        planned = sweep(conn, rules, now=NOW)
        if planned.due != args.reports:
            print(f"ERROR: {args.reports} events, {planned.due} reports due ({planned})")
            return 1

        began = time.perf_counter()
        results = send_due(conn, client, rules, now=NOW)
        ours = time.perf_counter() - began
        accepted = sum(result.status == "sent" for result in results)
        if accepted != args.reports:
            statuses = sorted({result.status for result in results})
            print(f"ERROR: {accepted} of {args.reports} reports accepted ({statuses})")
            return 1

        bodies = [
            json.loads(row["body"])
            for row in conn.execute("SELECT body FROM reports ORDER BY id").fetchall()
        ]
        conn.commit()
        began = time.perf_counter()
        for body in bodies:
            client.request("POST", "/reports", json=body, retry=False)
        plain = time.perf_counter() - began

    base_rate, our_rate = len(bodies) / plain, args.reports / ours
    print(
        f"send_due: {args.reports} reports in {ours:.2f} s; "
        f"plain POSTs: {len(bodies)} in {plain:.2f} s"
    )
    met = print_result(
        "bench.sweep",
        ("the sandbox's accept rate (the same bodies POSTed)", base_rate, "reports/s"),
        ("send_due: claim, build, POST, record", our_rate, "reports/s"),
        our_rate / base_rate,
        f">= {TARGET_RATIO}",
    )
    return 0 if met else 2


if __name__ == "__main__":
    raise SystemExit(main())
