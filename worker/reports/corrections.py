"""Corrected reports, opt-in (SPARK_REPORT_CORRECTIONS=replace; the default is off).

Readings that change a sent report's kWh before its deadline are otherwise only shown as late
data. Spark does not document whether a second report for the same event replaces the first
or adds to it, so corrections stay off until Volue confirms it replaces (if it adds, a
correction would count the energy twice). With `replace`, once an event's late readings have
settled (SPARK_REPORT_SETTLE after the last one) and its report built again from the readings
differs from the last one sent by more than SPARK_REPORT_CORRECTION_MIN_KWH, the full report
is sent again as a new revision (`report_corrections`), with its own idempotency key, before
the deadline. One-part reports only: a split report is not corrected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.db import Connection, fetch_all, fetch_one
from shared.spark_api import SparkClient
from worker.reports.builder import build_correction
from worker.reports.ledger import ReportRules
from worker.reports.sender import post

log = logging.getLogger(__name__)

BATCH = 100


@dataclass
class CorrectionRun:
    planned: list[str] = field(default_factory=list)
    below_minimum: int = 0
    sent: list[str] = field(default_factory=list)
    failed: int = 0
    missed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "planned": self.planned,
            "belowMinimum": self.below_minimum,
            "sent": self.sent,
            "failed": self.failed,
            "missed": self.missed,
        }


def plan_corrections(
    conn: Connection, rules: ReportRules, *, now: datetime, run: CorrectionRun
) -> None:
    """Build the corrected report of every sent report whose late readings have settled;
    due when it changes the kWh by more than the minimum."""
    with conn.transaction():
        candidates = fetch_all(conn, "correction_candidates", rules.params(now, limit=BATCH))
    for row in candidates:
        event_id: str = row["event_id"]
        with conn.transaction():
            built = build_correction(conn, event_id, rules, now=now)
            if built is None:
                continue
            change = abs(built.kwh - float(row["current_kwh"] or 0.0))
            status = "due" if change > rules.correction_min_kwh else "below_minimum"
            fetch_one(
                conn,
                "add_report_correction",
                {
                    "event_id": event_id,
                    "revision": int(row["revision"]) + 1,
                    "status": status,
                    "body": built.body,
                    "kwh": built.kwh,
                    "previous_kwh": row["current_kwh"],
                    "late_until": row["last_recorded"],
                    "now": now,
                },
            )
        if status == "due":
            run.planned.append(event_id)
            log.info("event %s: corrected report planned (%.6f kWh change)", event_id, change)
        else:
            run.below_minimum += 1


def send_corrections(
    conn: Connection,
    client: SparkClient,
    rules: ReportRules,
    *,
    now: datetime,
    run: CorrectionRun,
) -> None:
    """Send the due corrections once each; a failed attempt is tried again at the next
    sweep with the same key, a refusal is kept, and none goes past its deadline."""
    with conn.transaction():
        run.missed += len(fetch_all(conn, "miss_overdue_corrections", rules.params(now)))
        due = fetch_all(conn, "due_corrections", {"limit": BATCH})
    for row in due:
        answer = post(client, row["body"], row["idempotency_key"])
        status = {"accepted": "sent", "rejected": "rejected"}.get(answer.outcome, "due")
        with conn.transaction():
            fetch_one(
                conn,
                "record_correction_attempt",
                {
                    "event_id": row["event_id"],
                    "revision": row["revision"],
                    "status": status,
                    "error": answer.error,
                    "response": answer.response,
                    "spark_report_id": answer.spark_report_id,
                    "now": now,
                },
            )
        if status == "sent":
            run.sent.append(row["event_id"])
        else:
            run.failed += 1
            log.warning(
                "event %s: corrected report revision %s %s: %s",
                row["event_id"],
                row["revision"],
                answer.outcome,
                answer.response or answer.error,
            )


def correct(
    conn: Connection,
    client: SparkClient,
    rules: ReportRules,
    *,
    now: datetime,
) -> CorrectionRun | None:
    """Plan and send corrections when SPARK_REPORT_CORRECTIONS=replace; None when off."""
    if rules.corrections != "replace":
        return None
    run = CorrectionRun()
    plan_corrections(conn, rules, now=now, run=run)
    send_corrections(conn, client, rules, now=now, run=run)
    return run
