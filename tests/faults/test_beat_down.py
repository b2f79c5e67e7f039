"""Beat down across a deadline: the hourly reports sweep (the final sweeps on a month's last
day and after it) missed while beat was down runs as soon as beat is back, once.

Beat runs RedBeat, which keeps each job's last run in Redis: a job whose next run passed
while no beat ran is overdue when a beat starts, and is sent at once (a single run, not one
per missed tick). Here beat's record says the last sweep ran three hours ago (the ticks of
the hours in between, a deadline among them, missed); beat comes back and the sweep is sent
within its first tick. What a late sweep then does at any `now` (sends what may still go,
marks and alerts what is too late) is tests/reports/test_sweep_task.py, with the clock
controlled. No worker runs: the messages stay in their queue, where the test reads them.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from redbeat.decoder import RedBeatJSONEncoder

from devstack.servers import terminate
from shared.queues import DISPATCH_QUEUE, SPARK_QUEUE
from tests.faults.test_two_beats import start_beat
from tests.fixtures.services import worker_env
from tests.waiting import wait_for
from worker.ops.beat import BEAT_HEARTBEAT_KEY

SWEEP_KEY = "spark-partner:redbeat:sweep-reports"
SWEEP_TASK = "reports.sweep"
MISSED = timedelta(hours=3)


def queued(client: redis.Redis, task: str) -> int:
    return sum(
        json.loads(raw)["headers"]["task"] == task
        for queue in (SPARK_QUEUE, DISPATCH_QUEUE)
        for raw in client.lrange(queue, 0, -1)
    )


def test_it_runs_the_reports_sweep_missed_while_beat_was_down_once_when_beat_is_back(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = worker_env(database_url, redis_url)
    client = redis.Redis.from_url(redis_url)
    # A first beat stores its schedule in Redis, each job with its last run.
    first = start_beat(env, tmp_path / "beat-1.log")
    try:
        wait_for(lambda: client.get(BEAT_HEARTBEAT_KEY) is not None, 90, "the first beat's tick")
        assert client.hget(SWEEP_KEY, "meta") is not None
    finally:
        terminate(first, 20)
    client.delete(SPARK_QUEUE, DISPATCH_QUEUE)

    # Beat was down across the last three hourly ticks.
    last_run = datetime.now(UTC) - MISSED
    client.hset(SWEEP_KEY, "meta", json.dumps({"last_run_at": last_run}, cls=RedBeatJSONEncoder))
    started = time.monotonic()
    second = start_beat(env, tmp_path / "beat-2.log")
    try:
        wait_for(lambda: queued(client, SWEEP_TASK) >= 1, 90, "the missed sweep")
        after = time.monotonic() - started
        # Two more ticks of the beat loop: no further sweep for the other missed hours.
        ticks = 0
        beat = client.get(BEAT_HEARTBEAT_KEY)
        deadline = time.monotonic() + 90
        while ticks < 2 and time.monotonic() < deadline:
            now = client.get(BEAT_HEARTBEAT_KEY)
            if now != beat:
                ticks, beat = ticks + 1, now
            time.sleep(0.2)
        sweeps = queued(client, SWEEP_TASK)
        others = {
            json.loads(raw)["headers"]["task"]
            for queue in (SPARK_QUEUE, DISPATCH_QUEUE)
            for raw in client.lrange(queue, 0, -1)
        } - {SWEEP_TASK}
    finally:
        terminate(second, 20)
        client.close()
    print(
        f"FAULT beat down across a deadline: beat down for {MISSED.total_seconds() / 3600:.0f}"
        f" hourly sweeps; back: the sweep sent {after:.1f} s after beat started, {sweeps} "
        f"time(s); other jobs sent meanwhile: {sorted(others) or 'none'}"
    )
    assert ticks == 2
    assert sweeps == 1
