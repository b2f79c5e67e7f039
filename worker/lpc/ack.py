"""LPC acknowledgements: one report per resource or location event, of kind 'lpc_ack' in the
reports ledger (claimed, attempted, recorded and leased by the ledger's own queries).

Planned in the event's transaction with the caps' plans (worker.lpc.dispatch). Spark should
have it by `due_by` (`ack_due_by`: the arrival plus SPARK_LPC_ACK_WITHIN, no later than the
first period's start; at once for an event that came late), so it is due a little before
(`send_by`), and sooner, as soon as every plan has the control system's answer. Sent by a
follow-up task (queued for then, and by the dispatch run that recorded the last answer) and by
the sweep for anything due that a lost task left behind. Sending reuses the reports sender
(worker/reports/sender.py): its POST (one request, no client retries, the answer classified
as accepted / rejected / failed / unknown) and its backoff; the Spark client paces the call
(SPARK_RATE_LIMIT). The body is built at the first attempt and kept, so a retry after a lost
answer is the same report under the same Idempotency-Key.

The body is built from the answers at hand: a target whose cap the control system accepted is
acknowledged; one it refused, one still unanswered, and one our registry does not know (never
dispatched) are declined. At an in-time event's deadline the plans still waiting for a retry
are declined for good (not sent afterwards); a late event's go on being sent, since its
acknowledgement did not wait for them.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared import logging as logs
from shared.db import Connection, execute, fetch_all, fetch_one, record_with_retries
from shared.spark_api import SparkClient
from worker.reports.sender import LEASE, Answer, backoff, finish_attempt, post

log = logging.getLogger(__name__)

# An acknowledgement not accepted this long after its event arrived is alerted, once.
ALERT_AFTER = timedelta(minutes=15)
# How long before its due_by an acknowledgement still waiting for answers is sent: room for
# the task to start and the POST to be answered, so it reaches Spark by due_by.
SEND_LEAD = timedelta(seconds=5)

KIND = "lpc_ack"

PAYLOAD_TYPES = {
    "resource": ("ResourceLPCAcknowledgement", ("meterPointId", "locationId", "resourceId")),
    "location": ("LocationLPCAcknowledgement", ("locationId", "meterPointId")),
}


def ack_due_by(
    received_at: datetime, first_period_start: datetime | None, within: timedelta
) -> datetime:
    """The latest an event's acknowledgement goes: `within` after its arrival, but before its
    first period begins (Spark then knows in time what to count on), and at once when that
    has begun already."""
    due_by = received_at + within
    if first_period_start is not None:
        due_by = min(due_by, first_period_start)
    return max(due_by, received_at)


def send_by(received_at: datetime, due_by: datetime) -> datetime:
    """When the acknowledgement goes if answers are still missing: SEND_LEAD before `due_by`
    (at most a fifth of the wait), so that Spark has it by then."""
    lead = min(SEND_LEAD, (due_by - received_at) / 5)
    return due_by - lead


def plan_ack(conn: Connection, event_id: str, *, received_at: datetime, due_by: datetime) -> bool:
    """In the event's transaction: the event's acknowledgement, due at `send_by` (sooner
    once every cap has an answer); False when it was planned before (the event came again)."""
    row = fetch_one(
        conn,
        "insert_lpc_ack",
        {
            "event_id": event_id,
            "due_by": due_by,
            "send_at": send_by(received_at, due_by),
            "now": received_at,
        },
    )
    return row is not None


@dataclass(frozen=True)
class AckResult:
    event_id: str
    attempt: int
    # sent | rejected | retrying | lost (the row moved on while this attempt ran)
    status: str
    retry_at: datetime | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "eventId": self.event_id,
            "attempt": self.attempt,
            "status": self.status,
            "retryAt": None if self.retry_at is None else self.retry_at.isoformat(),
            "error": self.error,
        }


def build_body(conn: Connection, event_id: str, *, now: datetime) -> tuple[str, int, int]:
    """The acknowledgement's body, and how many targets it acknowledges and declines: only
    the targets whose cap the control system accepted are acknowledged. For an event that
    came in time, plans still waiting for a retry are declined for good."""
    kind_row = fetch_one(conn, "lpc_ack_event_kind", {"event_id": event_id})
    if kind_row is None:
        raise RuntimeError(f"no LPC event {event_id} for its acknowledgement")
    if not kind_row["late"]:
        declined_now = fetch_all(
            conn, "decline_unanswered_lpc_dispatches", {"event_id": event_id, "now": now}
        )
        if declined_now:
            log.warning(
                "LPC event %s: %d cap(s) not answered by the control system when the "
                "acknowledgement was due; declined",
                event_id,
                len(declined_now),
            )
    payload_type, fields = PAYLOAD_TYPES[kind_row["kind"]]
    acknowledged: list[dict[str, str]] = []
    declined: list[dict[str, str]] = []
    for target in fetch_all(conn, "list_lpc_targets", {"event_id": event_id}):
        values = {
            "meterPointId": target["meter_point_id"],
            "locationId": target["location_id"],
            "resourceId": target["resource_id"],
        }
        item = {name: values[name] for name in fields}
        accepted = target["known"] and target["control_status"] == "sent"
        (acknowledged if accepted else declined).append(item)
    body = {
        "eventId": event_id,
        "payloads": [
            {
                "payloadType": payload_type,
                "acknowledgedTargets": acknowledged,
                "declinedTargets": declined,
            }
        ],
    }
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return text, len(acknowledged), len(declined)


def send_one(
    conn: Connection,
    client: SparkClient,
    *,
    now: datetime,
    event_id: str | None = None,
) -> AckResult | None:
    """Claim, build if needed, send and record one acknowledgement (the given event's, or the
    next due); None when nothing is due."""
    with conn.transaction():
        claimed = fetch_one(
            conn,
            "claim_report",
            {
                "now": now,
                "kinds": [KIND],
                "report_id": None,
                "event_id": event_id,
                # An acknowledgement has no month, so no month's deadline to pass.
                "grace": timedelta(0),
                "lease_until": now + LEASE,
            },
        )
        if claimed is None:
            return None
        report_id = int(claimed["id"])
        claimed_event: str = claimed["event_id"]
        attempt = int(claimed["attempts"])
        if not claimed["built"]:
            body, _, _ = build_body(conn, claimed_event, now=now)
            execute(
                conn,
                "build_lpc_ack",
                {
                    "id": report_id,
                    "body": body,
                    "now": now,
                    "idempotency_key": f"lpc-ack/{claimed_event}",
                },
            )
        execute(conn, "start_report_attempt", {"id": report_id, "attempt": attempt, "now": now})
        row = fetch_one(conn, "report_to_send", {"id": report_id})
    lease_ends = time.monotonic() + LEASE.total_seconds()
    if row is None:
        raise RuntimeError(f"acknowledgement of {claimed_event} vanished after its claim")
    with logs.bound(report_id=report_id, event_id=claimed_event):
        answer = post(client, row["body"], row["idempotency_key"])
        return _record(conn, report_id, claimed_event, attempt, answer, now=now, until=lease_ends)


def _record(
    conn: Connection,
    report_id: int,
    event_id: str,
    attempt: int,
    answer: Answer,
    *,
    now: datetime,
    until: float,
) -> AckResult:
    """The attempt's answer, recorded by the ledger's queries (as worker.reports.sender does,
    again on a database error until the lease ends, monotonic `until`; an acknowledgement
    has no payloads to set aside, so a 4xx rejects it)."""

    def record() -> tuple[str, bool, datetime | None]:
        with conn.transaction():
            finish_attempt(conn, report_id, attempt, answer, now=now)
            return _update_report(conn, report_id, attempt, answer, now=now)

    status, updated, retry_at = record_with_retries(record, until=until, on=conn)
    if not updated:
        log.warning(
            "LPC acknowledgement of %s: attempt %s ended %s after it had moved on",
            event_id,
            attempt,
            answer.outcome,
        )
        return AckResult(event_id, attempt, "lost", error=answer.error)
    if status == "sent":
        log.info("LPC event %s acknowledged: Spark report %s", event_id, answer.spark_report_id)
    elif status == "rejected":
        logs.alert(
            log,
            "lpc_ack_rejected",
            "LPC acknowledgement REJECTED: event %s refused by Spark (%s): %s",
            event_id,
            answer.http_status,
            (answer.response or answer.error or "")[:500],
        )
    else:
        log.warning(
            "LPC acknowledgement of %s attempt %s %s: %s; next attempt at %s",
            event_id,
            attempt,
            answer.outcome,
            answer.error,
            retry_at.isoformat() if retry_at else "-",
        )
    return AckResult(event_id, attempt, status, retry_at=retry_at, error=answer.error)


def _update_report(
    conn: Connection, report_id: int, attempt: int, answer: Answer, *, now: datetime
) -> tuple[str, bool, datetime | None]:
    """The acknowledgement's ledger row after the answer: its status, whether it was still
    this attempt's to update (not when it had moved on), and when the next attempt goes."""
    params: dict[str, Any] = {"id": report_id, "attempt": attempt, "now": now}
    if answer.outcome == "accepted":
        accepted = {
            "spark_report_id": answer.spark_report_id,
            "spark_created_at": answer.spark_created_at,
        }
        updated = fetch_one(conn, "record_report_accepted", {**params, **accepted})
        return "sent", updated is not None, None
    if answer.outcome == "rejected":
        rejected = {
            "http_status": answer.http_status,
            "message": answer.response,
            "error": answer.error,
        }
        updated = fetch_one(conn, "record_report_rejected", {**params, **rejected})
        return "rejected", updated is not None, None
    retry_at = now + timedelta(seconds=backoff(attempt, answer.retry_after))
    retry = {
        "next_attempt_at": retry_at,
        "error": answer.error,
        "ambiguous": answer.outcome == "unknown",
    }
    updated = fetch_one(conn, "record_report_retry", {**params, **retry})
    return "retrying", updated is not None, retry_at


def send_due(
    conn: Connection,
    client: SparkClient,
    *,
    now: datetime,
    event_id: str | None = None,
    deadline: float | None = None,
) -> list[AckResult]:
    """Send due acknowledgements (all, or the given event's) until none is left, or until
    the monotonic `deadline`."""
    results: list[AckResult] = []
    while deadline is None or time.monotonic() < deadline:
        result = send_one(conn, client, now=now, event_id=event_id)
        if result is None:
            break
        results.append(result)
        if event_id is not None:
            break
    return results


@dataclass
class AckSweep:
    leases_expired: int = 0
    alerted: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"leasesExpired": self.leases_expired, "alerted": self.alerted}


def sweep(conn: Connection, *, now: datetime) -> AckSweep:
    """Take back acknowledgements whose sender died, and alert, once each, those not
    accepted ALERT_AFTER after their event arrived."""
    result = AckSweep()
    # The ledger's rule for every report kind, run here every minute (the reports sweep runs
    # hourly): an acknowledgement is due within minutes.
    with conn.transaction():
        expired = fetch_all(conn, "expire_report_leases", {"now": now})
    for row in expired:
        log.warning(
            "report %s of event %s: attempt %s was cut off mid-send; it is ambiguous and will "
            "be sent again",
            row["id"],
            row["event_id"],
            row["attempts"],
        )
    result.leases_expired = len(expired)
    with conn.transaction():
        alerts = fetch_all(conn, "claim_lpc_ack_alerts", {"now": now, "alert_after": ALERT_AFTER})
    for row in alerts:
        logs.alert(
            log,
            "lpc_ack_late",
            "LPC acknowledgement LATE: event %s received %s is not accepted by Spark after %s "
            "(%s, %s attempt(s); last error: %s); see spark-partner lpc show %s",
            row["event_id"],
            row["received_at"].isoformat(),
            ALERT_AFTER,
            row["status"],
            row["attempts"],
            row["last_error"] or "none",
            row["event_id"],
        )
        result.alerted.append(row["event_id"])
    return result


def next_attempt_at(conn: Connection) -> datetime | None:
    with conn.transaction():
        row = fetch_one(conn, "next_lpc_ack_attempt_at")
    return None if row is None else row["next_attempt_at"]
