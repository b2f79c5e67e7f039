"""`spark-partner curves redispatch EVENT_ID`: failed plans get a fresh set of attempts."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime

import redis

from shared.db import Connection
from shared.queues import DISPATCH_QUEUE
from tests.curves.support import (
    curve_event,
    curve_payload,
    decisions,
    local_hours,
    points,
    store,
    targets,
)
from tests.fixtures.services import REPO, worker_env


def cli(database_url: str, redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    # A process of its own, so the task it queues goes to this test's Redis.
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", "--env-file", "/nonexistent", "curves", *args],
        env=worker_env(database_url, redis_url),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_it_sends_the_failed_plans_of_a_curve_again(
    db: Connection, database_url: str, redis_url: str
) -> None:
    named = targets(3)
    hours = local_hours(date(2026, 3, 4))
    document = curve_event(
        curve_payload(points(hours, [0.1] * 24), named), datetime(2026, 3, 3, tzinfo=UTC)
    )
    store(db, document)
    db.execute(
        "UPDATE curve_dispatches SET status = 'failed', attempts = 6, reason = 'HTTP 500'"
        " WHERE resource_id <> %s",
        (named[0][0],),
    )
    db.commit()

    result = cli(database_url, redis_url, "redispatch", document["eventId"], "--json")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "eventId": document["eventId"],
        "pending": 2,
        "queued": True,
    }
    rows = decisions(db, document["eventId"])
    assert {(r["status"], r["attempts"]) for r in rows.values()} == {("pending", 0)}
    client = redis.Redis.from_url(redis_url)
    assert client.llen(DISPATCH_QUEUE) == 1
    client.close()


def test_it_refuses_an_unknown_curve(database_url: str, redis_url: str) -> None:
    result = cli(database_url, redis_url, "redispatch", "no-such-curve")

    assert result.returncode != 0
    assert "no price curve no-such-curve" in result.stderr
