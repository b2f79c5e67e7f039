"""`spark-partner reports`: the ledger of energy-usage reports, and sending them by hand."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from typing import Any

import click

from shared.config import ConfigError
from shared.db import fetch_all, fetch_one
from shared.timeutil import parse_spark_datetime, utcnow
from worker.cli.base import database, print_json, settings_or_fail
from worker.reports.deadlines import STATUSES

LATE_SHOWN = 100


def _now(value: str | None) -> datetime:
    if value is None:
        return utcnow()
    try:
        return parse_spark_datetime(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--now") from None


def _month(value: str | None) -> date | None:
    if value is None:
        return None
    year, _, month = value.partition("-")
    try:
        return date(int(year), int(month), 1)
    except ValueError:
        raise click.BadParameter("expected YYYY-MM", param_hint="--month") from None


def _rules() -> Any:
    from worker.reports.ledger import ReportRules

    return ReportRules.from_settings(settings_or_fail())


def _report_json(row: Any) -> dict[str, Any]:
    return {
        "eventId": row["event_id"],
        "part": row["part"],
        "parts": row["parts"],
        "month": f"{row['month']:%Y-%m}",
        "status": row["status"],
        "dueReason": row["due_reason"],
        "dueAt": row["due_at"],
        "deadline": row["deadline"],
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


@click.group()
def reports() -> None:
    """Energy-usage reports: what is owed to Spark, what was sent, what Spark said."""


@reports.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only reports with this status.")
@click.option("--month", "month_text", metavar="YYYY-MM", help="Only this (local) month.")
@click.option("--event", "event_id", help="Only this event's reports.")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def reports_list(
    status: str | None, month_text: str | None, event_id: str | None, limit: int, as_json: bool
) -> None:
    """Reports, oldest month first."""
    rules = _rules()
    with database() as conn:
        rows = fetch_all(
            conn,
            "list_reports",
            rules.params(
                utcnow(), status=status, month=_month(month_text), event_id=event_id, limit=limit
            ),
        )
    items = [_report_json(row) for row in rows]
    if as_json:
        print_json(items)
        return
    if not items:
        click.echo("no reports")
    for item in items:
        part = f" part {item['part']}/{item['parts']}" if item["parts"] > 1 else ""
        extra = []
        if item["ambiguousAttempts"]:
            extra.append(f"ambiguous={item['ambiguousAttempts']}")
        if item["acceptedAttempts"] > 1:
            extra.append(f"accepted {item['acceptedAttempts']} times")
        if item["lateReadings"]:
            extra.append(f"late readings={item['lateReadings']}")
        if item["rejection"]:
            extra.append(f"rejected: {item['rejection'][:80]}")
        click.echo(
            f"{item['month']}  {item['eventId']}{part}  {item['status']:<9} "
            f"payloads={item['payloads'] if item['payloads'] is not None else '-'} "
            f"attempts={item['attempts']} " + " ".join(extra)
        )


@reports.command("show")
@click.argument("event_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def reports_show(event_id: str, as_json: bool) -> None:
    """An event's report(s): the exact body sent, every attempt with Spark's answer, and
    readings that came after it was built."""
    rules = _rules()
    with database() as conn:
        rows = fetch_all(
            conn,
            "list_reports",
            rules.params(utcnow(), status=None, month=None, event_id=event_id, limit=1000),
        )
        if not rows:
            raise click.ClickException(f"no report for event {event_id}")
        body_rows = fetch_all(conn, "event_report_bodies", {"event_id": event_id})
        bodies = {row["part"]: row for row in body_rows}
        attempts = fetch_all(
            conn, "list_report_attempts", {"report_ids": [row["id"] for row in rows]}
        )
        late = fetch_one(conn, "late_readings_summary", {"event_id": event_id})
        late_rows = fetch_all(
            conn, "late_readings_of_event", {"event_id": event_id, "limit": LATE_SHOWN}
        )
    by_report: dict[int, list[dict[str, Any]]] = {}
    for attempt in attempts:
        by_report.setdefault(attempt["report_id"], []).append(
            {
                "attempt": attempt["attempt"],
                "startedAt": attempt["started_at"],
                "finishedAt": attempt["finished_at"],
                "outcome": attempt["outcome"],
                "httpStatus": attempt["http_status"],
                "error": attempt["error"],
                "response": attempt["response"],
                "sparkReportId": attempt["spark_report_id"],
            }
        )
    items = []
    for row in rows:
        item = _report_json(row)
        body_row = bodies.get(row["part"])
        body = body_row["body"] if body_row else None
        item["idempotencyKey"] = body_row["idempotency_key"] if body_row else None
        item["builtAt"] = body_row["built_at"] if body_row else None
        item["body"] = json.loads(body) if body is not None else None
        item["attemptLog"] = by_report.get(row["id"], [])
        items.append(item)
    result: dict[str, Any] = {
        "eventId": event_id,
        "reports": items,
        "late": {
            "readings": late["readings"] if late else 0,
            "kWhInEvent": late["kwh_in_event"] if late else 0.0,
            "firstRecordedAt": late["first_recorded_at"] if late else None,
            "lastRecordedAt": late["last_recorded_at"] if late else None,
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
                for r in late_rows
            ],
        },
    }
    if as_json:
        print_json(result)
        return
    for item in items:
        click.echo(
            f"event {event_id} part {item['part']}/{item['parts']}: {item['status']} "
            f"(month {item['month']}, deadline {item['deadline']:%Y-%m-%d %H:%M}Z)"
        )
        click.echo(
            f"  {item['payloads']} payload(s), {item['points']} point(s), {item['kWh']} kWh; "
            f"attempts {item['attempts']} (ambiguous {item['ambiguousAttempts']}, "
            f"accepted {item['acceptedAttempts']})"
        )
        if item["sparkReportId"]:
            click.echo(f"  Spark report {item['sparkReportId']} at {item['sparkCreatedAt']}")
        if item["rejection"]:
            click.echo(f"  rejected ({item['rejectedStatus']}): {item['rejection']}")
        for attempt in item["attemptLog"]:
            status = attempt["httpStatus"] or "-"
            detail = attempt["response"] or attempt["error"] or ""
            click.echo(
                f"  attempt {attempt['attempt']}: {attempt['outcome']} [{status}] {detail[:120]}"
            )
        if item["body"] is not None:
            click.echo("  body: " + json.dumps(item["body"])[:2000])
    if result["late"]["readings"]:
        click.echo(
            f"late readings: {result['late']['readings']} "
            f"({result['late']['kWhInEvent']:.3f} kWh in the event's periods), not sent"
        )


@reports.command("send")
@click.option("--due", "send_due", is_flag=True, help="Sweep, then send every due report.")
@click.option("--event", "event_id", help="Send this event's report(s) now, ready or not.")
@click.option("--now", "now_text", hidden=True, help="The time to act as (ISO 8601), for tests.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def reports_send(send_due: bool, event_id: str | None, now_text: str | None, as_json: bool) -> None:
    """Send reports now: every due one (--due), or one event's (--event ID).

    A rejected report is built again from the current readings (unless part of it reached
    Spark) and sent. A report that was sent is not sent again.
    """
    from worker.reports import ledger, sender

    if send_due == (event_id is not None):
        raise click.UsageError("give exactly one of --due and --event ID")
    settings = settings_or_fail()
    rules = ledger.ReportRules.from_settings(settings)
    now = _now(now_text)
    try:
        client = sender.report_client(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    swept = None
    with database() as conn, client:
        if send_due:
            swept = ledger.sweep(conn, rules, now=now)
        else:
            assert event_id is not None
            try:
                ledger.make_event_due(conn, event_id, rules, now=now)
            except (ledger.NoReport, ledger.AlreadySent) as exc:
                raise click.ClickException(str(exc)) from None
        results = sender.send_due(
            conn, client, rules, sender.RateLimiter(rules.rate_limit), now=now, event_id=event_id
        )
    if as_json:
        print_json(
            {
                "sweep": swept.to_json() if swept else None,
                "results": [result.to_json() for result in results],
            }
        )
    else:
        if swept is not None:
            click.echo(
                f"sweep: {swept.planned} planned, {swept.due} due, {swept.missed} missed, "
                f"{swept.leases_expired} taken back from a stopped sender"
            )
        if not results:
            click.echo("nothing to send")
        for result in results:
            retry = f", next attempt {result.retry_at.isoformat()}" if result.retry_at else ""
            error = f": {result.error[:200]}" if result.error else ""
            click.echo(
                f"event {result.event_id} part {result.part}: {result.status} "
                f"(attempt {result.attempt}{retry}){error}"
            )
    if any(result.status == "rejected" for result in results):
        sys.exit(1)


@reports.command("deadlines")
@click.option("--now", "now_text", hidden=True, help="The time to act as (ISO 8601), for tests.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def reports_deadlines(now_text: str | None, as_json: bool) -> None:
    """Per month: reports not sent yet, the deadline, and the time left."""
    from worker.reports.deadlines import describe_time_left, month_deadlines

    rules = _rules()
    now = _now(now_text)
    with database() as conn:
        months = month_deadlines(conn, rules, now=now)
    if as_json:
        print_json([month.to_json() for month in months])
        return
    if not months:
        click.echo("no reports")
    for month in months:
        local = month.deadline.astimezone(rules.timezone)
        click.echo(
            f"{month.month:%Y-%m}: {month.open} not sent ({month.counts['pending']} pending, "
            f"{month.counts['due']} due, {month.counts['retrying']} retrying, "
            f"{month.counts['rejected']} rejected), {month.counts['sent']} sent, "
            f"{month.counts['missed']} missed; deadline {local:%Y-%m-%d %H:%M} "
            f"{rules.timezone} ({describe_time_left(month.time_left)})"
        )


@reports.command("compensation")
@click.option("--month", "month_text", metavar="YYYY-MM", help="Default: the current month.")
@click.option("--user", "user_id", help="Only this user.")
@click.option("--fetch", is_flag=True, help="Ask Spark first, for users not fetched today.")
@click.option("--now", "now_text", hidden=True, help="The time to act as (ISO 8601), for tests.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def reports_compensation(
    month_text: str | None, user_id: str | None, fetch: bool, now_text: str | None, as_json: bool
) -> None:
    """What Spark says users earn this month, per location, and the problems it reports."""
    from worker.reports import compensation, sender

    rules = _rules()
    now = _now(now_text)
    month = _month(month_text) or compensation.local_month(now, rules)
    run = None
    with database() as conn:
        if fetch:
            try:
                client = sender.report_client(settings_or_fail())
            except ConfigError as exc:
                raise click.ClickException(str(exc)) from None
            with client:
                run = compensation.fetch_compensations(
                    conn, client, rules, sender.RateLimiter(rules.rate_limit), now=now
                )
        rows = fetch_all(conn, "list_compensations", {"month": month, "user_id": user_id})
        errors = fetch_all(conn, "list_compensation_errors", {"month": month})
    items = [
        {
            "userId": row["user_id"],
            "month": f"{row['month']:%Y-%m}",
            "locationId": row["location_id"],
            "meterPointIds": row["meter_point_ids"],
            "activeAmount": row["active_amount"],
            "blockedAmount": row["blocked_amount"],
            "currency": row["currency"],
            "problems": row["problems"],
            "fetchedAt": row["fetched_at"],
        }
        for row in rows
    ]
    failures = [
        {"userId": row["user_id"], "fetchedAt": row["fetched_at"], "error": row["error"]}
        for row in errors
        if user_id is None or row["user_id"] == user_id
    ]
    if as_json:
        print_json(
            {
                "month": f"{month:%Y-%m}",
                "fetch": run.to_json() if run else None,
                "locations": items,
                "failures": failures,
            }
        )
        return
    if run is not None:
        click.echo(f"fetched {run.fetched} user(s), {run.failed} failed, {run.problems} problem(s)")
    for item in items:
        problems = "; ".join(
            f"{p.get('problemType')}: {p.get('message')}" for p in item["problems"] or []
        )
        click.echo(
            f"{item['userId']}  {item['locationId']}  active {item['activeAmount']} "
            f"blocked {item['blockedAmount']} {item['currency'] or ''}"
            + (f"  PROBLEMS: {problems}" if problems else "")
        )
    for failure in failures:
        click.echo(f"{failure['userId']}: {failure['error']}")
