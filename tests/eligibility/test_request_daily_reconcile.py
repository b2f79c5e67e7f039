"""`eligibility.request_daily_reconcile` on a real worker: the daily full comparison."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from shared.db import Connection
from shared.timeutil import utcnow
from tests.eligibility.support import (
    beat_like,
    eligibility_event,
    eligible_users,
    handle_event,
    local_user,
    new_reconcile,
    reconciles,
    transitions,
)
from tests.fixtures.sandbox import SandboxHandle, spark_env
from tests.fixtures.services import WorkerProcess
from tests.waiting import wait_for
from worker.schedule import beat_schedule

pytestmark = pytest.mark.slow

TASK = "eligibility.request_daily_reconcile"


def test_it_is_on_the_beat_schedule_once_a_day() -> None:
    [entry] = [e for e in beat_schedule().values() if e["task"] == TASK]
    assert len(entry["schedule"].hour) == 1
    assert len(entry["schedule"].minute) == 1
    assert entry["options"]["queue"] == "spark"


def test_it_finds_a_loss_no_event_announced(
    sandbox: SandboxHandle,
    database_url: str,
    redis_url: str,
    db: Connection,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    local_user(db, "silently-lost", eligible=True)
    start_worker(database_url, redis_url, concurrency=1, **spark_env(sandbox))

    with beat_like(redis_url) as send:
        send(TASK)
        wait_for(lambda: [r["status"] for r in reconciles(database_url)] == ["done"], 30, "it")

    [daily] = reconciles(database_url)
    assert daily["trigger"] == "daily"
    assert eligible_users(db) == set()
    assert transitions(db) == {("silently-lost", False, "reconcile", None)}


def test_it_brings_a_pending_reconcile_forward_instead_of_adding_one(
    sandbox: SandboxHandle,
    database_url: str,
    redis_url: str,
    db: Connection,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    local_user(db, "a", eligible=True)
    done = new_reconcile(db, status="done")
    document = eligibility_event(removed=["a"])
    handle_event(db, document)  # pending, due only after the settle delay (60 s here)
    db.execute("UPDATE eligibility_reconciles SET due_at = %s WHERE status = 'pending'",
               (utcnow() + timedelta(hours=1),))  # fmt: skip
    db.commit()
    start_worker(database_url, redis_url, concurrency=1, **spark_env(sandbox))

    with beat_like(redis_url) as send:
        send(TASK)
        wait_for(
            lambda: [r["status"] for r in reconciles(database_url)] == ["done", "done"], 30, "it"
        )

    # The event's reconcile ran, brought forward; no daily one was added beside it.
    rows = [(r["id"], r["trigger"]) for r in reconciles(database_url)]
    assert [trigger for _, trigger in rows] == ["manual", "event"]
    assert rows[0][0] == done
    assert transitions(db) == {("a", False, "event", document["eventId"])}
