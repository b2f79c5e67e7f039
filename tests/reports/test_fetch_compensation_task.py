"""`reports.fetch_compensation`: once a day, Spark's compensation feedback for every user with
a report sent this month, in a real worker."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fixtures.sandbox import SandboxHandle
from tests.fixtures.services import WorkerProcess
from tests.reports.support import (
    HOUR,
    Tasks,
    register_charger,
    rows,
    send_hour_reports,
    utc,
)

pytestmark = pytest.mark.slow

START = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
NOW = START + timedelta(hours=6)
TASK = "reports.fetch_compensation"


def test_it_records_compensation_and_problems_of_users_with_reports_this_month(
    sandbox: SandboxHandle,
    database_url: str,
    tasks: Tasks,
    spark_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    # u-1 is at Spark with a metered location; u-2 is only in our registry (Spark: 404);
    # u-3 has no report this month and is not asked for.
    sandbox.add_user("u-1")
    sandbox.add_location("u-1", "loc-1", meterPointIds=["707057500000000001"])
    for user_id, location_id, resource_id in [
        ("u-1", "loc-1", "ev-1"), ("u-2", "loc-2", "ev-2"), ("u-3", "loc-3", "ev-3"),
    ]:  # fmt: skip
        register_charger(database_url, user_id, location_id, resource_id)
    targets = [("ev-1", "loc-1"), ("ev-2", "loc-2")]
    send_hour_reports(sandbox, database_url, tmp_path, targets, start=START, kwh=6.0, now=NOW)
    worker = spark_worker(1)
    first = tasks.send(TASK, now=utc(NOW))
    worker.wait_for_log(f"Task {TASK}[{first}] succeeded", 30)
    second = tasks.send(TASK, now=utc(NOW + HOUR))
    worker.wait_for_log(f"Task {TASK}[{second}] succeeded", 30)

    stored = rows(database_url, "SELECT * FROM compensations")
    assert [(r["user_id"], r["location_id"], r["active_amount"]) for r in stored] == [
        ("u-1", "loc-1", 3.0)
    ]
    fetches = rows(database_url, "SELECT * FROM compensation_fetches ORDER BY user_id")
    assert [(f["user_id"], f["error"]) for f in fetches] == [
        ("u-1", None),
        ("u-2", "Spark does not know this user (404)"),
    ]
    # One question per user with a report; the second run of the day asked nobody.
    gets = [r["path"] for r in sandbox.control.requests() if r["path"].endswith("/compensation")]
    assert sorted(path.split("/")[-2] for path in gets) == ["u-1", "u-2"]
