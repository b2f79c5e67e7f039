"""`spark-partner eligibility`: compare with Spark's list of eligible users, and look back."""

from __future__ import annotations

import sys

import click

from shared.db import fetch_all
from worker.cli.base import database, print_json, settings_or_fail, spark_client


@click.group()
def eligibility() -> None:
    """Which users Spark finds eligible, and the reconciles that keep track of it."""


@eligibility.command("sync")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def eligibility_sync(as_json: bool) -> None:
    """Compare Spark's /users/eligible with our users now and record every change."""
    from worker.eligibility.reconcile import reconcile_now

    settings = settings_or_fail()
    auto_enroll = settings.auto_enroll == "consented"
    with spark_client() as client:
        result = reconcile_now(settings.database_url, client, auto_enroll=auto_enroll)
    enroll_error = None
    if result.to_enroll:
        from worker.eligibility.tasks import enqueue_enrollment

        try:
            enqueue_enrollment(result.to_enroll)
        except Exception as exc:
            enroll_error = f"could not request enrollment: {type(exc).__name__}: {exc}"
    summary = result.summary()
    if as_json:
        print_json({**summary, "enrollError": enroll_error})
    else:
        click.echo(
            f"reconcile {result.reconcile_id}: {result.outcome}; Spark lists "
            f"{result.spark_eligible} eligible, {result.became_eligible} became eligible "
            f"({result.unknown_users} not known here), {result.lost_eligibility} lost "
            f"eligibility, {len(result.to_enroll)} to enroll "
            f"(read {result.read_seconds:.1f}s, applied {result.apply_seconds:.1f}s)"
        )
        for problem in (result.error, enroll_error):
            if problem:
                click.echo(problem, err=True)
    if result.outcome in {"retry", "failed"} or enroll_error:
        sys.exit(1)


@eligibility.command("status")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def eligibility_status(limit: int, as_json: bool) -> None:
    """The latest reconciles, newest first."""
    with database() as conn:
        rows = fetch_all(conn, "list_reconciles", {"limit": limit})
    items = [
        {
            "reconcileId": row["id"],
            "trigger": row["trigger"],
            "status": row["status"],
            "requestedAt": row["requested_at"],
            "dueAt": row["due_at"],
            "startedAt": row["started_at"],
            "finishedAt": row["finished_at"],
            "attempts": row["attempts"],
            "hints": row["hints"],
            "sparkEligible": row["spark_eligible"],
            "becameEligible": row["became_eligible"],
            "lostEligibility": row["lost_eligibility"],
            "unknownUsers": row["unknown_users"],
            "error": row["error"],
        }
        for row in rows
    ]
    if as_json:
        print_json(items)
        return
    if not items:
        click.echo("no reconciles yet")
    for item in items:
        counts = (
            f"spark={item['sparkEligible']} +{item['becameEligible']} "
            f"-{item['lostEligibility']} unknown={item['unknownUsers']}"
            if item["sparkEligible"] is not None
            else ""
        )
        click.echo(
            f"{item['reconcileId']:>6}  {item['trigger']:<7} {item['status']:<8} "
            f"requested={item['requestedAt']:%Y-%m-%d %H:%M:%S}Z attempts={item['attempts']} "
            f"hints={item['hints']} {counts}" + (f"  [{item['error']}]" if item["error"] else "")
        )
