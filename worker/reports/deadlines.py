"""What is left to report per month, and how long is left to do it.

A report counts only if Spark has it by the end of its event's month (SPARK_TIMEZONE); the
grace (SPARK_REPORT_GRACE) lets the month's last day still be reported after it ends. From
12:00 local on the month's last day the sweeps send everything of the month that has ended,
complete or not (the final sweeps).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from shared.db import Connection, fetch_all
from worker.reports.ledger import ReportRules

STATUSES = ("pending", "due", "sending", "retrying", "rejected", "sent", "missed", "empty")
OPEN_STATUSES = ("pending", "due", "sending", "retrying", "rejected")


@dataclass(frozen=True)
class MonthDeadline:
    month: date
    deadline: datetime
    final_sweeps_from: datetime
    counts: dict[str, int]
    time_left: timedelta

    @property
    def open(self) -> int:
        return sum(self.counts[status] for status in OPEN_STATUSES)

    def to_json(self) -> dict[str, Any]:
        return {
            "month": f"{self.month:%Y-%m}",
            "deadline": self.deadline.isoformat(),
            "finalSweepsFrom": self.final_sweeps_from.isoformat(),
            "secondsLeft": max(self.time_left.total_seconds(), 0),
            "open": self.open,
            **self.counts,
        }


def month_deadlines(conn: Connection, rules: ReportRules, *, now: datetime) -> list[MonthDeadline]:
    """Last month, this month, and any other month with reports not final."""
    with conn.transaction():
        rows = fetch_all(conn, "report_deadlines", rules.params(now))
    return [
        MonthDeadline(
            month=row["month"],
            deadline=row["deadline"],
            final_sweeps_from=row["final_sweeps_from"],
            counts={status: int(row[status]) for status in STATUSES},
            time_left=row["deadline"] - now,
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
