"""`spark-partner curves`: stored price curves, what is in force per target, and dispatch."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import click

from shared.db import Connection, execute, fetch_all
from shared.timeutil import utcnow
from worker.cli.base import database, jsonable, print_json, settings_or_fail, worker_app
from worker.curves.payload import format_time_span
from worker.curves.plans import TargetPlan, UnknownCurve, load_curve, plans_for_targets

DEFAULT_SHOWN_TARGETS = 1000


@click.group()
def curves() -> None:
    """Price curves from Spark and the plans made from them."""


@curves.command("list")
@click.option(
    "--date",
    "local_date",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Only curves for this local day (SPARK_TIMEZONE).",
)
@click.option("--area", help="Only curves for this price area.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def curves_list(local_date: datetime | None, area: str | None, limit: int, as_json: bool) -> None:
    """Stored curves, newest day first."""
    with database() as conn:
        rows = fetch_all(
            conn,
            "list_price_curves",
            {
                "local_date": local_date.date() if local_date else None,
                "price_area": area,
                "limit": limit,
            },
        )
        counts = _dispatch_counts(conn, [row["event_id"] for row in rows])
    items = [
        {
            "eventId": row["event_id"],
            "eventCreatedAt": row["event_created_at"],
            "localDate": _day(row["local_date"]),
            "priceArea": row["price_area"],
            "currency": row["currency"],
            "energyUnit": row["energy_unit"],
            "resolution": format_time_span(row["resolution"]),
            "periods": row["periods"],
            "firstPeriodStart": row["first_period_start"],
            "lastPeriodEnd": row["last_period_end"],
            "targets": row["target_count"],
            "storedAt": row["stored_at"],
            "dispatch": counts.get(row["event_id"], {}),
        }
        for row in rows
    ]
    if as_json:
        print_json(items)
        return
    if not items:
        click.echo("no curves")
    for item in items:
        dispatch = " ".join(f"{k}={v}" for k, v in sorted(item["dispatch"].items()))
        click.echo(
            f"{item['eventId']}  {item['localDate']}  {item['priceArea']:<4} "
            f"periods={item['periods']} targets={item['targets']} {dispatch}"
        )


@curves.command("show")
@click.argument("event_id")
@click.option(
    "--targets",
    "shown",
    default=DEFAULT_SHOWN_TARGETS,
    show_default=True,
    type=click.IntRange(0),
    help="Show at most this many targets (0: all).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def curves_show(event_id: str, shown: int, as_json: bool) -> None:
    """One curve: its periods, and per target what is in force (after newer curves) and what
    its control system was told."""
    with database() as conn:
        try:
            curve = load_curve(conn, event_id)
        except UnknownCurve:
            raise click.ClickException(f"no price curve {event_id}") from None
        periods = fetch_all(conn, "list_price_curve_periods", {"event_id": event_id})
        around = fetch_all(conn, "curves_around", {"event_id": event_id})
        limit = shown or curve.target_count
        targets = fetch_all(
            conn,
            "price_curve_targets_page",
            {
                "event_id": event_id,
                "after_resource_id": None,
                "after_location_id": None,
                "limit": limit,
            },
        )
        pairs = [(row["resource_id"], row["location_id"]) for row in targets]
        plans = plans_for_targets(conn, event_id, pairs)
        decisions = _decisions(conn, event_id, pairs)
        counts = _dispatch_counts(conn, [event_id]).get(event_id, {})
    item = {
        "eventId": curve.event_id,
        "eventCreatedAt": curve.event_created_at,
        "localDate": _day(curve.local_date),
        "priceArea": curve.price_area,
        "currency": curve.currency,
        "energyUnit": curve.energy_unit,
        "resolution": format_time_span(curve.resolution),
        "periods": [
            {
                "start": row["period_start"],
                "end": row["period_end"],
                "timestamp": row["spark_timestamp"],
                "price": row["price"],
            }
            for row in periods
        ],
        "olderCurves": [_neighbour(row) for row in around if not row["newer"]],
        "newerCurves": [_neighbour(row) for row in around if row["newer"]],
        "targetCount": curve.target_count,
        "targetsShown": len(plans),
        "dispatch": counts,
        "targets": [
            _target(plan, decisions.get((plan.resource_id, plan.location_id))) for plan in plans
        ],
    }
    if as_json:
        print_json(item)
        return
    _print_curve(item)


@curves.command("redispatch")
@click.argument("event_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def curves_redispatch(event_id: str, as_json: bool) -> None:
    """Give the failed plans of a curve a fresh set of attempts, and send them now."""
    with database() as conn, conn.transaction():
        try:
            load_curve(conn, event_id)
        except UnknownCurve:
            raise click.ClickException(f"no price curve {event_id}") from None
        params = {"event_id": event_id, "now": utcnow()}
        count = execute(conn, "redispatch_failed", params).rowcount
    queued = bool(count) and _enqueue_dispatch(event_id)
    if as_json:
        print_json({"eventId": event_id, "pending": count, "queued": queued})
        return
    click.echo(f"{count} failed plan(s) of {event_id} are pending again")
    if count and not queued:
        click.echo("could not queue a dispatch; the every-minute sweep sends them")


def _enqueue_dispatch(event_id: str) -> bool:
    from shared.queues import DISPATCH_QUEUE
    from worker.curves.handler import DISPATCH_CURVE_TASK

    try:
        worker_app().send_task(
            DISPATCH_CURVE_TASK, kwargs={"event_id": event_id}, queue=DISPATCH_QUEUE
        )
    except Exception:
        return False
    return True


@curves.command("checks")
@click.option("--limit", default=14, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def curves_checks(limit: int, as_json: bool) -> None:
    """The daily checks for tomorrow's curve, newest first."""
    with database() as conn:
        rows = fetch_all(conn, "list_curve_checks", {"limit": limit})
    items = [
        {
            "curveDate": _day(row["curve_date"]),
            "status": row["status"],
            "expectedAreas": row["expected_areas"],
            "presentAreas": row["present_areas"],
            "missingAreas": row["missing_areas"],
            "eventIds": row["curve_event_ids"],
            "runs": row["runs"],
            "backfillEnqueued": row["backfill_enqueued"],
            "backfillError": row["backfill_error"],
            "firstRunAt": row["first_run_at"],
            "lastRunAt": row["last_run_at"],
            "finishedAt": row["finished_at"],
        }
        for row in rows
    ]
    if as_json:
        print_json(items)
        return
    if not items:
        click.echo("no checks yet")
    for item in items:
        present = ",".join(item["presentAreas"]) or "-"
        missing = ",".join(item["missingAreas"]) or "-"
        click.echo(
            f"{item['curveDate']}  {item['status']:<8} present={present} missing={missing} "
            f"runs={item['runs']}"
        )


@curves.command("check")
@click.option(
    "--now",
    "at",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"]),
    help="Check as if it were this time (with an offset); default: now.",
)
@click.option(
    "--wait", default=30.0, show_default=True, help="Seconds to wait for backfilled events."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def curves_check(at: datetime | None, wait: float, as_json: bool) -> None:
    """Run the daily check for tomorrow's curve now (it is due from SPARK_CURVE_CHECK_TIME)."""
    from shared.spark_api import SparkClient
    from worker.curves.check import run_check

    settings = settings_or_fail()
    client = SparkClient.from_settings(settings) if settings.spark_configured else None
    try:
        result = run_check(
            settings.database_url,
            settings.curves,
            settings.timezone,
            client=client,
            now=at or utcnow(),
            wait_seconds=wait,
        )
    finally:
        if client is not None:
            client.close()
    if result is None:
        raise click.ClickException(
            "no check ran: before SPARK_CURVE_CHECK_TIME, finished for tomorrow, or running"
        )
    if as_json:
        print_json(result.to_json())
    else:
        summary = result.to_json()
        click.echo(
            f"{summary['curveDate']}: {summary['status']} "
            f"present={','.join(summary['presentAreas']) or '-'} "
            f"missing={','.join(summary['missingAreas']) or '-'}"
        )


def _dispatch_counts(conn: Connection, event_ids: list[str]) -> dict[str, dict[str, int]]:
    rows = fetch_all(conn, "dispatch_status_counts", {"event_ids": event_ids})
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        counts.setdefault(row["event_id"], {})[row["status"]] = row["decisions"]
    return counts


def _decisions(
    conn: Connection, event_id: str, targets: list[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, Any]]:
    rows = fetch_all(
        conn,
        "dispatch_decisions_for_targets",
        {
            "event_id": event_id,
            "resource_ids": [resource_id for resource_id, _ in targets],
            "location_ids": [location_id for _, location_id in targets],
        },
    )
    return {
        (row["resource_id"], row["location_id"]): {
            "status": row["status"],
            "revision": row["revision"],
            "attempts": row["attempts"],
            "reason": row["reason"],
            "dispatcher": row["dispatcher"],
            "nextAttemptAt": row["next_attempt_at"] if row["status"] == "pending" else None,
            "sentRevision": row["sent_revision"],
            "sentAt": row["sent_at"],
            "updatedAt": row["updated_at"],
        }
        for row in rows
    }


def _target(plan: TargetPlan, decision: dict[str, Any] | None) -> dict[str, Any]:
    periods: list[dict[str, Any]] = [
        {
            "start": p.start,
            "end": p.end,
            "timestamp": p.spark_timestamp,
            "price": p.price,
            "superseded": False,
            "supersededBy": None,
            "effectiveEventId": plan.curve.event_id,
            "effectivePrice": p.price,
        }
        for p in plan.periods
    ]
    periods += [
        {
            "start": p.start,
            "end": p.end,
            "timestamp": p.spark_timestamp,
            "price": p.price,
            "superseded": True,
            "supersededBy": p.superseded_by,
            "effectiveEventId": p.superseded_by,
            "effectivePrice": p.superseding_price,
        }
        for p in plan.superseded
    ]
    periods.sort(key=lambda period: period["start"])
    return {
        "resourceId": plan.resource_id,
        "locationId": plan.location_id,
        "periods": periods,
        "dispatch": decision,
    }


def _neighbour(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "eventId": row["event_id"],
        "eventCreatedAt": row["event_created_at"],
        "priceArea": row["price_area"],
        "targets": row["target_count"],
    }


def _day(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _print_curve(item: dict[str, Any]) -> None:
    for key in ("eventId", "eventCreatedAt", "localDate", "priceArea", "currency", "energyUnit",
                "resolution", "targetCount"):  # fmt: skip
        click.echo(f"{key}: {jsonable(item[key])}")
    click.echo("newer curves: " + (", ".join(c["eventId"] for c in item["newerCurves"]) or "-"))
    click.echo("dispatch: " + (" ".join(f"{k}={v}" for k, v in item["dispatch"].items()) or "-"))
    click.echo("periods:")
    for period in item["periods"]:
        click.echo(f"  {period['start']:%Y-%m-%d %H:%M:%S}Z  {period['price']:+.4f}")
    for target in item["targets"]:
        taken = sum(p["superseded"] for p in target["periods"])
        status = target["dispatch"]["status"] if target["dispatch"] else "-"
        click.echo(
            f"target {target['resourceId']}/{target['locationId']}: "
            f"{len(target['periods']) - taken} in force, {taken} superseded; dispatch {status}"
        )
    if item["targetsShown"] < item["targetCount"]:
        click.echo(f"({item['targetsShown']} of {item['targetCount']} targets shown)")
