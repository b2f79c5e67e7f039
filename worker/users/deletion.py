"""Deleting a user: now, or once the month is safely over at Spark.

A user deleted during a month is not compensated for that month (Spark's FAQ): what was
reported for it counts for nothing. So `spark-partner users delete` first says what is lost,
and `--at-month-end` offers the alternative: `delete_after_month` is set to the current local
month (SPARK_TIMEZONE), and `run_due_deletions` (beat, hourly) deletes the user only after
that month's deadline, the end of the month in each of the user's price areas' zones, in
SPARK_TIMEZONE and in UTC, whichever is last, plus SPARK_REPORT_GRACE (Spark may count the
month until then), and once none of its reports that concern the user is still on its way.

Deleting calls `DELETE /users/{id}` (404: already gone) and sets `deleted_at`; the rows stay
for audit, and lists leave deleted users out. Every function takes `now`, so tests decide
what time it is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.db import Connection, execute, fetch_all, fetch_one
from shared.spark_api import SparkClient, SparkError, SparkHTTPError, SparkNotFound
from worker.users.spark_calls import describe, is_fatal, path_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonthReports:
    # kWh in the user's reports for the month that Spark accepted.
    kwh: float
    # Reports for the month still on their way to Spark.
    pending: int


def local_month(now: datetime, tz: ZoneInfo) -> date:
    """The first day of the month `now` falls in, in `tz`."""
    return now.astimezone(tz).date().replace(day=1)


def month_name(month: date) -> str:
    return f"{month:%B %Y}"


def month_reports(conn: Connection, user_id: str, month: date) -> MonthReports:
    """What the user's reports for the local `month` amount to: kWh of the user's payloads in
    reports Spark has accepted, and reports still on their way (pending, due, sending,
    retrying, or rejected and waiting for a fix) that concern the user. Missed and empty
    reports are settled: they wait for nothing.

    Before a report is built, it concerns the user when its curve targets one of the user's
    resources; once built (possibly split into parts), when it carries one of their payloads.
    The query belongs to the reports ledger (shared/db/reports.sql).
    """
    row = fetch_one(conn, "month_reports_of_user", {"user_id": user_id, "month": month})
    if row is None:
        return MonthReports(kwh=0.0, pending=0)
    return MonthReports(kwh=float(row["kwh"]), pending=int(row["pending"]))


@dataclass(frozen=True)
class DeletionPlan:
    """What deleting a user costs, as the CLI explains it before anything happens."""

    user_id: str
    month: date
    timezone: str
    reports: MonthReports
    at_month_end: bool

    def explain(self) -> list[str]:
        month = month_name(self.month)
        if self.at_month_end:
            return [
                f"User {self.user_id} will be deleted after {month}'s deadline at Spark (its "
                "end in the user's price areas and in UTC, plus the grace) once its reports "
                f"are sent ({self.timezone}; {self.reports.pending} report(s) pending now).",
                f"Until then the user stays in the program and is compensated for {month}.",
            ]
        return [
            f"Deleting user {self.user_id} now: the user is not compensated for {month} "
            f"({self.timezone}), the current month.",
            f"Lost with it: {self.reports.kwh:g} kWh reported for {month} and "
            f"{self.reports.pending} pending report(s).",
            f"--at-month-end instead deletes the user after {month}'s deadline, once its "
            "reports are sent.",
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "userId": self.user_id,
            "month": f"{self.month:%Y-%m}",
            "monthName": month_name(self.month),
            "timezone": self.timezone,
            "reportedKwh": self.reports.kwh,
            "pendingReports": self.reports.pending,
            "atMonthEnd": self.at_month_end,
            "warning": self.explain(),
        }


def plan_deletion(
    conn: Connection, user_id: str, *, now: datetime, tz: ZoneInfo, at_month_end: bool
) -> DeletionPlan:
    month = local_month(now, tz)
    with conn.transaction():
        reports = month_reports(conn, user_id, month)
    return DeletionPlan(user_id, month, str(tz), reports, at_month_end)


@dataclass(frozen=True)
class DeletionResult:
    user_id: str
    # "deleted", "waiting" (the month's deadline has not passed, or reports are pending) or
    # "failed"
    outcome: str
    month: date | None = None
    deleted_at: datetime | None = None
    pending: int = 0
    error: str | None = None
    # The month's last deadline concerning the user (deferred deletions).
    deadline: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "userId": self.user_id,
            "outcome": self.outcome,
            "month": None if self.month is None else f"{self.month:%Y-%m}",
            "deletedAt": self.deleted_at,
            "pendingReports": self.pending,
            "deadline": None if self.deadline is None else self.deadline.isoformat(),
            "error": self.error,
        }


def delete_user(
    conn: Connection, client: SparkClient, user_id: str, *, now: datetime
) -> DeletionResult:
    """Delete at Spark, then in the registry (`deleted_at`).

    Spark refusing (4xx) is recorded in `deletion_error`; Spark being unusable raises.
    """
    try:
        client.request("DELETE", f"/users/{path_id(user_id)}")
    except SparkNotFound:
        # Already gone at Spark (or never pushed): the registry catches up.
        pass
    except SparkHTTPError as exc:
        if is_fatal(exc):
            raise
        error = describe(exc)
        with conn.transaction():
            execute(conn, "mark_user_deletion_failed", {"user_id": user_id, "error": error})
        return DeletionResult(user_id, "failed", error=error)
    with conn.transaction():
        row = fetch_one(conn, "mark_user_deleted", {"user_id": user_id, "now": now})
    deleted_at = row["deleted_at"] if row else None
    log.info("deleted user %s", user_id)
    return DeletionResult(user_id, "deleted", deleted_at=deleted_at)


def schedule_deletion(conn: Connection, user_id: str, *, now: datetime, tz: ZoneInfo) -> date:
    """Mark the user for deletion after the current local month; returns that month."""
    month = local_month(now, tz)
    with conn.transaction():
        row = fetch_one(conn, "schedule_user_deletion", {"user_id": user_id, "month": month})
    if row is None:
        raise LookupError(f"no user {user_id} (or already deleted)")
    scheduled: date = row["delete_after_month"]
    return scheduled


def cancel_deletion(conn: Connection, user_id: str) -> bool:
    """Drop a scheduled deletion; False when none was scheduled."""
    with conn.transaction():
        return fetch_one(conn, "cancel_user_deletion", {"user_id": user_id}) is not None


def month_deadline(
    conn: Connection, user_id: str, month: date, *, tz: ZoneInfo, grace: timedelta
) -> datetime:
    """The last deadline of `month` that concerns the user: the month's end in the zones of
    the user's reports (its price areas), in `tz` and in UTC, whichever is last, plus the
    grace. The query belongs to the reports ledger (shared/db/reports.sql)."""
    row = fetch_one(
        conn,
        "user_month_deadline",
        {"user_id": user_id, "month": month, "tz": str(tz), "grace": grace},
    )
    assert row is not None
    deadline: datetime = row["deadline"]
    return deadline


def run_due_deletions(
    conn: Connection,
    client: SparkClient,
    *,
    now: datetime,
    tz: ZoneInfo,
    grace: timedelta = timedelta(hours=24),
) -> list[DeletionResult]:
    """Delete users whose scheduled month is safely over: its deadline (month_deadline) has
    passed and none of its reports concerning the user is still on its way.

    A user whose month is not over yet at Spark, or with pending reports, waits for the next
    run. Spark being unusable stops the run; the users left are still scheduled, so the next
    run picks them up.
    """
    current = local_month(now, tz)
    with conn.transaction():
        due = fetch_all(conn, "users_due_for_deletion", {"current_month": current})
    results: list[DeletionResult] = []
    for row in due:
        user_id: str = row["user_id"]
        month: date = row["delete_after_month"]
        with conn.transaction():
            deadline = month_deadline(conn, user_id, month, tz=tz, grace=grace)
            reports = month_reports(conn, user_id, month)
        if now < deadline or reports.pending:
            results.append(
                DeletionResult(
                    user_id, "waiting", month, pending=reports.pending, deadline=deadline
                )
            )
            continue
        try:
            result = delete_user(conn, client, user_id, now=now)
        except SparkError as exc:
            log.warning("month-end deletions stopped at user %s: %s", user_id, exc)
            results.append(DeletionResult(user_id, "failed", month, error=str(exc)))
            break
        results.append(
            DeletionResult(
                user_id,
                result.outcome,
                month,
                result.deleted_at,
                error=result.error,
                deadline=deadline,
            )
        )
    return results
