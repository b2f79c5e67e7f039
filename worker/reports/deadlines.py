"""What is left to report per month, and how long is left to do it.

A report counts only if Spark has it by the end of its event's month in the price area's zone
(worker/reports/zones.py) plus the grace (SPARK_REPORT_GRACE): the deadline. Spark does not
say whether it counts months in that zone or in UTC, so the sweeps aim at the earlier of the
two month ends, plus the grace (the aim): reports wait for readings until
SPARK_REPORT_MAX_WAIT after their event, and what is still pending SPARK_REPORT_FINAL_MARGIN
before the aim is sent then (the final sweeps).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from shared.db import Connection, fetch_all
from worker.reports.ledger import ReportRules

STATUSES = ("pending", "due", "sending", "retrying", "rejected", "sent", "missed", "empty")
OPEN_STATUSES = ("pending", "due", "sending", "retrying", "rejected")
# Targets named per month in the views; the counts are whole.
SHOWN = 20


@dataclass(frozen=True)
class Exclusion:
    """A target an event's report does not carry: left out before sending, or set aside
    after Spark refused it (`set_aside`)."""

    event_id: str
    resource_id: str
    location_id: str
    reason: str
    detail: str | None
    recorded_at: datetime

    @property
    def set_aside(self) -> bool:
        return self.reason == "refused_by_spark"

    def to_json(self) -> dict[str, Any]:
        return {
            "eventId": self.event_id,
            "resourceId": self.resource_id,
            "locationId": self.location_id,
            "reason": self.reason,
            "detail": self.detail,
            "recordedAt": self.recorded_at.isoformat(),
        }

    def describe(self) -> str:
        return f"{self.event_id}: {self.resource_id}@{self.location_id} {self.reason}" + (
            f" ({self.detail[:160]})" if self.detail else ""
        )


@dataclass(frozen=True)
class Waiting:
    """An ended report waiting for readings, and the targets holding it."""

    event_id: str
    ended_at: datetime
    due_by: datetime
    holding_count: int
    holding: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "eventId": self.event_id,
            "endedAt": self.ended_at.isoformat(),
            "dueBy": self.due_by.isoformat(),
            "holdingCount": self.holding_count,
            "holding": self.holding,
        }


@dataclass(frozen=True)
class MonthDeadline:
    month: date
    zone: str
    deadline: datetime
    aim: datetime
    final_sweeps_from: datetime
    counts: dict[str, int]
    time_left: timedelta
    waiting: int = 0
    left_out: int = 0
    set_aside: int = 0

    @property
    def open(self) -> int:
        return sum(self.counts[status] for status in OPEN_STATUSES)

    def to_json(self) -> dict[str, Any]:
        return {
            "month": f"{self.month:%Y-%m}",
            "zone": self.zone,
            "deadline": self.deadline.isoformat(),
            "aim": self.aim.isoformat(),
            "finalSweepsFrom": self.final_sweeps_from.isoformat(),
            "secondsLeft": max(self.time_left.total_seconds(), 0),
            "open": self.open,
            **self.counts,
            "waitingForReadings": self.waiting,
            "leftOutTargets": self.left_out,
            "setAsidePayloads": self.set_aside,
        }


@dataclass
class MonthView:
    """One month's reports at a glance: per zone its deadline and counts, the reports waiting
    for readings with what holds them, and the targets left out or set aside, with why."""

    month: date
    deadlines: list[MonthDeadline] = field(default_factory=list)
    waiting: list[Waiting] = field(default_factory=list)
    exclusions: list[Exclusion] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "month": f"{self.month:%Y-%m}",
            "zones": [d.to_json() for d in self.deadlines],
            "waiting": [w.to_json() for w in self.waiting],
            "leftOut": [e.to_json() for e in self.exclusions if not e.set_aside],
            "setAside": [e.to_json() for e in self.exclusions if e.set_aside],
        }


def month_deadlines(conn: Connection, rules: ReportRules, *, now: datetime) -> list[MonthDeadline]:
    """Last month, this month, and any other month with reports not final; per zone."""
    with conn.transaction():
        rows = fetch_all(conn, "report_deadlines", rules.params(now))
    return [
        MonthDeadline(
            month=row["month"],
            zone=row["zone"],
            deadline=row["deadline"],
            aim=row["aim"],
            final_sweeps_from=row["final_sweeps_from"],
            counts={status: int(row[status]) for status in STATUSES},
            time_left=row["deadline"] - now,
            waiting=int(row["waiting"]),
            left_out=int(row["left_out"]),
            set_aside=int(row["set_aside"]),
        )
        for row in rows
    ]


def month_views(
    conn: Connection,
    rules: ReportRules,
    *,
    now: datetime,
    month: date | None = None,
    shown: int = SHOWN,
) -> list[MonthView]:
    """Per month (or the given one): deadlines, what waits for readings and what is left
    out or set aside."""
    deadlines = month_deadlines(conn, rules, now=now)
    with conn.transaction():
        waiting = fetch_all(
            conn,
            "month_reports_waiting",
            rules.params(now, month=month, limit=shown, shown=shown),
        )
        excluded = fetch_all(conn, "month_report_exclusions", {"month": month, "limit": shown * 50})
    views: dict[date, MonthView] = {}

    def view(of: date) -> MonthView:
        return views.setdefault(of, MonthView(of))

    for deadline in deadlines:
        if month is None or deadline.month == month:
            view(deadline.month).deadlines.append(deadline)
    for row in waiting:
        view(row["month"]).waiting.append(
            Waiting(
                row["event_id"],
                row["last_period_end"],
                row["due_by"],
                int(row["holding_count"]),
                list(row["holding"] or []),
            )
        )
    for row in excluded:
        view(row["month"]).exclusions.append(
            Exclusion(
                row["event_id"],
                row["resource_id"],
                row["location_id"],
                row["reason"],
                row["detail"],
                row["recorded_at"],
            )
        )
    return [views[key] for key in sorted(views)]


def event_exclusions(conn: Connection, event_id: str) -> list[Exclusion]:
    with conn.transaction():
        rows = fetch_all(conn, "event_report_exclusions", {"event_id": event_id})
    return [
        Exclusion(
            row["event_id"],
            row["resource_id"],
            row["location_id"],
            row["reason"],
            row["detail"],
            row["recorded_at"],
        )
        for row in rows
    ]


def describe_time_left(left: timedelta) -> str:
    if left <= timedelta(0):
        return "deadline passed"
    days, seconds = divmod(int(left.total_seconds()), 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes = seconds // 60
    if days:
        return f"{days} d {hours} h left"
    return f"{hours} h {minutes} min left"
