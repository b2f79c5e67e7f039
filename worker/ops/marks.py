"""Marks: when something last happened, by name, for `status` and the metrics.

Use a mark only for what no table of its own records (the backfill has `backfill_runs`, the
reconciles `eligibility_reconciles`). Call `mark` in the transaction that does the work, so a
rolled-back run leaves no mark.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from shared.db import Connection, execute, fetch_all

# The names in use, so `status` and the metrics know what to look for.
DELIVERY_LOG_CHECK = "delivery_log_check"
# Worker main processes stopped by an unrecoverable error; detail: total, hostname, error.
WORKER_CRASH = "worker_crash"


@dataclass(frozen=True)
class Mark:
    name: str
    at: datetime
    detail: dict[str, Any] | None


def mark(
    conn: Connection,
    name: str,
    *,
    at: datetime | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record that `name` happened at `at` (default: the transaction's now), with an optional
    JSON detail such as counts. A mark never moves back in time."""
    if at is not None and at.tzinfo is None:
        raise ValueError("a mark's time must be timezone-aware")
    execute(
        conn,
        "mark",
        {"name": name, "at": at, "detail": None if detail is None else Jsonb(detail)},
    )


def marks(conn: Connection) -> dict[str, Mark]:
    return {
        row["name"]: Mark(row["name"], row["at"], row["detail"])
        for row in fetch_all(conn, "ops_marks")
    }
