"""The reports ledger and its sweep. Beat only triggers; PostgreSQL decides.

A sweep, with the caller's `now`:

1. plans a pending report for every curve that has none yet;
2. takes back reports left 'sending' past their lease (the sender died): they go to
   'retrying' with the attempt counted as ambiguous (see the policy in `worker.reports`);
3. marks 'missed' whatever is not sent by its deadline (the end of the event's local month
   plus SPARK_REPORT_GRACE), and alerts each once;
4. makes due what is pending and ready: settled and covered by readings, or, from 12:00 on
   the month's last day (the final sweeps), everything of the month whose event has ended.

Every step is one conditional statement, so a sweep that runs late, twice, or in two
processes at once ends in the same state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.config import Settings
from shared.db import Connection, fetch_all, fetch_one

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportRules:
    """The settings reports follow (from SPARK_* settings; tests build their own)."""

    timezone: ZoneInfo
    grace: timedelta = timedelta(hours=24)
    settle: timedelta = timedelta(hours=2)
    points_field: str = "points"
    max_payloads: int = 10_000
    rate_limit: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ReportRules:
        return cls(
            timezone=settings.timezone,
            grace=settings.report_grace,
            settle=settings.report_settle,
            points_field=settings.report_points_field,
            max_payloads=settings.report_max_payloads,
            rate_limit=settings.spark_rate_limit,
        )

    def params(self, now: datetime, **extra: Any) -> dict[str, Any]:
        return {
            "now": now,
            "tz": str(self.timezone),
            "grace": self.grace,
            "settle": self.settle,
            **extra,
        }


@dataclass
class SweepResult:
    planned: int = 0
    leases_expired: int = 0
    missed: int = 0
    alerted: list[str] = field(default_factory=list)
    due: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "planned": self.planned,
            "leasesExpired": self.leases_expired,
            "missed": self.missed,
            "alerted": self.alerted,
            "due": self.due,
        }


def sweep(conn: Connection, rules: ReportRules, *, now: datetime) -> SweepResult:
    result = SweepResult()
    params = rules.params(now)
    with conn.transaction():
        result.planned = len(fetch_all(conn, "plan_reports", params))
    with conn.transaction():
        expired = fetch_all(conn, "expire_report_leases", params)
    for row in expired:
        log.warning(
            "report %s (event %s part %s): attempt %s was cut off mid-send; "
            "it is ambiguous and will be sent again",
            row["id"],
            row["event_id"],
            row["part"],
            row["attempts"],
        )
    result.leases_expired = len(expired)
    with conn.transaction():
        result.missed = len(fetch_all(conn, "miss_overdue_reports", params))
        alerts = fetch_all(conn, "claim_missed_alerts", params)
    for row in alerts:
        # The alert: an error every log pipeline picks up, once per report.
        log.error(
            "ALERT report MISSED: event %s part %s/%s of %s was not sent by its deadline %s "
            "(%s attempt(s); last error: %s)",
            row["event_id"],
            row["part"],
            row["parts"],
            f"{row['month']:%Y-%m}",
            row["deadline"].isoformat(),
            row["attempts"],
            row["rejection"] or row["last_error"] or "none: it was never due",
            extra={"alert": "report_missed", "event_id": row["event_id"]},
        )
        result.alerted.append(row["event_id"])
    with conn.transaction():
        result.due = len(fetch_all(conn, "promote_due_reports", params))
    return result


def waiting_for_readings(conn: Connection, rules: ReportRules, *, now: datetime) -> bool:
    """Whether a pending report has settled, so that new readings may make it due."""
    with conn.transaction():
        row = fetch_one(conn, "reports_waiting_for_readings", rules.params(now))
    return bool(row and row["waiting"])


def next_attempt_at(conn: Connection) -> datetime | None:
    with conn.transaction():
        row = fetch_one(conn, "next_report_attempt_at")
    return None if row is None else row["next_attempt_at"]


class NoReport(LookupError):
    pass


class AlreadySent(RuntimeError):
    pass


@dataclass(frozen=True)
class MadeDue:
    event_id: str
    parts: list[int]
    rebuilt: bool


def make_event_due(
    conn: Connection, event_id: str, rules: ReportRules, *, now: datetime
) -> MadeDue:
    """`reports send --event`: the event's unsent reports are due now (planned first, so a
    curve that just came needs no sweep).

    A rejected report is built again when none of the event's reports has reached Spark (or
    may have): a fix in the readings or the registry then shows in the new body. Otherwise
    the rejected part is sent again as it was.
    """
    with conn.transaction():
        fetch_all(conn, "plan_reports", rules.params(now))
        rows = fetch_all(conn, "event_report_states", {"event_id": event_id})
        if not rows:
            raise NoReport(f"no report for event {event_id} (is it a price curve with targets?)")
        statuses = {row["status"] for row in rows}
        if statuses <= {"sent", "empty"}:
            raise AlreadySent(
                f"the report for event {event_id} was sent already; readings that came "
                "later are recorded as late data, and it is not sent again"
            )
        reached = any(
            row["status"] in ("sent", "sending") or row["ambiguous_attempts"] for row in rows
        )
        if "rejected" in statuses and not reached:
            fetch_all(conn, "reset_event_reports", {"event_id": event_id, "now": now})
            return MadeDue(event_id, [1], rebuilt=True)
        due = fetch_all(conn, "make_event_reports_due", {"event_id": event_id, "now": now})
    return MadeDue(event_id, sorted(row["part"] for row in due), rebuilt=False)
