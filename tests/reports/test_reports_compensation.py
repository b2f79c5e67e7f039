"""`spark-partner reports compensation [--fetch]`: what Spark says users earn this month, and
the problems that keep it from being paid."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.fixtures.sandbox import SandboxHandle
from tests.reports.support import (
    cli,
    cli_json,
    register_charger,
    send_hour_reports,
    utc,
)

START = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
NOW = START + timedelta(hours=6)
METER = "707057500000000001"
OTHER_METER = "707057500000000002"


def register(database_url: str, sandbox: SandboxHandle) -> None:
    """u-1 has a resource with a meter that is not its location's (its payload is left out of
    the report); u-2's location has no meter point at all; u-3 is in order. In the registry
    and at Spark."""
    people = [
        ("u-1", "loc-1", [METER], "ev-1", OTHER_METER),
        ("u-2", "loc-2", [], "ev-2", None),
        ("u-3", "loc-3", [METER.replace("1", "3")], "ev-3", None),
    ]
    for user_id, location_id, meters, resource_id, meter in people:
        sandbox.add_user(user_id)
        sandbox.add_location(user_id, location_id, meterPointIds=meters)
        register_charger(
            database_url,
            user_id,
            location_id,
            resource_id,
            meter_point_ids=meters,
            meter_point_id=meter,
        )


def test_it_fetches_and_shows_amounts_and_problems_per_location(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    register(database_url, sandbox)
    targets = [("ev-1", "loc-1"), ("ev-2", "loc-2"), ("ev-3", "loc-3")]
    send_hour_reports(sandbox, database_url, tmp_path, targets, start=START, kwh=4.0, now=NOW)

    fetched = cli_json(
        database_url, "reports", "compensation", "--fetch", "--now", utc(NOW), sandbox=sandbox
    )
    again = cli_json(
        database_url, "reports", "compensation", "--fetch", "--now", utc(NOW), sandbox=sandbox
    )
    text = cli(database_url, "reports", "compensation", "--month", "2026-03")

    assert fetched["fetch"]["fetched"] == 2
    assert again["fetch"]["fetched"] == 0  # once a day is enough
    by_user = {item["userId"]: item for item in fetched["locations"]}
    # 4 kWh at a delta of -0.5 NOK/kWh.
    assert (by_user["u-3"]["activeAmount"], by_user["u-3"]["blockedAmount"]) == (2.0, 0.0)
    assert by_user["u-3"]["problems"] == []
    # u-1's payload never went: Spark would not pay a meter that is not its location's.
    assert "u-1" not in by_user
    assert by_user["u-2"]["blockedAmount"] == 2.0
    assert [p["problemType"] for p in by_user["u-2"]["problems"]] == ["MissingMpidOnLocation"]
    assert "PROBLEMS: MissingMpidOnLocation" in text.output
