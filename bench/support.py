"""What the benchmarks share: a freshly migrated database of their own, sandbox curves
stored as the worker stores them (tests/reports uses that too), and the closing lines."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import psycopg
from psycopg.types.json import Jsonb

from sandbox.state import Event
from shared.db import Connection, close_pools, connect, fetch_one
from shared.db.migrate import upgrade
from worker.curves.payload import parse_curve
from worker.curves.store import store_curve


@contextmanager
def fresh_database(server_url: str, label: str) -> Iterator[str]:
    """A new database on `server_url` with every migration applied, dropped afterwards."""
    name = f"sp_bench_{label}_{os.getpid()}"
    parts = urlsplit(server_url)
    url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with connect(url) as conn:
            upgrade(conn)
        yield url
    finally:
        close_pools()
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def store_event_curve(conn: Connection, event: Event, timezone: ZoneInfo) -> None:
    """Store a sandbox PriceCurve event as the worker's ingest stores it, in one transaction:
    the inbox row (as the backfill's poll would have it), then the curve, at the event's
    creation time. No handler runs: no dispatch is planned or sent."""
    with conn.transaction():
        fetch_one(
            conn,
            "insert_event",
            {
                "event_id": event.event_id,
                "notification_type": "PriceCurveCreated",
                "payload_type": "PriceCurve",
                "event_created_at": event.created_at,
                "payload": Jsonb(event.payload),
                "raw_body": json.dumps(event.to_api()).encode(),
                "received_at": event.created_at,
                "source": "poll",
            },
        )
        curve = parse_curve(dict(event.payload), created_at=event.created_at, timezone=timezone)
        store_curve(conn, event.event_id, curve, now=event.created_at)


def print_result(
    name: str,
    baseline: tuple[str, float, str],
    figure: tuple[str, float, str],
    ratio: float,
    target: str,
) -> bool:
    """The closing lines every benchmark prints, in one shape: the baseline and the figure
    measured in this run, their ratio and the target, e.g. `target=">= 0.3"` or `"<= 2"`.
    Returns whether the target is met ("printed" targets always are)."""
    operator, _, bound = target.partition(" ")
    if operator == ">=":
        met = ratio >= float(bound)
    elif operator == "<=":
        met = ratio <= float(bound)
    else:
        met = True
    verdict = ("meets" if met else "MISSES") if operator in {">=", "<="} else "(no target)"
    label, value, unit = baseline
    print(f"{name}  baseline  {label}: {value:,.2f} {unit}")
    label, value, unit = figure
    print(f"{name}  figure    {label}: {value:,.2f} {unit}")
    print(f"{name}  ratio     {ratio:.2f}   target {target}   {verdict}")
    return met
