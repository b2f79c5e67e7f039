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


def main(argv: list[str] | None = None) -> int:
    """`python -m worker.ops.beat --max-age 60`: exit 0 when beat ticked within the last 60 s,
    1 otherwise. The health check of compose's beat service."""
    import argparse

    from shared.config import load_settings

    parser = argparse.ArgumentParser(prog="python -m worker.ops.beat", description=main.__doc__)
    parser.add_argument("--max-age", type=float, default=60.0, help="seconds (default 60)")
    args = parser.parse_args(argv)
    client = redis.Redis.from_url(load_settings().redis_url, socket_timeout=5)
    try:
        tick = last_beat_tick(client)
    except redis.RedisError as exc:
        print(f"cannot read beat's heartbeat: {exc}")  # noqa: T201
        return 1
    finally:
        client.close()
    if tick is None:
        print("beat has never ticked")  # noqa: T201
        return 1
    age = (datetime.now(UTC) - tick).total_seconds()
    print(f"beat ticked {age:.0f} s ago")  # noqa: T201
    return 0 if age <= args.max_age else 1


if __name__ == "__main__":
    raise SystemExit(main())
