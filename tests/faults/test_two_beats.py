"""Two beats at once (a deploy that starts the new beat before the old one stops, or a
standby by design), on one Redis (issue 15, Faults).

Beat runs RedBeat (`-S worker.ops.beat.HeartbeatScheduler`, a RedBeatScheduler): the beat
holding RedBeat's lock in Redis schedules, the other waits for the lock. So each scheduled
job is sent once per slot, not once per beat: for the every-minute jobs, no two sends of one
job come within one interval of each other. (The jobs are idempotent in PostgreSQL anyway:
tests/reports/test_sweep_task.py runs two sweeps at once.) No worker runs: the sent
messages stay in their queues, where the test reads them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import redis

from shared.queues import DISPATCH_QUEUE, INGEST_QUEUE, SPARK_QUEUE
from tests.faults.invariant import Outcome, report
from tests.fixtures.services import REPO, worker_env
from tests.waiting import wait_for
from worker.celery_app import BEAT_LOCK_TIMEOUT
from worker.schedule import beat_schedule

INTERVAL = timedelta(seconds=60)
# The every-minute jobs of worker/schedule.py; each is sent with `expires` 60 s after it is
# sent, which dates each send.
EVERY_MINUTE = {
    entry["task"]
    for entry in beat_schedule().values()
    if getattr(entry["schedule"], "run_every", None) == INTERVAL
}


def start_beat(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    schedule_file = log_path.with_suffix(".schedule")
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "worker.app", "beat",
                "-S", "worker.ops.beat.HeartbeatScheduler", "--loglevel", "INFO",
                "-s", str(schedule_file),
            ],
            env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def sends(redis_url: str) -> dict[str, list[datetime]]:
    """Per task, when each of its messages waiting in the queues was sent."""
    found: dict[str, list[datetime]] = defaultdict(list)
    with redis.Redis.from_url(redis_url) as client:
        for queue in (INGEST_QUEUE, SPARK_QUEUE, DISPATCH_QUEUE):
            for raw in client.lrange(queue, 0, -1):
                headers = json.loads(raw)["headers"]
                expires = datetime.fromisoformat(headers["expires"])
                found[headers["task"]].append(expires - INTERVAL)
    return {task: sorted(times) for task, times in found.items()}


def report_sends(name: str, sent: dict[str, list[datetime]], extra: str) -> int:
    """Print the outcome line for the every-minute jobs' sends; the number of doubled sends
    (two of one job closer than its interval: two beats scheduled the same slot)."""
    doubled = sum(
        1
        for task in EVERY_MINUTE
        for earlier, later in zip(sent[task], sent[task][1:], strict=False)
        if later - earlier < INTERVAL * 0.9
    )
    every_minute_sends = sum(len(sent[task]) for task in EVERY_MINUTE)
    report(
        Outcome(
            name,
            sent=every_minute_sends,
            answered_2xx=every_minute_sends,
            stored=every_minute_sends - doubled,
            lost=0,
            duplicated=doubled,
            extra=extra,
        )
    )
    return doubled


def test_it_sends_each_scheduled_job_once_per_slot_with_two_beats_running(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    assert EVERY_MINUTE, "no every-minute job in the schedule"
    env = worker_env(database_url, redis_url)
    beats = [start_beat(env, tmp_path / f"beat-{n}.log") for n in range(2)]
    try:
        # Two slots of every every-minute job: the first tick's, and a minute later.
        wait_for(
            lambda: all(len(sends(redis_url).get(task, [])) >= 2 for task in EVERY_MINUTE),
            150,
            "two sends of every every-minute job",
        )
    finally:
        for beat in beats:
            os.killpg(beat.pid, 15)
        for beat in beats:
            beat.wait(30)
    logs = [(tmp_path / f"beat-{n}.log").read_text(errors="replace") for n in range(2)]
    sent = sends(redis_url)

    doubled = report_sends(
        "two-beats",
        sent,
        f"{len(EVERY_MINUTE)} every-minute jobs over two slots; lock held by "
        f"{sum('acquired lock' in log.lower() for log in logs)} beat(s)",
    )
    assert doubled == 0, sent
    for task in EVERY_MINUTE:
        assert len(sent[task]) == 2, (task, sent[task])


def test_it_hands_the_schedule_to_the_standby_beat_when_the_active_one_dies(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    """The standby of "Scaling out": the active beat killed (`kill -9`, a lost host), the
    waiting one takes RedBeat's lock once it expires (`redbeat_lock_timeout`, 120 s, after
    the dead beat's last extension) and sends each every-minute job again, once."""
    env = worker_env(database_url, redis_url)
    logs = [tmp_path / "beat-active.log", tmp_path / "beat-standby.log"]
    active = start_beat(env, logs[0])
    standby: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: "Acquired lock" in logs[0].read_text(), 60, "the first beat's lock")
        standby = start_beat(env, logs[1])
        wait_for(
            lambda: all(sends(redis_url).get(task) for task in EVERY_MINUTE),
            90,
            "the active beat's first sends",
        )
        os.killpg(active.pid, 9)
        active.wait(30)
        killed = time.monotonic()
        assert "Acquired lock" not in logs[1].read_text(), "the standby held the lock too"
        wait_for(lambda: "Acquired lock" in logs[1].read_text(), 200, "the standby beat's lock")
        took = time.monotonic() - killed
        wait_for(
            lambda: all(len(sends(redis_url).get(task, [])) >= 2 for task in EVERY_MINUTE),
            90,
            "the standby beat's sends",
        )
    finally:
        for beat in (active, standby):
            if beat is not None and beat.poll() is None:
                os.killpg(beat.pid, 15)
                beat.wait(30)
    sent = sends(redis_url)
    doubled = report_sends(
        "standby-beat",
        sent,
        f"the standby took the lock {took:.1f} s after the active beat was killed",
    )
    assert doubled == 0, sent
    # The lock expires at most redbeat_lock_timeout after the dead beat's last extension.
    assert took <= BEAT_LOCK_TIMEOUT + 10, took
    for task in EVERY_MINUTE:
        assert len(sent[task]) == 2, (task, sent[task])
