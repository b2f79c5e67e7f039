"""Redis hung (`SIGSTOP`, then `SIGCONT`) and Redis full (`maxmemory`, `noeviction`) under a
stream of webhooks, through the ingress as production runs it (gunicorn) and a real worker
(issue 15, Faults).

While Redis hangs, the ingress answers 503 within its socket timeout instead of holding
Spark's request; while it is full, 503 at once, and Redis evicts nothing (the queue is the
only copy of an accepted webhook). Either way Spark's retries bring the events in once Redis
answers again, and the invariant holds: every webhook answered 2xx stored exactly once, each
curve's plan sent once, nothing acknowledged lost. tests/ingress/test_webhooks.py checks the
single-request answers; these check the whole pipeline under load.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from devstack.servers import RedisServer
from ingress.queueing import SOCKET_TIMEOUT
from tests.faults.invariant import (
    Pipeline,
    SparkStream,
    outcome,
    report,
    running_pipeline,
    settle,
)
from tests.fixtures.services import WorkerProcess
from tests.waiting import wait_for

# Spark-like senders, each with a kept-alive connection, as Spark's HTTP client keeps them.
THREADS = 6
# A request's longest wait while Redis hangs: a connection from the ingress's publishing pool
# (it waits at most one socket timeout, 2 s, ingress/queueing.py, while other requests hold
# them all), then the write (one socket timeout; a timeout is not retried). Measured up to
# 3.2 s on gunicorn's gevent worker (on the gthread worker it used before, 6.1 s: a kept-alive
# connection could also wait for a thread). A second of slack for two shared cores.
ANSWER_WITHIN = 2 * SOCKET_TIMEOUT + 1.0


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """Redis as production should run it: AOF, `appendfsync always`, `noeviction`."""
    server = RedisServer(directory=tmp_path / "redis", appendonly=True).start()
    yield server
    server.stop()


@pytest.fixture
def pipeline(
    tmp_path: Path,
    database_url: str,
    private_redis: RedisServer,
    start_worker: Callable[..., WorkerProcess],
) -> Iterator[Pipeline]:
    with running_pipeline(database_url, private_redis.url, start_worker, tmp_path) as running:
        yield running


def test_it_answers_503_in_time_while_redis_hangs_and_loses_nothing(
    database_url: str,
    private_redis: RedisServer,
    pipeline: Pipeline,
) -> None:
    ingress, plans, worker = pipeline
    stream = SparkStream(ingress.webhook_url, threads=THREADS).start()
    try:
        stream.wait_accepted(60, timeout=60)
        private_redis.pause()
        try:
            # Hung until every sender has been answered 503 twice: first tries and retries
            # (Spark's first two waits are 1 s and 2 s), none of them given up yet.
            wait_for(
                lambda: stream.statuses[503] >= 2 * THREADS,
                4 * ANSWER_WITHIN,
                "two 503s per sender while Redis hangs",
            )
        finally:
            private_redis.resume()
        stream.wait_accepted(60, timeout=60)
    finally:
        stream.stop()
    settle(stream, database_url, private_redis.url, plans)

    result = outcome(
        "redis-sigstop",
        stream,
        database_url,
        plans,
        extra=(
            f"{stream.statuses[503]} answered 503, slowest answer {stream.slowest:.1f} s "
            f"({sum(t > SOCKET_TIMEOUT + 0.5 for _, t in stream.answers)} over one timeout), "
            f"worker exits (restarted) {worker.exits}"
        ),
    )
    report(result)
    assert stream.slowest <= ANSWER_WITHIN, result.line()
    assert (result.lost, result.duplicated) == (0, 0), result.line()
    assert result.stored == result.answered_2xx


def test_it_answers_503_while_redis_is_full_and_evicts_nothing(
    database_url: str,
    private_redis: RedisServer,
    pipeline: Pipeline,
) -> None:
    ingress, plans, worker = pipeline
    stream = SparkStream(ingress.webhook_url, threads=THREADS).start()
    with redis.Redis.from_url(private_redis.url) as admin:
        try:
            stream.wait_accepted(60, timeout=60)
            # Full: with noeviction every write is refused (OOM), the ingress's and the
            # worker's alike, until every sender has been answered 503 twice.
            admin.config_set("maxmemory", 1)
            try:
                wait_for(
                    lambda: stream.statuses[503] >= 2 * THREADS,
                    4 * ANSWER_WITHIN,
                    "two 503s per sender while Redis is full",
                )
                queued_while_full = admin.llen("ingest")
            finally:
                admin.config_set("maxmemory", 0)
            stream.wait_accepted(60, timeout=60)
        finally:
            stream.stop()
        # A worker that dies of the full Redis cannot hand back what it holds (Redis refuses
        # that write too): those messages stay in `unacked` until the visibility timeout,
        # then run again, as repeats the inbox absorbs. Their events are stored already, or
        # settle() reports them missing.
        settle(stream, database_url, private_redis.url, plans, drain=False)
        held = admin.hlen("unacked")
        evicted = int(admin.info("stats")["evicted_keys"])
        policy = admin.config_get("maxmemory-policy")["maxmemory-policy"]

    result = outcome(
        "redis-maxmemory",
        stream,
        database_url,
        plans,
        extra=(
            f"{stream.statuses[503]} answered 503, {evicted} keys evicted, "
            f"{queued_while_full} queued while full, worker exits (restarted) {worker.exits}, "
            f"{held} held until the visibility timeout"
        ),
    )
    report(result)
    assert policy == "noeviction"
    assert evicted == 0
    assert (result.lost, result.duplicated) == (0, 0), result.line()
    assert result.stored == result.answered_2xx
