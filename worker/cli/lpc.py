"""`spark-partner lpc`: LPC events from Spark, their caps per target and period."""

from __future__ import annotations

import json
from typing import Any

import click

from shared.db import Connection, execute, fetch_all, fetch_one
from shared.queues import DISPATCH_QUEUE
from shared.timeutil import utcnow
from worker.cli.base import (
    database,
    jsonable,
    print_json,
    retry_after_text,
    settings_or_fail,
    worker_app,
)
from worker.curves.payload import format_time_span
from worker.lpc.handling import DISPATCH_DUE_TASK


@click.group()
def lpc() -> None:
    """Limitation of power consumption: caps Spark asked for, per target and period."""


def _event_item(row: Any) -> dict[str, Any]:
    return {
        "eventId": row["event_id"],
        "kind": row["kind"],
        "notificationType": row["notification_type"],
        "eventStatus": row["event_status"],
        "eventCreatedAt": row["event_created_at"],
        "receivedAt": row["received_at"],
        "firstPeriodStart": row["first_period_start"],
        "lastPeriodEnd": row["last_period_end"],
        "targets": row["target_count"],
        # A reservation is stored and shown, never acted on.
        "actedOn": row["kind"] != "reservation",
        # The status of the acknowledgement (its 'lpc_ack' report; sent: Spark accepted it);
        # none for a reservation.
        "acknowledgement": row["ack_status"],
    }


@lpc.command("list")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def lpc_list(limit: int, as_json: bool) -> None:
    """Stored LPC events (resource, location, reservation), newest first."""
    with database() as conn:
        items = [_event_item(row) for row in fetch_all(conn, "list_lpc_events", {"limit": limit})]
    if as_json:
        print_json(items)
        return
    if not items:
        click.echo("no LPC events")
    for item in items:
        click.echo(
            f"{item['eventId']}  {item['kind']:<11} targets={item['targets']} "
            f"{jsonable(item['firstPeriodStart'])} .. {jsonable(item['lastPeriodEnd'])}"
            f"{'' if item['actedOn'] else '  (stored only, not acted on)'}"
            f"{'  ack=' + item['acknowledgement'] if item['acknowledgement'] else ''}"
        )


def lpc_detail(conn: Connection, event_id: str) -> dict[str, Any] | None:
    row = fetch_one(conn, "get_lpc_event", {"event_id": event_id})
    if row is None:
        return None
    caps: dict[int, list[dict[str, Any]]] = {}
    for cap in fetch_all(conn, "list_lpc_caps", {"event_id": event_id}):
        caps.setdefault(cap["target_no"], []).append(
            {
                "start": cap["period_start"],
                "end": cap["period_end"],
                "timestamp": cap["spark_timestamp"],
                "maxPowerInKiloWatts": cap["max_kw"],
            }
        )
    ack = _ack_detail(conn, event_id)
    decided = _ack_decisions(ack["body"] if ack else None)
    targets = [
        {
            "resourceId": target["resource_id"],
            "locationId": target["location_id"],
            "meterPointId": target["meter_point_id"],
            "resolution": format_time_span(target["resolution"]),
            "knownToRegistry": target["known"],
            "controlSystem": _control(target),
            # What the acknowledgement said of it, once built: acknowledged / declined.
            "acknowledgement": decided.get(
                (target["resource_id"], target["location_id"], target["meter_point_id"])
            ),
            "caps": caps.get(target["target_no"], []),
        }
        for target in fetch_all(conn, "list_lpc_targets", {"event_id": event_id})
    ]
    return {
        **_event_item(row),
        "targetList": targets,
        "ack": ack,
        "energyReport": _energy_detail(conn, event_id),
    }


def _energy_detail(conn: Connection, event_id: str) -> dict[str, Any] | None:
    """The energy report after the event (reports ledger kind lpc_energy), as `reports show`
    gives it; None until the reports sweep plans it (or for a reservation)."""
    from worker.reports.ledger import ReportRules
    from worker.reports.views import event_view

    view = event_view(conn, event_id, ReportRules.from_settings(settings_or_fail()), now=utcnow())
    return None if view is None else dict(view["reports"][0])


def _control(target: Any) -> dict[str, Any] | None:
    """What the control system answered this target's caps (its dispatch decision): accepted
    (sent), failed (refused, given up after the retries, or declined unanswered when the
    acknowledgement was due; the reason says which), or pending/sending while asked. None:
    not dispatched (unknown to our registry)."""
    if target["control_status"] is None:
        return None
    status = target["control_status"]
    return {
        "answer": {"sent": "accepted", "failed": "failed"}.get(status, "waiting"),
        "status": status,
        "attempts": target["control_attempts"],
        "reason": target["control_reason"],
        "dispatcher": target["control_dispatcher"],
        "acceptedAt": target["control_sent_at"],
        "nextAttemptAt": target["control_next_attempt_at"] if status == "pending" else None,
        "updatedAt": target["control_updated_at"],
    }


def _ack_decisions(body: str | None) -> dict[tuple[str | None, str, str], str]:
    if body is None:
        return {}
    decided: dict[tuple[str | None, str, str], str] = {}
    fields = (("acknowledgedTargets", "acknowledged"), ("declinedTargets", "declined"))
    for payload in json.loads(body)["payloads"]:
        for field, decision in fields:
            for t in payload[field]:
                decided[(t.get("resourceId"), t["locationId"], t["meterPointId"])] = decision
    return decided


def _ack_detail(conn: Connection, event_id: str) -> dict[str, Any] | None:
    ack = fetch_one(conn, "get_lpc_ack", {"event_id": event_id})
    if ack is None:
        return None
    # Counted from the body once built; None before.
    decided = list(_ack_decisions(ack["body"]).values()) if ack["body"] else None
    return {
        "reportId": ack["id"],
        "status": ack["status"],
        "dueBy": ack["due_by"],
        "nextAttemptAt": ack["next_attempt_at"],
        "acknowledged": None if decided is None else decided.count("acknowledged"),
        "declined": None if decided is None else decided.count("declined"),
        "attempts": ack["attempts"],
        "ambiguousAttempts": ack["ambiguous_attempts"],
        "lastError": ack["last_error"],
        "sparkReportId": ack["spark_report_id"],
        "sentAt": ack["sent_at"],
        "rejectedStatus": ack["rejected_status"],
        "rejection": ack["rejection"],
        "alertedAt": ack["alerted_at"],
        "body": ack["body"],
        "attemptList": [
            {
                "attempt": a["attempt"],
                "startedAt": a["started_at"],
                "finishedAt": a["finished_at"],
                "outcome": a["outcome"],
                "httpStatus": a["http_status"],
                "error": a["error"],
                "sparkReportId": a["spark_report_id"],
                "retryAfterSeconds": a["retry_after_seconds"],
            }
            for a in fetch_all(conn, "list_lpc_ack_attempts", {"event_id": event_id})
        ],
    }


@lpc.command("show")
@click.argument("event_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def lpc_show(event_id: str, as_json: bool) -> None:
    """One LPC event: every target with its caps per period, the acknowledgement and the
    energy report after the event, with their status."""
    with database() as conn:
        detail = lpc_detail(conn, event_id)
    if detail is None:
        raise click.ClickException(f"no LPC event {event_id}")
    if as_json:
        print_json(detail)
        return
    received = jsonable(detail["receivedAt"])
    click.echo(f"{detail['eventId']}  {detail['notificationType']}  received {received}")
    if not detail["actedOn"]:
        click.echo("  stored only: Spark documents no meaning for LPCReservationCreated")
    ack = detail["ack"]
    if ack is not None:
        click.echo(
            f"  acknowledgement: {ack['status']}  due by {jsonable(ack['dueBy'])}  "
            f"acknowledged={ack['acknowledged'] if ack['acknowledged'] is not None else '-'} "
            f"declined={ack['declined'] if ack['declined'] is not None else '-'}  "
            f"attempts={ack['attempts']} (ambiguous {ack['ambiguousAttempts']})"
            + (f"  Spark report {ack['sparkReportId']}" if ack["sparkReportId"] else "")
        )
        for attempt in ack["attemptList"]:
            click.echo(
                f"    attempt {attempt['attempt']} {jsonable(attempt['startedAt'])}  "
                f"{attempt['outcome'] or 'in flight'}"
                + (f" HTTP {attempt['httpStatus']}" if attempt["httpStatus"] else "")
                + retry_after_text(attempt["retryAfterSeconds"])
                + (f": {attempt['error']}" if attempt["error"] else "")
            )
        if ack["rejection"]:
            click.echo(f"    rejected: {ack['rejection'][:500]}")
    energy = detail["energyReport"]
    if energy is not None:
        click.echo(
            f"  energy report: {energy['status']}"
            + (f" ({energy['dueReason']})" if energy["dueReason"] else "")
            + f"  month {energy['month']} {energy['zone']}, deadline "
            f"{jsonable(energy['deadline'])}  payloads={energy['payloads'] or 0} "
            f"kWh={energy['kWh'] if energy['kWh'] is not None else '-'}  "
            f"attempts={energy['attempts']}"
            + (f"  Spark report {energy['sparkReportId']}" if energy["sparkReportId"] else "")
        )
        if energy["rejection"]:
            click.echo(f"    rejected: {energy['rejection'][:500]}")
    elif detail["actedOn"]:
        click.echo("  energy report: not planned yet (the reports sweep plans it)")
    for target in detail["targetList"]:
        _echo_target(target, acted_on=detail["actedOn"])


def _echo_target(target: dict[str, Any], *, acted_on: bool) -> None:
    """A target, what the control system answered and the acknowledgement said, its caps."""
    name = "/".join(
        part
        for part in (target["resourceId"], target["locationId"], target["meterPointId"])
        if part
    )
    control = target["controlSystem"]
    if not acted_on:
        answer = ""
    elif control is None:
        answer = "  not dispatched: unknown to our registry"
    else:
        answer = f"  control system: {control['answer']} after {control['attempts']} attempt(s)"
        if control["reason"]:
            answer += f" ({control['reason']})"
    decision = f"  ack: {target['acknowledgement']}" if target["acknowledgement"] else ""
    click.echo(f"  {name}  resolution {target['resolution']}{answer}{decision}")
    for cap in target["caps"]:
        click.echo(
            f"    {jsonable(cap['start'])} .. {jsonable(cap['end'])}  "
            f"max {cap['maxPowerInKiloWatts']:g} kW"
        )


@lpc.command("redispatch")
@click.argument("event_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def lpc_redispatch(event_id: str, as_json: bool) -> None:
    """Give the failed cap plans of an LPC event a fresh set of attempts, and send them now.
    An acknowledgement already sent is not sent again."""
    with database() as conn, conn.transaction():
        if fetch_one(conn, "get_lpc_event", {"event_id": event_id}) is None:
            raise click.ClickException(f"no LPC event {event_id}")
        params = {"event_id": event_id, "now": utcnow()}
        count = execute(conn, "redispatch_failed_lpc", params).rowcount
    queued = bool(count) and _enqueue_dispatch()
    if as_json:
        print_json({"eventId": event_id, "pending": count, "queued": queued})
        return
    click.echo(f"{count} failed cap plan(s) of {event_id} are pending again")
    if count and not queued:
        click.echo("could not queue a dispatch; the every-minute sweep sends them")


def _enqueue_dispatch() -> bool:
    try:
        worker_app().send_task(DISPATCH_DUE_TASK, queue=DISPATCH_QUEUE)
    except Exception:
        return False
    return True
