"""PostgreSQL hung (every process of a private cluster stopped with SIGSTOP, then SIGCONT),
and PostgreSQL stopped and started again, under a stream of webhooks, through gunicorn and a
real worker (issue 15, Faults).

A hung database is worse than a stopped one: nothing refuses, connections and queries just
wait. The ingress does not touch PostgreSQL,
so it answers 2xx throughout and the messages wait in Redis; the worker's tasks wait, time
out or retry, and once PostgreSQL runs again everything lands once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from devstack.servers import PostgresServer
from shared.db import connect
from shared.db.migrate import upgrade
from shared.queues import INGEST_QUEUE
from tests.faults.invariant import (
    Pipeline,
    Restarting,
    SparkStream,
    outcome,
    report,
    running_pipeline,
    settle,
)
from tests.fixtures.services import WorkerProcess
from tests.waiting import wait_for

THREADS = 6


def cluster_pids(server: PostgresServer) -> list[int]:
    """The postmaster and every process it started (backends, checkpointer, walwriter...)."""
    postmaster = int((server.data_dir / "postmaster.pid").read_text().split()[0])
    children = subprocess.run(
        ["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False
    ).stdout.split()
    return [postmaster, *(int(pid) for pid in children)]


def signal_cluster(server: PostgresServer, signum: signal.Signals) -> None:
    for pid in cluster_pids(server):
        # A backend may have ended meanwhile.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[PostgresServer]:
    server = PostgresServer(tmp_path / "pg").start()
    with connect(server.url) as conn:
        upgrade(conn)
    yield server
    signal_cluster(server, signal.SIGCONT)
    server.stop("immediate")


@pytest.fixture
def pipeline(
    tmp_path: Path,
    redis_url: str,
    private_postgres: PostgresServer,
    start_worker: Callable[..., WorkerProcess],
) -> Iterator[Pipeline]:
    with running_pipeline(private_postgres.url, redis_url, start_worker, tmp_path) as running:
        yield running


def time_limit_hit(worker: Restarting) -> bool:
    log = worker.current.log() if worker.current else ""
    # Celery logs "Soft time limit (90s) exceeded for events.ingest_event[...]".
    return "time limit (" in log


Step = Callable[[PostgresServer], object]
# Each fault: its name in the outcome line, how PostgreSQL goes down, how it comes back.
FAULTS: dict[str, tuple[str, Step, Step]] = {
    "hung": (
        "postgres-sigstop-short",
        lambda server: signal_cluster(server, signal.SIGSTOP),
        lambda server: signal_cluster(server, signal.SIGCONT),
    ),
    # Hung until its tasks' soft time limit (90 s for an ingest) cut them off while they
    # waited on PostgreSQL.
    "hung past the time limit": (
        "postgres-sigstop-past-the-time-limit",
        lambda server: signal_cluster(server, signal.SIGSTOP),
        lambda server: signal_cluster(server, signal.SIGCONT),
    ),
    # Crashed (no checkpoint, recovery at the next start) and started again on its port: a
    # stopped database refuses at once, so the tasks fail on their connections and retry, and
    # the pool replaces its broken connections after the start.
    "stopped": (
        "postgres-stopped",
        lambda server: server.stop("immediate"),
        lambda server: server.start(),
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_it_lands_everything_once_after_postgres_was_down(
    fault: str,
    redis_url: str,
    private_postgres: PostgresServer,
    pipeline: Pipeline,
) -> None:
    name, go_down, come_back = FAULTS[fault]
    ingress, plans, worker = pipeline
    database_url = private_postgres.url
    stream = SparkStream(ingress.webhook_url, threads=THREADS).start()
    with redis.Redis.from_url(redis_url) as client:
        try:
            stream.wait_accepted(60, timeout=60)
            go_down(private_postgres)
            try:
                # Down until the worker is seen stuck (webhooks keep being accepted and wait
                # in Redis), or, past the time limit, until a task was cut off by it.
                wait_for(lambda: client.llen(INGEST_QUEUE) >= 100, 120, "100 webhooks queued")
                if fault == "hung past the time limit":
                    wait_for(lambda: time_limit_hit(worker), 240, "a task's time limit")
                accepted_while_down = len(stream.accepted)
            finally:
                come_back(private_postgres)
            stream.wait_accepted(60, timeout=60)
        finally:
            stream.stop()
    took = settle(stream, database_url, redis_url, plans, within=300)

    log = worker.current.log() if worker.current else ""
    result = outcome(
        name,
        stream,
        database_url,
        plans,
        extra=(
            f"{stream.statuses[202] + stream.statuses[200]} answers 2xx, "
            f"{sum(s >= 500 for s in stream.statuses.elements())} 5xx, "
            f"{accepted_while_down} accepted before PostgreSQL was back, "
            f"{log.count('Retry in')} task retries, {log.count('time limit (')} time limits "
            f"hit, landed {took:.0f} s after, worker exits (restarted) {worker.exits}"
        ),
    )
    report(result)
    assert (result.lost, result.duplicated) == (0, 0), result.line()
    assert result.stored == result.answered_2xx
