"""`spark-partner meters`: meter points (MPIDs) as Spark sees them."""

from __future__ import annotations

import click

from shared.db import fetch_all
from shared.spark_api import SparkError
from worker.cli.base import database, print_json, spark_client


@click.group()
def meters() -> None:
    """Meter points (MPIDs)."""


@meters.command("check")
@click.argument("mpid")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def meters_check(mpid: str, as_json: bool) -> None:
    """Ask Spark whether meter point MPID is eligible for the Spark program
    (`GET /meters/{mpid}/eligible`), and show which registry locations use it."""
    from worker.users.spark_calls import path_id

    with spark_client() as client:
        try:
            answer = client.get_json(f"/meters/{path_id(mpid)}/eligible")
        except SparkError as exc:
            raise click.ClickException(str(exc)) from None
    eligible = bool(isinstance(answer, dict) and answer.get("isEligible"))
    with database() as conn:
        rows = fetch_all(conn, "locations_with_meter", {"meter_point_id": mpid})
    locations = [{"locationId": row["location_id"], "userId": row["user_id"]} for row in rows]
    if as_json:
        print_json({"meterPointId": mpid, "isEligible": eligible, "locations": locations})
        return
    click.echo(f"{mpid}: " + ("eligible for Spark" if eligible else "not eligible for Spark"))
    if not locations:
        click.echo("  used by no location in the registry")
    for location in locations:
        click.echo(f"  used by location {location['locationId']} of user {location['userId']}")
