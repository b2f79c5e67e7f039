"""`spark-partner reports`: the ledger of energy-usage reports, and sending them by hand."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from typing import Any

import click

from shared.config import ConfigError
from shared.db import fetch_all
from shared.timeutil import parse_spark_datetime, utcnow
from worker.cli.base import database, print_json, retry_after_text, settings_or_fail
from worker.reports.deadlines import STATUSES
from worker.reports.views import report_json


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


@click.group()
def reports() -> None:
    """Energy-usage reports: what is owed to Spark, what was sent, what Spark said."""


@reports.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only reports with this status.")
@click.option("--month", "month_text", metavar="YYYY-MM", help="Only this (local) month.")
@click.option("--event", "event_id", help="Only this event's reports.")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--now", "now_text", hidden=True, help="The time to act as (ISO 8601), for tests.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def reports_list(
    *,
    status: str | None,
    month_text: str | None,
    event_id: str | None,
    limit: int,
    now_text: str | None,
    as_json: bool,
) -> None:
    """Reports, oldest month first; then, per month, what is sent, due, waiting for readings
    and left out or set aside (not with --json, which lists the reports only)."""
    from worker.reports.deadlines import month_views

    rules = _rules()
    month = _month(month_text)
    now = _now(now_text)
    with database() as conn:
        rows = fetch_all(
            conn,
            "list_reports",
            rules.params(now, status=status, month=month, event_id=event_id, limit=limit),
        )
        views = [] if as_json or event_id else month_views(conn, rules, now=now, month=month)
    items = [report_json(row) for row in rows]
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
        if item["kind"] == "lpc_energy":
            extra.insert(0, "(LPC event's energy report)")
        click.echo(
            f"{item['month']}  {item['eventId']}{part}  {item['status']:<9} "
            f"payloads={item['payloads'] if item['payloads'] is not None else '-'} "
            f"attempts={item['attempts']} " + " ".join(extra)
        )
    for view in views:
        _print_month(view, rules)


@reports.command("show")
@click.argument("event_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def reports_show(event_id: str, as_json: bool) -> None:
    """An event's report(s): the exact body sent, every attempt with Spark's answer, the
    targets left out or set aside and why, and readings that came after it was built."""
    from worker.reports.views import event_view

    rules = _rules()
    with database() as conn:
        result = event_view(conn, event_id, rules, now=utcnow())
    if result is None:
        raise click.ClickException(f"no report for event {event_id}")
    if as_json:
        print_json(result)
        return
    _print_event(result)


def _print_event(result: dict[str, Any]) -> None:
    event_id = result["eventId"]
    for item in result["reports"]:
        what = "LPC event" if item["kind"] == "lpc_energy" else "event"
        click.echo(
            f"{what} {event_id} part {item['part']}/{item['parts']}: {item['status']} "
            f"(month {item['month']} {item['zone']}, deadline "
            f"{item['deadline']:%Y-%m-%d %H:%M}Z)"
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
                f"  attempt {attempt['attempt']}: {attempt['outcome']} [{status}]"
                f"{retry_after_text(attempt['retryAfterSeconds'])} {detail[:120]}"
            )
        if item["body"] is not None:
            click.echo("  body: " + json.dumps(item["body"])[:2000])
    for title, key in (("left out", "leftOut"), ("set aside", "setAside")):
        for entry in result[key]:
            click.echo(
                f"{title}: {entry['resourceId']}@{entry['locationId']} {entry['reason']}"
                + (f" ({entry['detail'][:200]})" if entry["detail"] else "")
            )
    late = result["late"]
    if late["readings"]:
        click.echo(
            f"late readings: {late['readings']} "
            f"({late['kWhInEvent']:.3f} kWh in the event's periods), not sent"
        )


@reports.command("send")
@click.option("--due", "send_due", is_flag=True, help="Sweep, then send every due report.")
@click.option("--event", "event_id", help="Send this event's report(s) now, ready or not.")
@click.option(
    "--before-end",
    is_flag=True,
    help="With --event: send even though the event has not ended (its last hours are lost).",
)
@click.option("--now", "now_text", hidden=True, help="The time to act as (ISO 8601), for tests.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def reports_send(
    send_due: bool, event_id: str | None, before_end: bool, now_text: str | None, as_json: bool
) -> None:
    """Send reports now: every due one (--due), or one event's (--event ID).

    A rejected report is built again from the current readings (unless part of it reached
    Spark) and sent. A report that was sent is not sent again. An event past its deadline is
    marked missed (exit 1); one that has not ended is refused (exit 1) unless --before-end.
    """
    from worker.reports import corrections, ledger, sender

    if send_due == (event_id is not None):
        raise click.UsageError("give exactly one of --due and --event ID")
    if before_end and event_id is None:
        raise click.UsageError("--before-end goes with --event ID")
    settings = settings_or_fail()
    rules = ledger.ReportRules.from_settings(settings)
    now = _now(now_text)
    try:
        client = sender.report_client(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    swept = None
    made = None
    with database() as conn, client:
        if send_due:
            swept = ledger.sweep(conn, rules, now=now)
        else:
            assert event_id is not None
            try:
                made = ledger.make_event_due(conn, event_id, rules, now=now, before_end=before_end)
            except (
                ledger.NoReport,
                ledger.AlreadySent,
                ledger.PastDeadline,
                ledger.NotEnded,
            ) as exc:
                raise click.ClickException(str(exc)) from None
        results = sender.send_due(conn, client, rules, now=now, event_id=event_id)
        corrected = corrections.correct(conn, client, rules, now=now) if send_due else None
    unknown = made.unknown_periods if made else []
    if as_json:
        print_json(
            {
                "sweep": swept.to_json() if swept else None,
                "results": [result.to_json() for result in results],
                "unknownPeriods": [start.isoformat() for start in unknown],
                "corrections": corrected.to_json() if corrected else None,
            }
        )
    else:
        _print_sent(swept, results, unknown)
    if any(result.status == "rejected" for result in results):
        sys.exit(1)


def _print_sent(swept: Any, results: list[Any], unknown: list[datetime]) -> None:
    if unknown:
        click.echo(
            f"sent before the event's end: {len(unknown)} period(s) not known yet and not "
            "reported: " + ", ".join(f"{start:%Y-%m-%d %H:%M}Z" for start in unknown)
        )
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


@reports.command("deadlines")
@click.option("--now", "now_text", hidden=True, help="The time to act as (ISO 8601), for tests.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def reports_deadlines(now_text: str | None, as_json: bool) -> None:
    """Per month and zone: the deadline and the aim, what is sent, due, waiting for readings
    (and which targets hold it), and the targets left out or set aside, with why."""
    from worker.reports.deadlines import month_views

    rules = _rules()
    now = _now(now_text)
    with database() as conn:
        views = month_views(conn, rules, now=now)
    if as_json:
        print_json([view.to_json() for view in views])
        return
    if not views:
        click.echo("no reports")
    for view in views:
        _print_month(view, rules)
    click.echo(
        f"corrections: {rules.corrections} (SPARK_REPORT_CORRECTIONS; confirm with Volue "
        "that a second report replaces the first before turning it on)"
    )


def _print_month(view: Any, rules: Any) -> None:
    from worker.reports.deadlines import describe_time_left

    for month in view.deadlines:
        click.echo(
            f"{month.month:%Y-%m} ({month.zone}): {month.counts['sent']} sent, "
            f"{month.counts['due'] + month.counts['sending']} due, "
            f"{month.waiting} waiting for readings, "
            f"{month.counts['pending'] - month.waiting} not ended, "
            f"{month.counts['retrying']} retrying, {month.counts['rejected']} rejected, "
            f"{month.counts['missed']} missed, {month.counts['empty']} empty; "
            f"{month.left_out} target(s) left out, {month.set_aside} payload(s) set aside"
        )
        click.echo(
            f"  deadline {month.deadline:%Y-%m-%d %H:%M}Z (end of month in {month.zone} + "
            f"grace), aim {month.aim:%Y-%m-%d %H:%M}Z (the earlier of that and UTC's), "
            f"final sweeps from {month.final_sweeps_from:%Y-%m-%d %H:%M}Z "
            f"({describe_time_left(month.time_left)})"
        )
    for waiting in view.waiting:
        more = waiting.holding_count - len(waiting.holding)
        click.echo(
            f"  waiting: {waiting.event_id} (ended {waiting.ended_at:%Y-%m-%d %H:%M}Z, due by "
            f"{waiting.due_by:%Y-%m-%d %H:%M}Z) held by "
            + ", ".join(waiting.holding)
            + (f" and {more} more" if more > 0 else "")
        )
    for exclusion in view.exclusions:
        title = "set aside" if exclusion.set_aside else "left out"
        click.echo(f"  {title}: {exclusion.describe()}")


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
                run = compensation.fetch_compensations(conn, client, rules, now=now)
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
