"""The reports ledger and its sweep. Beat only triggers; PostgreSQL decides.

A sweep, with the caller's `now`:

1. plans a pending report for every curve, and every resource or location LPC event (kind
   lpc_energy, worker/reports/lpc_energy.py), that has none yet;
2. takes back reports left 'sending' past their lease (the sender died): they go to
   'retrying' with the attempt counted as ambiguous (see the policy in `worker.reports`);
3. marks 'missed' whatever is not sent by its deadline (the end of the event's month in its
   price area's zone, plus SPARK_REPORT_GRACE), and alerts each once;
4. makes due what is pending and ready: settled and either covered by readings or
   SPARK_REPORT_MAX_WAIT past the event's end, or, SPARK_REPORT_FINAL_MARGIN before the aim
   of its month (the earlier of the zone's and UTC's month end, plus the grace; the final
   sweeps), whatever has ended.

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
from worker.reports.zones import zone_params

log = logging.getLogger(__name__)

# The ledger's energy reports, which this module and the sender move on: a price curve's
# ('energy') and an LPC event's after the event ('lpc_energy'). Rows of kind 'lpc_ack' (an
# LPC event's acknowledgement) have no month and are left to their own sender and sweep.
ENERGY_KINDS = ("energy", "lpc_energy")


@dataclass(frozen=True)
class ReportRules:
    """The settings reports follow (from SPARK_* settings; tests build their own)."""

    timezone: ZoneInfo
    grace: timedelta = timedelta(hours=24)
    settle: timedelta = timedelta(hours=2)
    max_wait: timedelta = timedelta(hours=24)
    final_margin: timedelta = timedelta(hours=6)
    corrections: str = "off"
    correction_min_kwh: float = 1.0
    points_field: str = "points"
    max_payloads: int = 10_000

    @classmethod
    def from_settings(cls, settings: Settings) -> ReportRules:
        return cls(
            timezone=settings.timezone,
            grace=settings.report_grace,
            settle=settings.report_settle,
            max_wait=settings.report_max_wait,
            final_margin=settings.report_final_margin,
            corrections=settings.report_corrections,
            correction_min_kwh=settings.report_correction_min_kwh,
            points_field=settings.report_points_field,
            max_payloads=settings.report_max_payloads,
        )

    def params(self, now: datetime, **extra: Any) -> dict[str, Any]:
        return {
            "now": now,
            "tz": str(self.timezone),
            "grace": self.grace,
            "settle": self.settle,
            "max_wait": self.max_wait,
            "final_margin": self.final_margin,
            **zone_params(),
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


def plan(conn: Connection, params: dict[str, Any]) -> int:
    """A pending report for each price curve, and each resource or location LPC event, that
    has none yet, in the caller's transaction; how many were planned."""
    return len(fetch_all(conn, "plan_reports", params)) + len(
        fetch_all(conn, "plan_lpc_energy_reports", params)
    )


def sweep(conn: Connection, rules: ReportRules, *, now: datetime) -> SweepResult:
    result = SweepResult()
    params = rules.params(now)
    with conn.transaction():
        result.planned = plan(conn, params)
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
            "ALERT report MISSED: event %s part %s/%s of %s (%s) was not sent by its deadline %s "
            "(%s attempt(s); last error: %s)",
            row["event_id"],
            row["part"],
            row["parts"],
            f"{row['month']:%Y-%m}",
            row["zone"],
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


class PastDeadline(RuntimeError):
    """The event's deadline has passed: its open reports were marked missed."""

    def __init__(self, event_id: str, deadline: datetime, zone: str) -> None:
        super().__init__(
            f"the deadline of event {event_id} passed at {deadline.isoformat()} "
            f"(end of its month in {zone} plus the grace): its report is marked missed "
            "and not sent"
        )
        self.deadline = deadline


class NotEnded(RuntimeError):
    """The event has not ended: the energy of its last periods is not known yet."""

    def __init__(self, event_id: str, ends_at: datetime, unknown: list[datetime]) -> None:
        super().__init__(
            f"event {event_id} has not ended (its last period ends {ends_at.isoformat()}): "
            f"{len(unknown)} of its periods are not known yet; give --before-end to send "
            "what is known now, and lose the rest"
        )
        self.unknown = unknown


@dataclass(frozen=True)
class MadeDue:
    event_id: str
    parts: list[int]
    rebuilt: bool
    deadline: datetime | None = None
    # The starts of the periods not over yet when sent before the event's end.
    unknown_periods: list[datetime] = field(default_factory=list)


def make_event_due(
    conn: Connection,
    event_id: str,
    rules: ReportRules,
    *,
    now: datetime,
    before_end: bool = False,
) -> MadeDue:
    """`reports send --event`: the event's unsent reports are due now (planned first, so a
    curve that just came needs no sweep).

    Past its deadline the event's open reports are marked missed (PastDeadline). Before its
    end it is refused (NotEnded) unless `before_end`: its last periods' energy is unknown.
    A rejected report is built again when none of the event's reports has reached Spark (or
    may have): a fix in the readings or the registry then shows in the new body. Otherwise
    the rejected part is sent again as it was.
    """
    with conn.transaction():
        plan(conn, rules.params(now))
        rows = fetch_all(conn, "event_report_states", {"event_id": event_id})
        if not rows:
            raise NoReport(
                f"no report for event {event_id} (is it a price curve with targets, or a "
                "resource or location LPC event with caps?)"
            )
        statuses = {row["status"] for row in rows}
        if statuses <= {"sent", "empty"}:
            raise AlreadySent(
                f"the report for event {event_id} was sent already; readings that came "
                "later are recorded as late data, and it is not sent again"
            )
        timing = fetch_one(conn, "event_report_timing", rules.params(now, event_id=event_id))
        assert timing is not None
        past = now >= timing["deadline"] or statuses <= {"missed", "sent", "empty"}
        if past:
            fetch_all(conn, "miss_event_reports", {"event_id": event_id, "now": now})
    if past:
        # Raised once the transaction marking them missed has committed.
        raise PastDeadline(event_id, timing["deadline"], timing["zone"])
    with conn.transaction():
        unknown: list[datetime] = list(timing["unknown_periods"])
        if unknown and not before_end:
            raise NotEnded(event_id, timing["last_period_end"], unknown)
        reached = any(
            row["status"] in ("sent", "sending") or row["ambiguous_attempts"] for row in rows
        )
        if "rejected" in statuses and not reached:
            fetch_all(conn, "reset_event_reports", {"event_id": event_id, "now": now})
            return MadeDue(event_id, [1], True, timing["deadline"], unknown)
        due = fetch_all(conn, "make_event_reports_due", {"event_id": event_id, "now": now})
    return MadeDue(event_id, sorted(row["part"] for row in due), False, timing["deadline"], unknown)
