from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from tests.fixtures.services import REPO, worker_env
from tests.waiting import wait_for
from worker.ops.beat import BEAT_HEARTBEAT_KEY, last_beat_tick
from worker.ops.beat import main as beat_main


@pytest.mark.slow
def test_it_writes_beats_heartbeat_on_every_tick(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    assert last_beat_tick(client) is None
    log = (tmp_path / "beat.log").open("wb")
    beat = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "worker.app", "beat",
            "-S", "worker.ops.beat.HeartbeatScheduler", "--loglevel", "INFO",
            "--schedule", str(tmp_path / "unused"),
        ],
        env=worker_env(database_url, redis_url),
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(lambda: client.exists(BEAT_HEARTBEAT_KEY) == 1, 30, "beat's first heartbeat")
        first = last_beat_tick(client)
        assert first is not None
        assert abs(datetime.now(UTC) - first) < timedelta(seconds=30)
    finally:
        beat.terminate()
        beat.wait(20)
        log.close()


def test_it_reads_no_tick_from_a_garbled_heartbeat(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set(BEAT_HEARTBEAT_KEY, "not a time")
    assert last_beat_tick(client) is None


def test_it_tells_a_health_check_whether_beat_ticked_lately(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    client = redis.Redis.from_url(redis_url)
    assert beat_main(["--max-age", "60"]) == 1
    client.set(BEAT_HEARTBEAT_KEY, repr(time.time() - 90))
    assert beat_main(["--max-age", "60"]) == 1
    client.set(BEAT_HEARTBEAT_KEY, repr(time.time() - 5))
    assert beat_main(["--max-age", "60"]) == 0
