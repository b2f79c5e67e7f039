"""What a curve asks of each of its targets once newer curves are taken into account.

A `TargetPlan` is what a dispatcher receives and what `curves show` prints: the periods of
one curve still in force for one target, and the ones a later curve took over (with that
curve's id and delta). The rule itself lives in SQL (shared/db/curves.sql), so the plans
sent, the CLI and the reports all read the same answer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from shared.db import Connection, fetch_all, fetch_one
from shared.timeutil import isoformat_utc
from worker.curves.payload import format_time_span

Target = tuple[str, str]  # (resource_id, location_id)

PAGE_SIZE = 1000

# The plans of one batch share their few dozen period times: format each once, not per plan.
_iso = lru_cache(maxsize=4096)(isoformat_utc)


class UnknownCurve(LookupError):
    pass


@dataclass(frozen=True)
class CurveInfo:
    event_id: str
    event_created_at: datetime
    price_area: str
    currency: str | None
    energy_unit: str | None
    resolution: timedelta
    local_date: date | None
    target_count: int


@dataclass(frozen=True)
class PlanPeriod:
    start: datetime
    end: datetime
    spark_timestamp: str
    price: float


@dataclass(frozen=True)
class SupersededPeriod:
    start: datetime
    end: datetime
    spark_timestamp: str
    price: float
    superseded_by: str
    # The superseding curve's delta over this period, i.e. the one in force.
    superseding_price: float


@dataclass(frozen=True)
class TargetPlan:
    curve: CurveInfo
    resource_id: str
    location_id: str
    # In force: what this curve still asks of the target.
    periods: tuple[PlanPeriod, ...]
    superseded: tuple[SupersededPeriod, ...]
    # The dispatch decision's revision: a receiver keeps the highest one per (event, target).
    revision: int = 1

    # What dispatchers read of every kind of plan (worker.curves.dispatchers.Plan).
    content_key = "periods"

    @property
    def event_id(self) -> str:
        return self.curve.event_id

    @property
    def target_label(self) -> str:
        return f"{self.resource_id}/{self.location_id}"

    @property
    def subject(self) -> str:
        return f"curve {self.curve.event_id}"

    def shared_content(self) -> tuple[PlanPeriod, ...]:
        return self.periods

    def with_revision(self, revision: int) -> TargetPlan:
        return replace(self, revision=revision)

    def to_json(self) -> dict[str, Any]:
        """The plan as dispatchers send it: periods in force replace any earlier revision's."""
        curve = self.curve
        return {
            "kind": "curve",
            "eventId": curve.event_id,
            "revision": self.revision,
            "eventCreatedAt": _iso(curve.event_created_at),
            "resourceId": self.resource_id,
            "locationId": self.location_id,
            "priceArea": curve.price_area,
            "currency": curve.currency,
            "energyUnit": curve.energy_unit,
            "resolution": format_time_span(curve.resolution),
            "periods": [
                {
                    "start": _iso(p.start),
                    "end": _iso(p.end),
                    "timestamp": p.spark_timestamp,
                    "price": p.price,
                }
                for p in self.periods
            ],
            "supersededPeriods": [
                {"start": _iso(p.start), "end": _iso(p.end), "supersededBy": p.superseded_by}
                for p in self.superseded
            ],
        }


def load_curve(conn: Connection, event_id: str) -> CurveInfo:
    row = fetch_one(conn, "get_price_curve", {"event_id": event_id})
    if row is None:
        raise UnknownCurve(f"no price curve {event_id}")
    return CurveInfo(
        event_id=row["event_id"],
        event_created_at=row["event_created_at"],
        price_area=row["price_area"],
        currency=row["currency"],
        energy_unit=row["energy_unit"],
        resolution=row["resolution"],
        local_date=row["local_date"],
        target_count=row["target_count"],
    )


def curve_periods(conn: Connection, event_id: str) -> list[PlanPeriod]:
    rows = fetch_all(conn, "list_price_curve_periods", {"event_id": event_id})
    return [
        PlanPeriod(r["period_start"], r["period_end"], r["spark_timestamp"], r["price"])
        for r in rows
    ]


def plans_for_targets(
    conn: Connection, event_id: str, targets: Sequence[Target]
) -> list[TargetPlan]:
    """The plans of curve `event_id` for `targets` (which it must name), in their order."""
    curve = load_curve(conn, event_id)
    periods = curve_periods(conn, event_id)
    rows = fetch_all(
        conn,
        "superseded_periods_for_targets",
        {
            "event_id": event_id,
            "resource_ids": [resource_id for resource_id, _ in targets],
            "location_ids": [location_id for _, location_id in targets],
        },
    )
    taken: dict[Target, dict[datetime, tuple[str, float]]] = {}
    for row in rows:
        target = (row["resource_id"], row["location_id"])
        taken.setdefault(target, {})[row["period_start"]] = (
            row["superseded_by"],
            row["superseding_price"],
        )
    plans = []
    for resource_id, location_id in targets:
        covered = taken.get((resource_id, location_id), {})
        plans.append(
            TargetPlan(
                curve=curve,
                resource_id=resource_id,
                location_id=location_id,
                periods=tuple(p for p in periods if p.start not in covered),
                superseded=tuple(
                    SupersededPeriod(p.start, p.end, p.spark_timestamp, p.price, *covered[p.start])
                    for p in periods
                    if p.start in covered
                ),
            )
        )
    return plans


def iter_target_plans(
    conn: Connection, event_id: str, *, page_size: int = PAGE_SIZE
) -> Iterator[TargetPlan]:
    """Every target's plan of curve `event_id`, in (resource_id, location_id) order.

    Reads the targets a page at a time, so a curve with 100,000 targets costs bounded memory.
    """
    after: Target | None = None
    while True:
        rows = fetch_all(
            conn,
            "price_curve_targets_page",
            {
                "event_id": event_id,
                "after_resource_id": after[0] if after else None,
                "after_location_id": after[1] if after else None,
                "limit": page_size,
            },
        )
        if not rows:
            return
        targets = [(row["resource_id"], row["location_id"]) for row in rows]
        yield from plans_for_targets(conn, event_id, targets)
        after = targets[-1]
