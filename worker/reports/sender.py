"""Sending reports: one claimed report, one POST, Spark's answer recorded.

1. Claim the next due report (or a given one) with FOR UPDATE SKIP LOCKED and a lease; build
   its body on its first attempt (worker.reports.builder); record the attempt. Commit.
2. POST it once (the client takes its slot in the shared schedule of Spark calls,
   SPARK_RATE_LIMIT, first): the client's own retries are off, because a retry there would
   be a second report that the ledger never saw.
3. Record the answer:
   - 2xx: sent, with Spark's report id and time;
   - 4xx: rejected with Spark's message (fixable; `reports send --event` sends it again);
   - 429, 5xx, an unusable token, no connection, no rate slot within the client's wait cap:
     retrying, after a full-jitter backoff that is never shorter than Retry-After;
   - no answer (connection dropped or timed out after the request went out): retrying, and
     the attempt is ambiguous (see the policy in `worker.reports`).
   If the worker dies before this step, the lease runs out and the sweep takes the report
   back as ambiguous; a database error while recording is retried until then.

Every time is the caller's `now`, so tests decide what time it is; only the rate limit and
the HTTP timeouts run on real time.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from urllib3.exceptions import NewConnectionError

from shared import logging as logs
from shared.backoff import backoff_seconds
from shared.config import Settings
from shared.db import Connection, execute, fetch_all, fetch_one, record_with_retries
from shared.spark_api import (
    SparkAuthError,
    SparkClient,
    SparkError,
    SparkHTTPError,
    SparkRateLimited,
    SparkUnavailable,
)
from shared.timeutil import parse_spark_datetime
from worker.reports.builder import build_report
from worker.reports.ledger import ENERGY_KINDS, ReportRules
from worker.reports.lpc_energy import build_lpc_energy

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
# Longer than one attempt can take (connect and read timeouts, a wait for a rate slot):
# a lease that runs out means the sender is gone.
LEASE = timedelta(minutes=3)
BACKOFF_BASE_SECONDS = 2.0
# Below the broker's visibility timeout, so a delayed retry task is never delivered twice.
BACKOFF_MAX_SECONDS = 600.0
# Statuses after which the report may well have been stored (a gateway gave up waiting).
AMBIGUOUS_STATUSES = (502, 504)


def report_client(settings: Settings) -> SparkClient:
    """The Spark client for the configured Spark (ConfigError when it is not configured)."""
    return SparkClient.from_settings(settings)


@dataclass(frozen=True)
class Answer:
    """What one POST came to."""

    # accepted | rejected | failed | unknown (the attempt's outcome in report_attempts)
    outcome: str
    http_status: int | None = None
    error: str | None = None
    response: str | None = None
    spark_report_id: str | None = None
    spark_created_at: datetime | None = None
    retry_after: float | None = None


@dataclass(frozen=True)
class SendResult:
    report_id: int
    event_id: str
    part: int
    attempt: int
    # sent | rejected | retrying | empty | lost (the row moved on while this attempt ran) |
    # set_aside (Spark refused payloads it named; they are set aside, the rest is due again)
    status: str
    retry_at: datetime | None = None
    error: str | None = None
    ambiguous: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "reportId": self.report_id,
            "eventId": self.event_id,
            "part": self.part,
            "attempt": self.attempt,
            "status": self.status,
            "retryAt": None if self.retry_at is None else self.retry_at.isoformat(),
            "error": self.error,
            "ambiguous": self.ambiguous,
        }


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Seconds before the next attempt (shared/backoff.py: full jitter, Retry-After as a
    floor), at most BACKOFF_MAX_SECONDS."""
    delay = backoff_seconds(
        attempt, base=BACKOFF_BASE_SECONDS, cap=BACKOFF_MAX_SECONDS, at_least=retry_after
    )
    return min(delay, BACKOFF_MAX_SECONDS)


def post(client: SparkClient, body_text: str, idempotency_key: str) -> Answer:
    try:
        response = client.request(
            "POST",
            "/reports",
            json=json.loads(body_text),
            # Spark does not document the header; a server that ignores it loses nothing.
            headers={IDEMPOTENCY_HEADER: idempotency_key},
            retry=False,
        )
    except SparkHTTPError as exc:
        return _http_failure(exc)
    except SparkRateLimited as exc:
        # No slot soon enough: nothing was sent; try again once the schedule has room.
        return Answer("failed", error=str(exc), retry_after=exc.retry_after)
    except SparkUnavailable as exc:
        if _never_sent(exc):
            return Answer("failed", error=str(exc))
        return Answer("unknown", error=f"no answer: {exc}")
    except SparkError as exc:
        return Answer("failed", error=str(exc))
    text = response.text
    try:
        answer = response.json()
    except ValueError:
        answer = None
    report_id = answer.get("id") if isinstance(answer, dict) else None
    created = answer.get("createdAt") if isinstance(answer, dict) else None
    try:
        created_at = parse_spark_datetime(created) if isinstance(created, str) else None
    except ValueError:
        created_at = None
    return Answer(
        "accepted",
        http_status=response.status_code,
        response=text[:2000],
        spark_report_id=str(report_id) if report_id is not None else None,
        spark_created_at=created_at,
    )


def _http_failure(exc: SparkHTTPError) -> Answer:
    body = exc.body.strip()[:2000]
    if isinstance(exc, SparkAuthError):
        # The token endpoint refused: nothing reached /reports.
        return Answer("failed", http_status=exc.status, error=str(exc), response=body)
    if exc.status in AMBIGUOUS_STATUSES:
        return Answer("unknown", http_status=exc.status, error=str(exc), response=body)
    if exc.retryable or exc.status in (401, 403, 408):
        return Answer(
            "failed",
            http_status=exc.status,
            error=str(exc),
            response=body,
            retry_after=exc.retry_after,
        )
    return Answer("rejected", http_status=exc.status, error=str(exc), response=body)


def _never_sent(exc: SparkUnavailable) -> bool:
    """The connection was never made, so the request cannot have reached Spark."""
    cause = exc.__cause__
    if isinstance(cause, requests.ConnectTimeout):
        return True
    if isinstance(cause, requests.ConnectionError):
        reason = getattr(cause.args[0], "reason", None) if cause.args else None
        return isinstance(reason, NewConnectionError)
    return False


def send_one(
    conn: Connection,
    client: SparkClient,
    rules: ReportRules,
    *,
    now: datetime,
    report_id: int | None = None,
    event_id: str | None = None,
) -> SendResult | None:
    """Claim, build if needed, send and record one report (the given one, or one of the given
    event's, or the next due); None when nothing is due."""
    params = rules.params(
        now,
        report_id=report_id,
        event_id=event_id,
        lease_until=now + LEASE,
        kinds=list(ENERGY_KINDS),
    )
    with conn.transaction():
        claimed = fetch_one(conn, "claim_report", params)
        if claimed is None:
            return None
        claimed_id = int(claimed["id"])
        claimed_event: str = claimed["event_id"]
        attempt = int(claimed["attempts"])
        if not claimed["built"] and claimed["kind"] == "lpc_energy":
            if build_lpc_energy(conn, claimed_id, claimed_event, rules, now=now) is None:
                execute(conn, "mark_report_empty", {"id": claimed_id, "now": now})
                log.info(
                    "LPC event %s: no target used energy in its periods; nothing to report",
                    claimed_event,
                )
                return SendResult(claimed_id, claimed_event, 1, attempt - 1, "empty")
        elif not claimed["built"]:
            parts = build_report(conn, claimed_id, claimed_event, rules, now=now)
            if not parts:
                execute(conn, "mark_report_empty", {"id": claimed_id, "now": now})
                log.info(
                    "event %s: no target used energy in its periods; nothing to report",
                    claimed_event,
                )
                return SendResult(claimed_id, claimed_event, 1, attempt - 1, "empty")
            if len(parts) > 1:
                log.info(
                    "event %s: %d payloads, split into %d reports of at most %d",
                    claimed_event,
                    sum(part.payloads for part in parts),
                    len(parts),
                    rules.max_payloads,
                )
        execute(conn, "start_report_attempt", {"id": claimed_id, "attempt": attempt, "now": now})
        row = fetch_one(conn, "report_to_send", {"id": claimed_id})
    lease_ends = time.monotonic() + LEASE.total_seconds()
    if row is None:
        raise RuntimeError(f"report {claimed_id} vanished after its claim")
    # Every line about this attempt names the report and its event.
    with logs.bound(report_id=int(row["id"]), event_id=row["event_id"]):
        answer = post(client, row["body"], row["idempotency_key"])
        return _record(conn, row, attempt, answer, now=now, until=lease_ends)


def finish_attempt(
    conn: Connection, report_id: int, attempt: int, answer: Answer, *, now: datetime
) -> None:
    """The attempt's row gets its answer (in the caller's transaction): for every report kind,
    acknowledgements (worker.lpc.ack) included."""
    execute(
        conn,
        "finish_report_attempt",
        {
            "id": report_id,
            "attempt": attempt,
            "now": now,
            "outcome": answer.outcome,
            "http_status": answer.http_status,
            "error": answer.error,
            "response": answer.response,
            "spark_report_id": answer.spark_report_id,
            "retry_after": answer.retry_after,
        },
    )


def _record(
    conn: Connection, row: Any, attempt: int, answer: Answer, *, now: datetime, until: float
) -> SendResult:
    """Record one attempt's answer: the attempt's row, then the report's, by outcome; again on
    a database error until the lease ends (monotonic `until`)."""
    update_report = {"accepted": _record_accepted, "rejected": _record_rejected}.get(
        answer.outcome, _record_retry
    )

    def record() -> SendResult:
        with conn.transaction():
            finish_attempt(conn, int(row["id"]), attempt, answer, now=now)
            return update_report(conn, row, attempt, answer, now=now)

    result = record_with_retries(record, until=until, on=conn)
    if result.status == "lost":
        log.warning(
            "report %s attempt %s ended %s after the report had moved on (lease expired?)",
            result.report_id,
            attempt,
            answer.outcome,
        )
    return result


def _result(row: Any, attempt: int, status: str, **extra: Any) -> SendResult:
    return SendResult(int(row["id"]), row["event_id"], int(row["part"]), attempt, status, **extra)


def _record_accepted(
    conn: Connection, row: Any, attempt: int, answer: Answer, *, now: datetime
) -> SendResult:
    updated = fetch_one(
        conn,
        "record_report_accepted",
        {
            "id": int(row["id"]),
            "attempt": attempt,
            "now": now,
            "spark_report_id": answer.spark_report_id,
            "spark_created_at": answer.spark_created_at,
        },
    )
    if updated is None:
        return _result(row, attempt, "lost", error=answer.error)
    log.info(
        "event %s part %s sent as Spark report %s",
        row["event_id"],
        row["part"],
        answer.spark_report_id,
    )
    return _result(row, attempt, "sent")


def _record_rejected(
    conn: Connection, row: Any, attempt: int, answer: Answer, *, now: datetime
) -> SendResult:
    """A 4xx: nothing reached Spark. Where Spark's answer names payloads of this report (by
    resource, or else by location id), those are set aside with Spark's message and the rest
    is due again at once; where it names none, the report is rejected for an operator."""
    message = answer.response or answer.error or ""
    payloads = [
        (p["resource_id"], p["location_id"])
        for p in fetch_all(
            conn, "report_part_payloads", {"event_id": row["event_id"], "part": row["part"]}
        )
    ]
    named = named_payloads(message, payloads)
    if named:
        return _set_aside(conn, row, attempt, answer, named, now=now)
    updated = fetch_one(
        conn,
        "record_report_rejected",
        {
            "id": int(row["id"]),
            "attempt": attempt,
            "now": now,
            "http_status": answer.http_status,
            "message": answer.response,
            "error": answer.error,
        },
    )
    if updated is None:
        return _result(row, attempt, "lost", error=answer.error)
    logs.alert(
        log,
        "report_rejected",
        "report REJECTED: event %s part %s refused by Spark (%s) naming none of its payloads, so "
        "none could be set aside: the report stays rejected until an operator acts "
        "(reports show, then reports send --event): %s",
        row["event_id"],
        row["part"],
        answer.http_status,
        message[:500],
    )
    return _result(row, attempt, "rejected", error=answer.response)


def _set_aside(
    conn: Connection,
    row: Any,
    attempt: int,
    answer: Answer,
    named: list[tuple[str, str]],
    *,
    now: datetime,
) -> SendResult:
    """Take the named payloads out of the body (the rest byte for byte as built, under a key
    of its own), record them as set aside with Spark's message, and make the rest due now."""
    body = json.loads(row["body"])
    refused = set(named)
    body["payloads"] = [
        p for p in body["payloads"] if (p["resourceId"], p.get("locationId")) not in refused
    ]
    rest = json.dumps(body, separators=(",", ":"), ensure_ascii=False) if body["payloads"] else None
    message = (answer.response or answer.error or "")[:2000]
    updated = fetch_one(
        conn,
        "set_aside_payloads",
        {
            "id": int(row["id"]),
            "attempt": attempt,
            "now": now,
            "event_id": row["event_id"],
            "part": int(row["part"]),
            "resource_ids": [resource for resource, _ in named],
            "location_ids": [location for _, location in named],
            "message": f"Spark answered {answer.http_status}: {message}",
            "body": rest,
        },
    )
    if updated is None:
        return _result(row, attempt, "lost", error=answer.error)
    log.warning(
        "event %s part %s: Spark refused %d payload(s) (%s); set aside with its answer, "
        "the other %d sent again now: %s",
        row["event_id"],
        row["part"],
        len(named),
        ", ".join(f"{r}@{loc}" for r, loc in named[:10]),
        len(body["payloads"]),
        message[:300],
    )
    return _result(row, attempt, "set_aside" if rest else "empty", error=message)


def _record_retry(
    conn: Connection, row: Any, attempt: int, answer: Answer, *, now: datetime
) -> SendResult:
    retry_at = now + timedelta(seconds=backoff(attempt, answer.retry_after))
    ambiguous = answer.outcome == "unknown"
    updated = fetch_one(
        conn,
        "record_report_retry",
        {
            "id": int(row["id"]),
            "attempt": attempt,
            "now": now,
            "next_attempt_at": retry_at,
            "error": answer.error,
            "ambiguous": ambiguous,
        },
    )
    if updated is None:
        return _result(row, attempt, "lost", error=answer.error)
    log.warning(
        "event %s part %s attempt %s %s: %s; next attempt at %s",
        row["event_id"],
        row["part"],
        attempt,
        answer.outcome,
        answer.error,
        retry_at.isoformat(),
    )
    return _result(
        row, attempt, "retrying", retry_at=retry_at, error=answer.error, ambiguous=ambiguous
    )


def named_payloads(message: str, payloads: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The payloads (resource id, location id) a refusal names: those whose resource id it
    names as a whole word; if it names none, those whose location id it names. An id is named
    where it stands on its own (so "ev-1" is not named by "ev-10")."""

    def named(ident: str) -> bool:
        return re.search(r"(?<![\w-])" + re.escape(ident) + r"(?![\w-])", message) is not None

    if not message:
        return []
    by_resource = [p for p in payloads if named(p[0])]
    if by_resource:
        return by_resource
    return [p for p in payloads if named(p[1])]


def send_due(
    conn: Connection,
    client: SparkClient,
    rules: ReportRules,
    *,
    now: datetime,
    report_id: int | None = None,
    event_id: str | None = None,
    deadline: float | None = None,
) -> list[SendResult]:
    """Send due reports (all, or the given one, or the given event's) until none is left,
    or until the monotonic `deadline`."""
    results: list[SendResult] = []
    while deadline is None or time.monotonic() < deadline:
        result = send_one(conn, client, rules, now=now, report_id=report_id, event_id=event_id)
        if result is None:
            break
        results.append(result)
        if report_id is not None and result.status != "set_aside":
            break
    return results
