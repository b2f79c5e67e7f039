"""SIGTERM to the worker under a stream of webhooks (a deploy, `docker compose stop`), three
times over, through gunicorn and a real worker, started again each time as compose and
`make run` do (issue 15, Faults).

Warm shutdown: the tasks running finish and are acknowledged, the messages reserved and not
started are handed back to Redis ("Restoring N unacknowledged message(s)") rather than left
in `unacked` for the visibility timeout (40 minutes, worker/celery_app.py), so the next
worker takes them at once. The invariant holds: every webhook answered 2xx stored exactly
once, each curve's plan sent once, nothing acknowledged lost; and it holds within two
minutes, far inside the visibility timeout, which shows nothing waited for it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

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
from worker.celery_app import VISIBILITY_TIMEOUT

ROUNDS = 3
THREADS = 6
# Everything lands well inside the visibility timeout: nothing waited for it.
LANDS_WITHIN = 120.0


@pytest.fixture
def pipeline(
    tmp_path: Path,
    database_url: str,
    redis_url: str,
    start_worker: Callable[..., WorkerProcess],
) -> Iterator[Pipeline]:
    with running_pipeline(database_url, redis_url, start_worker, tmp_path) as running:
        yield running


def restarted(worker: Restarting, times: int) -> Callable[[], bool]:
    return lambda: worker.exits >= times


def test_it_hands_messages_back_on_sigterm_and_loses_nothing(
    database_url: str,
    redis_url: str,
    pipeline: Pipeline,
) -> None:
    assert LANDS_WITHIN < VISIBILITY_TIMEOUT
    ingress, plans, worker = pipeline
    stream = SparkStream(ingress.webhook_url, threads=THREADS).start()
    logs: list[str] = []
    shutdowns: list[float] = []
    try:
        for round_ in range(ROUNDS):
            stream.wait_accepted(40, timeout=60)
            current = worker.current
            assert current is not None
            assert current.process is not None
            began = time.monotonic()
            # The main process only, as compose and honcho signal it; it stops its pool.
            os.kill(current.process.pid, signal.SIGTERM)
            current.process.wait(60)
            shutdowns.append(time.monotonic() - began)
            logs.append(current.log())
            wait_for(restarted(worker, round_ + 1), 60, "the worker started again")
        stream.wait_accepted(40, timeout=60)
    finally:
        stream.stop()
    took = settle(stream, database_url, redis_url, plans, within=LANDS_WITHIN)

    restored = sum(log.count("Restoring") for log in logs)
    result = outcome(
        "worker-sigterm",
        stream,
        database_url,
        plans,
        extra=(
            f"{ROUNDS} SIGTERMs, warm shutdowns of {', '.join(f'{s:.1f}' for s in shutdowns)} s, "
            f"{restored} restore(s) logged, landed {took:.0f} s after "
            "the stream stopped"
        ),
    )
    report(result)
    for log in logs:
        assert "Unrecoverable error" not in log
        assert "Warm shutdown" in log or "warm shutdown" in log.lower(), log[-2000:]
    assert (result.lost, result.duplicated) == (0, 0), result.line()
    assert result.stored == result.answered_2xx
