"""LPC caps to the control system: plans of kind `lpc`, sent by the dispatch runs of
worker/curves/dispatch.py (same dispatchers, retries, leases and decision records as curve
plans; decisions in lpc_dispatches).

Planned in the event's transaction, with its acknowledgement, for every target our registry
knows (the others are declined without asking). The control system's answer decides the
target's acknowledgement: accepted ('sent') is acknowledged; refused, or failed after the
retries, is declined. Once every plan of an event has an answer its acknowledgement is due
at once (the dispatch task queues it); otherwise at its deadline (worker.lpc.ack).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from psycopg.rows import DictRow

from shared.db import Connection, execute, fetch_all, fetch_one
from shared.timeutil import isoformat_utc
from worker.curves.dispatch import Decision
from worker.curves.dispatchers import Plan
from worker.curves.payload import format_time_span
from worker.lpc.payload import Cap

NOTIFICATION_TYPES = {"resource": "ResourceLPCRequested", "location": "LocationLPCRequested"}

_iso = lru_cache(maxsize=4096)(isoformat_utc)


@dataclass(frozen=True)
class LpcPlan:
    """One target's caps, as the control system is told them."""

    event_id: str
    # 'resource' or 'location'
    event_kind: str
    event_created_at: datetime | None
    resource_id: str | None
    location_id: str
    meter_point_id: str
    resolution: timedelta
    caps: tuple[Cap, ...]
    revision: int = 1

    content_key = "caps"

    @property
    def target_label(self) -> str:
        return "/".join(p for p in (self.resource_id, self.location_id, self.meter_point_id) if p)

    @property
    def subject(self) -> str:
        return f"LPC event {self.event_id}"

    def shared_content(self) -> tuple[Cap, ...]:
        return self.caps

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "lpc",
            "eventId": self.event_id,
            "notificationType": NOTIFICATION_TYPES[self.event_kind],
            "revision": self.revision,
            "eventCreatedAt": _iso(self.event_created_at) if self.event_created_at else None,
            # None for a location's target (behind the meter).
            "resourceId": self.resource_id,
            "locationId": self.location_id,
            "meterPointId": self.meter_point_id,
            "resolution": format_time_span(self.resolution),
            # An instantaneous maximum over [start, end), not an average.
            "caps": [
                {
                    "start": _iso(cap.start),
                    "end": _iso(cap.end),
                    "timestamp": cap.spark_timestamp,
                    "maxPowerInKiloWatts": cap.max_kw,
                }
                for cap in self.caps
            ],
        }


def plan_dispatches(conn: Connection, event_id: str, *, now: datetime) -> None:
    """In the event's transaction: a pending plan for every target our registry knows."""
    execute(conn, "insert_lpc_dispatches", {"event_id": event_id, "now": now})


def make_answered_acks_due(conn: Connection, event_ids: list[str], *, now: datetime) -> list[str]:
    """The events among `event_ids` whose every plan has an answer: their acknowledgements,
    not built yet, become due now. Returns those events."""
    rows = fetch_all(conn, "make_answered_lpc_acks_due", {"event_ids": event_ids, "now": now})
    return [row["event_id"] for row in rows]


class LpcPlans:
    """The `lpc` kind of plan for worker.curves.dispatch.run_dispatch."""

    name = "lpc"

    def claim(
        self, conn: Connection, *, now: datetime, lease_until: datetime, limit: int, dispatcher: str
    ) -> list[DictRow]:
        return fetch_all(
            conn,
            "claim_due_lpc_dispatches",
            {"now": now, "lease_until": lease_until, "limit": limit, "dispatcher": dispatcher},
        )

    def plans(self, conn: Connection, claimed: list[DictRow]) -> list[tuple[DictRow, Plan | str]]:
        rows = fetch_all(
            conn,
            "lpc_plans",
            {
                "event_ids": [row["event_id"] for row in claimed],
                "target_nos": [row["target_no"] for row in claimed],
            },
        )
        found = {(row["event_id"], row["target_no"]): row for row in rows}
        planned: list[tuple[DictRow, Plan | str]] = []
        for row in claimed:
            target = found[(row["event_id"], row["target_no"])]
            caps = tuple(
                Cap(start, end, timestamp, max_kw)
                for start, end, timestamp, max_kw in zip(
                    target["starts"], target["ends"], target["timestamps"], target["max_kws"],
                    strict=True,
                )
                # A target without caps joins none: one row of NULLs.
                if start is not None
            )  # fmt: skip
            plan = LpcPlan(
                event_id=target["event_id"],
                event_kind=target["kind"],
                event_created_at=target["event_created_at"],
                resource_id=target["resource_id"],
                location_id=target["location_id"],
                meter_point_id=target["meter_point_id"],
                resolution=target["resolution"],
                caps=caps,
                revision=row["revision"],
            )
            planned.append((row, plan))
        return planned

    def record(self, conn: Connection, decisions: list[Decision], now: datetime) -> list[str]:
        execute(
            conn,
            "finish_lpc_dispatches",
            {
                "now": now,
                "event_ids": [d.event_id for d in decisions],
                "target_nos": [d.row["target_no"] for d in decisions],
                "revisions": [d.row["revision"] for d in decisions],
                "statuses": [d.status for d in decisions],
                "reasons": [d.reason for d in decisions],
                "next_attempts": [d.next_attempt_at for d in decisions],
            },
        )
        answered = sorted({d.event_id for d in decisions if d.status in ("sent", "failed")})
        return make_answered_acks_due(conn, answered, now=now) if answered else []

    def next_due(self, conn: Connection) -> datetime | None:
        row = fetch_one(conn, "next_lpc_dispatch_due")
        return row["due_at"] if row else None

    def target(self, row: DictRow) -> str:
        return f"#{row['target_no']}"


LPC_PLANS = LpcPlans()
