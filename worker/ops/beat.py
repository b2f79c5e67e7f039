"""Beat's heartbeat: the scheduler writes the time of every tick to Redis.

Why a scheduler tick and not a periodic `ops.heartbeat` task: a task only shows that beat
sent something *and* a worker ran it, so a stopped worker would look like a silent beat. The
tick is beat's own loop; it runs at least every `beat_max_loop_interval` (20 s) and only in
the beat that holds RedBeat's lock, so a standby beat waiting for the lock writes nothing.

Run beat with `-S worker.ops.beat.HeartbeatScheduler` (Procfile, compose.yaml).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import redis
from redbeat.schedulers import RedBeatScheduler, get_redis

log = logging.getLogger(__name__)

BEAT_HEARTBEAT_KEY = "spark-partner:beat:heartbeat"


class HeartbeatScheduler(RedBeatScheduler):  # type: ignore[misc]
    def tick(self, *args: Any, **kwargs: Any) -> float:
        interval: float = super().tick(*args, **kwargs)
        try:
            get_redis(self.app).set(BEAT_HEARTBEAT_KEY, repr(time.time()))
        except redis.RedisError as exc:
            # Beat goes on scheduling; the missing heartbeat is what `status` then reports.
            log.warning("could not write beat's heartbeat: %s", exc)
        return interval


def last_beat_tick(client: redis.Redis) -> datetime | None:
    raw = client.get(BEAT_HEARTBEAT_KEY)
    if raw is None:
        return None
    try:
        return datetime.fromtimestamp(float(raw), UTC)
    except ValueError:
        return None
