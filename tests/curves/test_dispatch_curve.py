"""`curves.dispatch_curve` on a real worker, with the http dispatcher against a control
system that hangs: ingestion goes on, the plan is retried, recorded as failed with the
reason, and sent once an operator asks again."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from typing import Any

import psycopg
import pytest

from tests.curves.control import HANG, ControlSystem
from tests.curves.support import local_hours, points, targets
from tests.fixtures.sandbox import SandboxHandle
from tests.fixtures.services import REPO, WorkerProcess, worker_env
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

HOURS = local_hours(date(2026, 3, 4))
DISPATCH_ENV = {
    "SPARK_DISPATCHER": "http",
    "SPARK_DISPATCH_SECRET": "partner-control-secret",
    "SPARK_DISPATCH_TIMEOUT_SECONDS": "3",
    "SPARK_DISPATCH_MAX_ATTEMPTS": "2",
    "SPARK_DISPATCH_RETRY_SECONDS": "0.2",
}


def statuses(database_url: str, event_id: str) -> list[tuple[str, int, str | None]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT status, attempts, reason FROM curve_dispatches WHERE event_id = %s"
            " ORDER BY resource_id",
            (event_id,),
        ).fetchall()
    return [(row[0], row[1], row[2]) for row in rows]


def stored_curves(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM price_curves").fetchone()
    return int(row[0]) if row else 0


def curve(prefix: str, count: int) -> dict[str, Any]:
    return {
        "targets": [{"resourceId": r, "locationId": loc} for r, loc in targets(count, prefix)],
        "priceCurveDelta": {"points": points(HOURS, [-0.3] * 24)},
        "priceArea": "NO2",
    }


def test_it_keeps_ingesting_while_the_control_system_hangs_and_loses_no_plan(
    sandbox: SandboxHandle,
    pipeline: Callable[..., WorkerProcess],
    database_url: str,
    redis_url: str,
    control: ControlSystem,
) -> None:
    control.default = HANG
    pipeline(concurrency=2, SPARK_DISPATCH_URL=control.url, **DISPATCH_ENV)
    first = sandbox.simulate_price_curve(curve("first", 3))["id"]
    control.wait_for(1)

    # The control system holds the first plans; curves keep being stored meanwhile.
    for name in ("second", "third", "fourth"):
        sandbox.simulate_price_curve(curve(name, 2))
    wait_for(lambda: stored_curves(database_url) == 4, 10, "four curves stored")
    assert {s for s, _, _ in statuses(database_url, first)} == {"sending"}
    assert len(control.received) == 1

    # Every plan is retried, then recorded as failed with the reason.
    wait_for(
        lambda: {s for s, _, _ in statuses(database_url, first)} == {"failed"},
        30,
        "the first curve's plans failed",
    )
    assert set(statuses(database_url, first)) == {("failed", 2, "no answer within 3s (attempt 2)")}
    first_requests = [r for r in control.received if r.plans[0]["eventId"] == first]
    assert len(first_requests) == 2

    # Nothing is lost: once the control system answers, an operator sends the plans again.
    control.release()
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli", "--env-file", "/nonexistent",
         "curves", "redispatch", first, "--json"],
        env=worker_env(database_url, redis_url),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"eventId": first, "pending": 3, "queued": True}
    wait_for(
        lambda: {s for s, _, _ in statuses(database_url, first)} == {"sent"},
        20,
        "the first curve's plans sent",
    )
    delivered = {p["resourceId"] for p in control.plans() if p["eventId"] == first}
    assert delivered == {r for r, _ in targets(3, "first")}
