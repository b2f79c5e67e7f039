"""Eligibility end to end: sandbox → signed webhook → the real ingress → Redis → a real
worker → PostgreSQL, compared with the sandbox's truth."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from shared.db import Connection
from tests.eligibility.support import eligible_in_spark, local_user, reconciles, transitions, users
from tests.fixtures.sandbox import (
    AREA_1_METER,
    IN_AREA_1,
    IN_AREA_2,
    OTHER_METER,
    OUTSIDE_AREAS,
    SandboxHandle,
    spark_env,
)
from tests.fixtures.services import WorkerProcess
from tests.waiting import wait_for
from tests.worker.cli import run

pytestmark = pytest.mark.slow

SETTLE_SECONDS = 1.0


@pytest.fixture
def pipeline(
    sandbox: SandboxHandle,
    ingress_url: str,
    database_url: str,
    redis_url: str,
    start_worker: Callable[..., WorkerProcess],
) -> Callable[..., WorkerProcess]:
    """Spark's eligibility events reach the ingress; call it to start the worker."""
    sandbox.register_webhook(ingress_url, notification_types=("UserEligibilityUpdated",))

    def start(concurrency: int = 1, settle_seconds: float = SETTLE_SECONDS) -> WorkerProcess:
        return start_worker(
            database_url,
            redis_url,
            concurrency=concurrency,
            SPARK_ELIGIBILITY_SETTLE_SECONDS=str(settle_seconds),
            **spark_env(sandbox),
        )

    return start


def all_done(database_url: str, count: int) -> Callable[[], bool]:
    def check() -> bool:
        rows = reconciles(database_url)
        return len(rows) == count and all(row["status"] == "done" for row in rows)

    return check


def flush(sandbox: SandboxHandle) -> dict[str, Any]:
    """Close Spark's batching window: the one UserEligibilityUpdated it sends."""
    event = sandbox.control.flush_eligibility()
    assert event is not None, "the window held no eligibility change"
    return event


def spark_truth(sandbox: SandboxHandle) -> set[str]:
    response = sandbox.api("GET", "/users/eligible", params={"pageSize": 1000})
    assert response.status_code == 200, response.text
    return {user["userId"] for user in response.json()["users"]}


def listed_eligible(database_url: str) -> set[str]:
    result = run(database_url, "users", "list", "--eligible", "--json")
    assert result.exit_code == 0, result.output
    return {item["userId"] for item in json.loads(result.output)}


def import_users(
    database_url: str, sandbox: SandboxHandle, tmp_path: Path, users: list[dict[str, Any]]
) -> None:
    """The partner's registry: import the users and push them to Spark."""
    path = tmp_path / f"users-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(users))
    result = run(database_url, "users", "import", str(path), "--json", **spark_env(sandbox))
    assert result.exit_code == 0, result.output


def located(user_id: str, **location: Any) -> dict[str, Any]:
    return {"userId": user_id, "locations": [{"locationId": f"{user_id}-home", **location}]}


def test_it_tracks_spark_eligibility_by_meter_and_by_coordinates_and_its_losses(
    sandbox: SandboxHandle,
    pipeline: Callable[..., WorkerProcess],
    database_url: str,
    db: Connection,
    tmp_path: Path,
) -> None:
    pipeline()
    import_users(
        database_url,
        sandbox,
        tmp_path,
        [
            located("by-meter", meterPointIds=[AREA_1_METER]),
            located("by-coordinates", coordinates=IN_AREA_2, meterPointIds=[OTHER_METER]),
            located("outside", coordinates=OUTSIDE_AREAS, meterPointIds=[OTHER_METER]),
            located("later", coordinates=OUTSIDE_AREAS),
        ],
    )
    first = flush(sandbox)
    assert sorted(first["payload"]["addedUsers"]) == ["by-coordinates", "by-meter"]

    wait_for(all_done(database_url, 1), 30, "the reconcile after the first batch")
    assert listed_eligible(database_url) == spark_truth(sandbox) == {"by-meter", "by-coordinates"}
    assert transitions(db) == {
        ("by-meter", True, "event", first["id"]),
        ("by-coordinates", True, "event", first["id"]),
    }

    # Moved out, and the event says so.
    import_users(
        database_url, sandbox, tmp_path, [located("by-coordinates", coordinates=OUTSIDE_AREAS)]
    )
    second = flush(sandbox)
    assert second["payload"]["removedUsers"] == ["by-coordinates"]
    wait_for(all_done(database_url, 2), 30, "the reconcile after the second batch")
    assert listed_eligible(database_url) == spark_truth(sandbox) == {"by-meter"}
    assert ("by-coordinates", False, "event", second["id"]) in transitions(db)

    # Moved out, and the event leaves it out: only the comparison with the full list sees it.
    sandbox.control.set_eligibility(announce_removals=False)
    import_users(
        database_url,
        sandbox,
        tmp_path,
        [
            located("by-meter", meterPointIds=[OTHER_METER]),
            located("later", coordinates=IN_AREA_1),
        ],
    )
    third = flush(sandbox)
    assert (third["payload"]["addedUsers"], third["payload"]["removedUsers"]) == (["later"], [])
    wait_for(all_done(database_url, 3), 30, "the reconcile after the third batch")
    assert listed_eligible(database_url) == spark_truth(sandbox) == {"later"}
    assert transitions(db) >= {
        ("by-meter", False, "reconcile", None),
        ("later", True, "event", third["id"]),
    }
    assert len(transitions(db)) == 5
    assert not users(db)["outside"]["eligible"]


def test_it_runs_one_reconcile_for_five_events_in_one_window(
    sandbox: SandboxHandle,
    pipeline: Callable[..., WorkerProcess],
    database_url: str,
    db: Connection,
) -> None:
    # Long enough for the whole burst, even on a busy machine.
    settle = 5.0
    worker = pipeline(concurrency=2, settle_seconds=settle)
    event_ids = []
    started = time.monotonic()
    for n in range(5):
        # Made in Spark by other means: our registry has never heard of them.
        eligible_in_spark(sandbox, f"elsewhere-{n}")
        event_ids.append(flush(sandbox)["id"])
    assert time.monotonic() - started < settle

    wait_for(all_done(database_url, 1), 30, "the reconcile")
    # Each event's follow-up task ran (received, then succeeded); only one did any work.
    worker.wait_for_log("Task eligibility.reconcile_eligibility[", count=10, timeout=30)
    [reconcile] = reconciles(database_url)
    assert (reconcile["status"], reconcile["trigger"], reconcile["attempts"]) == (
        "done",
        "event",
        1,
    )
    assert (reconcile["became_eligible"], reconcile["unknown_users"]) == (5, 5)
    linked = db.execute("SELECT event_id, reconcile_id FROM eligibility_hints").fetchall()
    assert {row["event_id"] for row in linked} == set(event_ids)
    assert {row["reconcile_id"] for row in linked} == {reconcile["id"]}
    state = users(db)
    assert {user_id for user_id, user in state.items() if not user["known_locally"]} == {
        f"elsewhere-{n}" for n in range(5)
    }


def test_it_applies_nothing_when_the_worker_dies_mid_reconcile_and_completes_on_rerun(
    sandbox: SandboxHandle,
    pipeline: Callable[..., WorkerProcess],
    database_url: str,
    db: Connection,
) -> None:
    local_user(db, "gains")
    local_user(db, "loses", eligible=True)
    eligible_in_spark(sandbox, "gains", "stranger")
    worker = pipeline(concurrency=1)
    before = users(db)

    with psycopg.connect(database_url) as blocker:
        # The reconcile updates users, then blocks on this lock inside its transaction.
        blocker.execute("LOCK TABLE eligibility_transitions IN EXCLUSIVE MODE")
        flush(sandbox)
        wait_for(
            lambda: _waiting_for_locks(db) > 0, 30, "the reconcile to block inside its transaction"
        )
        [running] = reconciles(database_url)
        assert (running["status"], running["attempts"]) == ("running", 1)
        children = worker.children()
        assert children, "the prefork pool has no child"
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        worker.wait_for_log("WorkerLostError", timeout=20)

        # Nothing of the half-done transaction is visible.
        assert users(db) == before
        assert transitions(db) == set()
        blocker.rollback()

    wait_for(all_done(database_url, 1), 60, "the rerun of the reconcile")
    [done] = reconciles(database_url)
    assert done["attempts"] == 2
    assert (done["became_eligible"], done["lost_eligibility"], done["unknown_users"]) == (2, 1, 1)
    assert {u for u, user in users(db).items() if user["eligible"]} == spark_truth(sandbox)
    assert {(t[0], t[1]) for t in transitions(db)} == {
        ("gains", True),
        ("stranger", True),
        ("loses", False),
    }


def _waiting_for_locks(conn: Connection) -> int:
    row = conn.execute("SELECT count(*) AS n FROM pg_locks WHERE NOT granted").fetchone()
    conn.commit()
    return int(row["n"]) if row else 0
