"""What the users tests share: Spark settings for the sandbox, files to import, the CLI."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
from click.testing import Result
from psycopg.rows import dict_row

from tests.fixtures.sandbox import SandboxHandle, spark_env
from tests.spec import API_PREFIX, assert_request_matches
from tests.worker.cli import run
from worker.users.import_formats import CSV_COLUMNS

# Inside the sandbox's default grid neighbourhood "area-1": eligible for Spark.
ELIGIBLE_MPID = "707057500000100001"
# On no neighbourhood's list.
OTHER_MPID = "707057500012345678"


def cli(database_url: str, *args: str, sandbox: SandboxHandle | None = None, **env: str) -> Result:
    """`spark-partner ARGS` in process, with Spark pointing at `sandbox` when given."""
    return run(database_url, *args, **(spark_env(sandbox) if sandbox else {}), **env)


def cli_json(
    database_url: str, *args: str, sandbox: SandboxHandle | None = None, **env: str
) -> Any:
    result = cli(database_url, *args, "--json", sandbox=sandbox, **env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def write_csv(
    path: Path, rows: list[dict[str, Any]], header: tuple[str, ...] = CSV_COLUMNS
) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=header)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: "" if value is None else value for key, value in row.items()})
    return path


def write_json(path: Path, users: Sequence[object]) -> Path:
    # `object`: the import tests also write entries that are not user documents.
    path.write_text(json.dumps(users, indent=2), encoding="utf-8")
    return path


def user_document(
    user_id: str,
    *,
    consented: bool | None = True,
    mpids: tuple[str, ...] = (OTHER_MPID,),
    location_type: str = "Residential",
    resources: tuple[tuple[str, str], ...] = (),
    vehicles: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One user with one location `{user_id}-home` for the JSON format."""
    document: dict[str, Any] = {
        "userId": user_id,
        "locations": [
            {
                "locationId": f"{user_id}-home",
                "locationType": location_type,
                "meterPointIds": list(mpids),
                "resources": [
                    {"resourceId": rid, "resourceType": rtype} for rid, rtype in resources
                ],
            }
        ],
        "vehicles": [{"resourceId": vid} for vid in vehicles],
    }
    if consented is not None:
        document["consented"] = consented
    return document


def rows(database_url: str, sql: str, params: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()


def execute(database_url: str, sql: str, params: Any = None) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(sql, params)


def api_requests(sandbox: SandboxHandle) -> list[dict[str, Any]]:
    """Requests the sandbox received on Spark's API (not the token endpoint), oldest first."""
    return [r for r in sandbox.control.requests() if r["path"].startswith(API_PREFIX + "/")]


def assert_requests_match_spec(received: list[dict[str, Any]]) -> None:
    for request in received:
        assert_request_matches(
            request["method"], request["path"], request["json"], query=request["query"]
        )


def calls(received: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(method, path without the API prefix) of each request."""
    return [(r["method"], r["path"].removeprefix(API_PREFIX)) for r in received]


def add_report(
    database_url: str,
    *,
    event_id: str,
    month: date,
    status: str,
    target: tuple[str, str],
    kwh: float | None = None,
    part: int = 1,
    built: bool = False,
) -> None:
    """A price curve `event_id` for one (resource_id, location_id) target, and its report (or
    report `part`) for the local `month` in `status`, carrying `kwh` for the target when
    given; `built` gives it a body, as the sender does before the first attempt."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO events (event_id, notification_type, payload_type, payload, raw_body,"
            " first_received_at, last_received_at, first_source) VALUES (%s,"
            " 'PriceCurveCreated', 'PriceCurve', '{}', '\\x7b7d', now(), now(), 'webhook')"
            " ON CONFLICT DO NOTHING",
            (event_id,),
        )
        conn.execute(
            "INSERT INTO price_curves (event_id, event_created_at, price_area, resolution,"
            " target_count) VALUES (%s, now(), 'NO1', interval '1 hour', 1)"
            " ON CONFLICT DO NOTHING",
            (event_id,),
        )
        conn.execute(
            "INSERT INTO price_curve_targets (event_id, resource_id, location_id)"
            " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (event_id, *target),
        )
        conn.execute(
            "INSERT INTO reports (event_id, part, parts, month, first_period_start,"
            " last_period_end, status, body, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, now(), now(), %s, %s, now(), now())",
            (event_id, part, part, month, status, "{}" if built or kwh is not None else None),
        )
        if kwh is not None:
            conn.execute(
                "INSERT INTO report_payloads (event_id, part, resource_id, location_id, kwh,"
                " points) VALUES (%s, %s, %s, %s, %s, 24)",
                (event_id, part, *target, kwh),
            )
