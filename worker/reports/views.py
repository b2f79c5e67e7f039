"""What `reports show` tells about one event's report(s), assembled from the ledger: each
part with its body and every attempt with Spark's answer, the targets left out or set aside
with why, and the readings that came after the body that was (or will be) sent was built."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from shared.db import Connection, fetch_all, fetch_one
from worker.reports.deadlines import event_exclusions
from worker.reports.ledger import ReportRules

LATE_SHOWN = 100


def report_json(row: Any) -> dict[str, Any]:
    """A ledger row (list_reports) as the CLI shows it."""
    return {
        "eventId": row["event_id"],
        # energy: a price curve's; lpc_energy: an LPC event's, after the event.
        "kind": row["kind"],
        "part": row["part"],
        "parts": row["parts"],
        "month": f"{row['month']:%Y-%m}",
        "zone": row["zone"],
        "status": row["status"],
        "dueReason": row["due_reason"],
        "dueAt": row["due_at"],
        "deadline": row["deadline"],
        "aim": row["aim"],
        "firstPeriodStart": row["first_period_start"],
        "lastPeriodEnd": row["last_period_end"],
        "payloads": row["payload_count"],
        "points": row["point_count"],
        "kWh": row["total_kwh"],
        "attempts": row["attempts"],
        "ambiguousAttempts": row["ambiguous_attempts"],
        "acceptedAttempts": row["accepted_attempts"],
        "nextAttemptAt": row["next_attempt_at"],
        "lastError": row["last_error"],
        "sparkReportId": row["spark_report_id"],
        "sparkCreatedAt": row["spark_created_at"],
        "sentAt": row["sent_at"],
        "rejectedStatus": row["rejected_status"],
        "rejection": row["rejection"],
        "missedAt": row["missed_at"],
        "alertedAt": row["alerted_at"],
        "lateReadings": row["late_readings"],
    }


def _attempt_json(attempt: Any) -> dict[str, Any]:
    return {
        "attempt": attempt["attempt"],
        "startedAt": attempt["started_at"],
        "finishedAt": attempt["finished_at"],
        "outcome": attempt["outcome"],
        "httpStatus": attempt["http_status"],
        "error": attempt["error"],
        "response": attempt["response"],
        "sparkReportId": attempt["spark_report_id"],
        "retryAfterSeconds": attempt["retry_after_seconds"],
    }


def _late_json(late: Any, rows: list[Any], unrecorded: list[Any]) -> dict[str, Any]:
    times = [r["recorded_at"] for r in unrecorded]
    if late and late["readings"]:
        times += [late["first_recorded_at"], late["last_recorded_at"]]
    rows = [*rows, *unrecorded]
    return {
        "readings": (late["readings"] if late else 0) + len(unrecorded),
        "kWhInEvent": (late["kwh_in_event"] if late else 0.0)
        + sum(r["kwh_in_event"] for r in unrecorded),
        "firstRecordedAt": min(times, default=None),
        "lastRecordedAt": max(times, default=None),
        "shown": [
            {
                "resourceId": r["resource_id"],
                "locationId": r["location_id"],
                "start": r["start_at"],
                "end": r["end_at"],
                "kWh": r["kwh"],
                "kWhInEvent": r["kwh_in_event"],
                "change": r["change"],
                "batchId": r["batch_id"],
                "recordedAt": r["recorded_at"],
            }
            for r in rows
        ],
    }


def event_view(
    conn: Connection, event_id: str, rules: ReportRules, *, now: datetime
) -> dict[str, Any] | None:
    """The event's report(s) as `reports show` prints them; None when it has none."""
    with conn.transaction():
        rows = fetch_all(
            conn,
            "list_reports",
            rules.params(now, status=None, month=None, event_id=event_id, limit=1000),
        )
        if not rows:
            return None
        bodies = {
            row["part"]: row
            for row in fetch_all(conn, "event_report_bodies", {"event_id": event_id})
        }
        attempts = fetch_all(
            conn, "list_report_attempts", {"report_ids": [row["id"] for row in rows]}
        )
        late = fetch_one(conn, "late_readings_summary", {"event_id": event_id})
        late_rows = fetch_all(
            conn, "late_readings_of_event", {"event_id": event_id, "limit": LATE_SHOWN}
        )
        # Whatever state the report went through: readings stored while it was rejected
        # and in no body that was sent count as late too.
        unrecorded = fetch_all(
            conn, "readings_after_sent_body", {"event_id": event_id, "limit": LATE_SHOWN}
        )
        revisions = fetch_all(conn, "event_report_corrections", {"event_id": event_id})
    exclusions = event_exclusions(conn, event_id)
    by_report: dict[int, list[dict[str, Any]]] = {}
    for attempt in attempts:
        by_report.setdefault(attempt["report_id"], []).append(_attempt_json(attempt))
    items = []
    for row in rows:
        item = report_json(row)
        body_row = bodies.get(row["part"])
        body = body_row["body"] if body_row else None
        item["idempotencyKey"] = body_row["idempotency_key"] if body_row else None
        item["builtAt"] = body_row["built_at"] if body_row else None
        item["body"] = json.loads(body) if body is not None else None
        item["attemptLog"] = by_report.get(row["id"], [])
        items.append(item)
    return {
        "eventId": event_id,
        "reports": items,
        "leftOut": [e.to_json() for e in exclusions if not e.set_aside],
        "setAside": [e.to_json() for e in exclusions if e.set_aside],
        "late": _late_json(late, late_rows, unrecorded),
        "corrections": [
            {
                "revision": r["revision"],
                "status": r["status"],
                "kWh": r["total_kwh"],
                "previousKWh": r["previous_kwh"],
                "lateUntil": r["late_until"],
                "builtAt": r["built_at"],
                "attempts": r["attempts"],
                "lastError": r["last_error"],
                "response": r["response"],
                "sparkReportId": r["spark_report_id"],
                "sentAt": r["sent_at"],
                "idempotencyKey": r["idempotency_key"],
            }
            for r in revisions
        ],
    }
