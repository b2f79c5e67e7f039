"""`spark-partner consumption`: readings in, from files, and the batches they came in."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path

import click

from shared.db import fetch_all
from shared.timeutil import parse_spark_datetime, utcnow
from worker.cli.base import database, print_json
from worker.consumption.store import StoreResult


def _now(value: str | None) -> datetime:
    if value is None:
        return utcnow()
    try:
        return parse_spark_datetime(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--now") from None


@click.group()
def consumption() -> None:
    """Readings of what the partner's resources used."""


@consumption.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--now", "now_text", hidden=True, help="The time to act as (ISO 8601), for tests.")
def consumption_import(file: Path, as_json: bool, now_text: str | None) -> None:
    """Import readings from a CSV FILE.

    Columns (header required, any order): resourceId, locationId, start, end, kWh, readingId;
    start and end in ISO 8601 with Z or an offset. A reading sent again replaces the one
    stored; bad rows are listed with their line and skipped.
    """
    from worker.consumption.csv_import import BadFile, import_csv

    now = _now(now_text)
    started = time.monotonic()

    def progress(total: StoreResult) -> None:
        rate = total.readings / max(time.monotonic() - started, 1e-9)
        click.echo(
            f"\r{total.readings} readings ({total.inserted} new, {total.replaced} replaced, "
            f"{total.rejected} rejected) {rate:,.0f}/s",
            err=True,
            nl=False,
        )

    with database() as conn, file.open("rb") as stream:
        try:
            result = import_csv(conn, stream, now=now, progress=progress)
        except BadFile as exc:
            raise click.ClickException(f"{file}: {exc}") from None
    click.echo("", err=True)
    if as_json:
        print_json(result.to_json())
    else:
        click.echo(
            f"batch {result.batch_id}: {result.readings} readings, {result.inserted} new, "
            f"{result.replaced} replaced, {result.unchanged} unchanged, "
            f"{result.rejected} rejected, {result.late} late "
            f"({time.monotonic() - started:.1f} s)"
        )
        for error in result.errors[:20]:
            click.echo(f"  line {error.row}: {error.error}")
        if result.rejected > 20:
            click.echo(f"  ... {result.rejected - 20} more rejected")
        if result.late:
            click.echo(
                "  late: readings for curves whose report was built already; they are "
                "recorded (`reports show EVENT_ID`), the reports are not sent again"
            )
    if result.rejected:
        sys.exit(1)


@consumption.command("batches")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def consumption_batches(limit: int, as_json: bool) -> None:
    """The latest batches of readings: where from, and what became of them."""
    with database() as conn:
        rows = fetch_all(conn, "list_consumption_batches", {"limit": limit})
    items = [
        {
            "batchId": row["batch_id"],
            "source": row["source"],
            "receivedAt": row["received_at"],
            "storedAt": row["stored_at"],
            "readings": row["readings"],
            "inserted": row["inserted"],
            "replaced": row["replaced"],
            "unchanged": row["unchanged"],
            "rejected": row["rejected"],
            "late": row["late"],
        }
        for row in rows
    ]
    if as_json:
        print_json(items)
        return
    if not items:
        click.echo("no batches")
    for item in items:
        click.echo(
            f"{item['batchId']}  {item['source']:<4} {item['readings']:>8} readings  "
            f"new={item['inserted']} replaced={item['replaced']} rejected={item['rejected']} "
            f"late={item['late']}"
        )
