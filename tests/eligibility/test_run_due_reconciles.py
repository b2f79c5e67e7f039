"""`eligibility.run_due_reconciles` on a real worker: what beat runs every minute."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from shared.db import Connection
from shared.timeutil import utcnow
from tests.eligibility.support import (
    beat_like,
    eligible_in_spark,
    eligible_users,
    local_user,
    new_reconcile,
    reconciles,
)
from tests.fixtures.sandbox import SandboxHandle, spark_env
from tests.fixtures.services import WorkerProcess
from worker.schedule import beat_schedule

pytestmark = pytest.mark.slow

TASK = "eligibility.run_due_reconciles"


def test_it_is_on_the_beat_schedule_every_minute() -> None:
    [entry] = [e for e in beat_schedule().values() if e["task"] == TASK]
    assert entry["schedule"].run_every == timedelta(minutes=1)
    assert entry["options"]["queue"] == "spark"


def test_it_runs_due_and_abandoned_reconciles_and_leaves_the_others(
    sandbox: SandboxHandle,
    database_url: str,
    redis_url: str,
    db: Connection,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    local_user(db, "a")
    eligible_in_spark(sandbox, "a")
    abandoned = new_reconcile(db, status="running", attempts=1)
    due = new_reconcile(db, due_at=utcnow() - timedelta(seconds=1))
    worker = start_worker(database_url, redis_url, concurrency=1, **spark_env(sandbox))
    with beat_like(redis_url) as send:
        send(TASK)
        worker.wait_for_log(f"Task {TASK}", count=2)  # received, then succeeded
        not_due = new_reconcile(db, due_at=utcnow() + timedelta(hours=1))
        send(TASK)
        worker.wait_for_log(f"Task {TASK}", count=4)

    by_id = {r["id"]: r for r in reconciles(database_url)}
    assert (by_id[abandoned]["status"], by_id[abandoned]["attempts"]) == ("done", 2)
    assert (by_id[due]["status"], by_id[due]["attempts"]) == ("done", 1)
    assert (by_id[not_due]["status"], by_id[not_due]["attempts"]) == ("pending", 0)
    assert eligible_users(db) == {"a"}
