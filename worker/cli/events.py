"""`spark-partner events` and `deadletters`: the inbox."""

from __future__ import annotations

import json
import sys
import uuid

import click

from shared.db import fetch_all, fetch_one
from worker.cli.base import (
    database,
    jsonable,
    print_json,
    settings_or_fail,
    spark_client,
    worker_app,
)


@click.group()
def events() -> None:
    """The inbox of Spark events."""


@events.command("list")
@click.option("--type", "notification_type", help="Only this notificationType.")
@click.option(
    "--status",
    type=click.Choice(["received", "processed", "unhandled", "failed"]),
    help="Only events with this status.",
)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def events_list(
    notification_type: str | None, status: str | None, limit: int, as_json: bool
) -> None:
    """Stored events, newest first."""
    with database() as conn:
        rows = fetch_all(
            conn,
            "list_events",
            {"notification_type": notification_type, "status": status, "limit": limit},
        )
    items = [
        {
            "eventId": row["event_id"],
            "notificationType": row["notification_type"],
            "status": row["status"],
            "deliveries": row["deliveries"],
            "firstReceivedAt": row["first_received_at"],
            "lastReceivedAt": row["last_received_at"],
            "source": row["first_source"],
            "eventCreatedAt": row["event_created_at"],
            "conflicts": row["conflicts"],
        }
        for row in rows
    ]
    if as_json:
        print_json(items)
        return
    if not items:
        click.echo("no events")
    for item in items:
        click.echo(
            f"{item['eventId']}  {item['notificationType']:<24} {item['status']:<10} "
            f"deliveries={item['deliveries']} source={item['source']} "
            f"first={item['firstReceivedAt']:%Y-%m-%d %H:%M:%S}Z"
        )


@events.command("show")
@click.argument("event_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def events_show(event_id: str, as_json: bool) -> None:
    """One event with its payload and every delivery."""
    with database() as conn:
        row = fetch_one(conn, "get_event", {"event_id": event_id})
        if row is None:
            raise click.ClickException(f"no event {event_id}")
        deliveries = fetch_all(conn, "list_deliveries", {"event_id": event_id})
    item = {
        "eventId": row["event_id"],
        "notificationType": row["notification_type"],
        "payloadType": row["payload_type"],
        "status": row["status"],
        "error": row["error"],
        "source": row["first_source"],
        "eventCreatedAt": row["event_created_at"],
        "firstReceivedAt": row["first_received_at"],
        "lastReceivedAt": row["last_received_at"],
        "processedAt": row["processed_at"],
        "conflicts": row["conflicts"],
        "payload": row["payload"],
        "rawBody": row["raw_body"],
        "deliveries": [
            {
                "deliveryId": d["delivery_id"],
                "notificationId": d["notification_id"],
                "source": d["source"],
                "receivedAt": d["received_at"],
                "conflict": d["conflict"],
                "bodySha256": d["body_sha256"],
            }
            for d in deliveries
        ],
    }
    if as_json:
        print_json(item)
    else:
        for key, value in item.items():
            if key not in {"payload", "rawBody", "deliveries"}:
                click.echo(f"{key}: {jsonable(value)}")
        click.echo(f"deliveries: {len(deliveries)}")
        click.echo("payload: " + json.dumps(row["payload"], indent=2))


@events.command("replay")
@click.argument("event_id")
def events_replay(event_id: str) -> None:
    """Run the handler for a stored event again (e.g. unhandled or failed ones)."""
    from worker.events.inbox import replay_event

    app = worker_app()
    with database() as conn:
        status = replay_event(conn, event_id, settings=settings_or_fail(), sender=app)
    if status is None:
        raise click.ClickException(f"no event {event_id}")
    click.echo(f"{event_id}: {status}")
    if status == "failed":
        sys.exit(1)


@events.command("backfill")
@click.option("--full", is_flag=True, help="Page through every event, not just the new ones.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def events_backfill(full: bool, as_json: bool) -> None:
    """Fetch events from Spark's /events and queue those the inbox lacks."""
    from dataclasses import asdict

    from worker.events.tasks import backfill

    settings = settings_or_fail()
    with spark_client() as client:
        report = backfill(client, settings.database_url, full=full)
    if as_json:
        print_json(asdict(report))
    else:
        click.echo(
            f"pages={report.pages} seen={report.seen} queued={report.enqueued}"
            + (f" error={report.error}" if report.error else "")
        )
    if report.error:
        sys.exit(1)


@click.group("deadletters")
def dead_letters() -> None:
    """Signed bodies that could not be read as events."""


@dead_letters.command("list")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def dead_letters_list(limit: int, as_json: bool) -> None:
    with database() as conn:
        rows = fetch_all(conn, "list_dead_letters", {"limit": limit})
    if as_json:
        print_json([dict(row) for row in rows])
        return
    if not rows:
        click.echo("no dead letters")
    for row in rows:
        click.echo(
            f"{row['id']:>6}  {row['source']:<7} deliveries={row['deliveries']} "
            f"size={row['size']} {row['reason']}"
            + (f"  [replayed: {row['replay_result']}]" if row["replayed_at"] else "")
        )


@dead_letters.command("replay")
@click.argument("dead_letter_id", type=int)
def dead_letters_replay(dead_letter_id: int) -> None:
    """Feed a dead letter through the ingest path again (after a fix)."""
    from worker.events.inbox import replay_dead_letter

    app = worker_app()
    with database() as conn:
        result = replay_dead_letter(
            conn,
            dead_letter_id,
            delivery_id=f"replay-{uuid.uuid4()}",
            settings=settings_or_fail(),
            sender=app,
        )
    if result is None:
        raise click.ClickException(f"no dead letter {dead_letter_id}")
    click.echo(result)
    if result.startswith("still broken"):
        sys.exit(1)
