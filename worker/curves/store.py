"""Storing a curve inside its event's transaction: the curve, its periods, its targets (COPY),
one dispatch decision per target, and new revisions for older curves it supersedes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from shared.db import Connection, execute, fetch_all, fetch_one
from worker.curves.payload import Curve

NO_PERIODS_REASON = "the curve has no periods"
# Not a named query: COPY cannot be prepared, which is how the named queries are checked.
COPY_TARGETS = "COPY price_curve_targets (event_id, resource_id, location_id) FROM STDIN"


@dataclass(frozen=True)
class StoredCurve:
    event_id: str
    # False when the curve was stored before (the handler ran again for a replay).
    new: bool
    targets: int = 0
    # Older curve → how many of its targets get a new plan because of this one.
    redispatched: dict[str, int] = field(default_factory=dict)

    @property
    def dispatch_needed(self) -> bool:
        return bool(self.targets or self.redispatched)


def store_curve(conn: Connection, event_id: str, curve: Curve, *, now: datetime) -> StoredCurve:
    inserted = fetch_one(
        conn,
        "insert_price_curve",
        {
            "event_id": event_id,
            "event_created_at": curve.created_at,
            "price_area": curve.price_area,
            "currency": curve.currency,
            "energy_unit": curve.energy_unit,
            "resolution": curve.resolution,
            "local_date": curve.local_date,
            "first_period_start": curve.first_period_start,
            "last_period_end": curve.last_period_end,
            "target_count": len(curve.targets),
        },
    )
    if inserted is None:
        return StoredCurve(event_id, new=False)
    execute(
        conn,
        "insert_price_curve_periods",
        {
            "event_id": event_id,
            "starts": [point.start for point in curve.points],
            "ends": [point.end for point in curve.points],
            "timestamps": [point.spark_timestamp for point in curve.points],
            "prices": [point.price for point in curve.points],
        },
    )
    copy_targets(conn, event_id, curve.targets)
    execute(
        conn,
        "insert_curve_dispatches",
        {
            "event_id": event_id,
            "status": "pending" if curve.points else "skipped",
            "reason": None if curve.points else NO_PERIODS_REASON,
            "now": now,
        },
    )
    redispatched: dict[str, int] = {}
    if curve.points:
        rows = fetch_all(conn, "redispatch_older_curves", {"event_id": event_id, "now": now})
        redispatched = {row["event_id"]: row["targets"] for row in rows}
    return StoredCurve(
        event_id,
        new=True,
        targets=len(curve.targets) if curve.points else 0,
        redispatched=redispatched,
    )


def copy_targets(conn: Connection, event_id: str, targets: list[tuple[str, str]]) -> None:
    """COPY rather than INSERT: a curve can name 100,000 targets."""
    with conn.cursor() as cursor, cursor.copy(COPY_TARGETS) as copy:
        for resource_id, location_id in targets:
            copy.write_row((event_id, resource_id, location_id))
