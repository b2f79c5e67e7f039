"""Redis killed (`kill -9`) and restarted in a loop under a stream of webhooks (issue 15,
hardening points 1 and 2, webhooks).

1. The worker, run as the Procfile runs it (under devstack.supervise), consumes again within
   a minute of each restart: whether it rode the outage out, or died of it (kombu's Redis
   transport sometimes raises an AttributeError closing a channel whose connection is gone,
   "Unrecoverable error") and was started again by the supervisor.
2. With a Spark (the sandbox) configured, every event Spark created, and so every event the
   ingress answered 2xx, ends stored, its effects once: what Redis lost (a message taken with
   BRPOP and not yet recorded as unacknowledged when Redis died; without AOF, everything
   queued) comes back through the /events backfill (run at each worker start, and by beat
   every 15 minutes) and the delivery-log check.

Alongside, a stream of events Spark does not know (only the ingress saw them) measures what
is lost where nothing can bring it back; it is printed, not asserted.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from devstack.servers import RedisServer
from tests.faults.workers import (
    SPARK_RETRY_DELAYS,
    SupervisedWorker,
    WebhookStream,
    recover_as_beat,
    stored_event_ids,
)
from tests.fixtures.sandbox import WEBHOOK_SECRET, SandboxHandle, spark_env
from tests.fixtures.services import IngressServer, worker_env
from tests.waiting import drained, wait_for
from worker.celery_app import MAX_COUNTDOWN

KILLS = int(os.environ.get("FAULTS_REDIS_KILLS", "5"))
# How long the stream runs between kills, and how long Redis stays down.
LOAD_SECONDS = 4.0
DOWN_SECONDS = 2.0
# The bar: the same worker set consumes again within a minute of each restart.
RESUME_WITHIN = 60.0
# Short, so that the messages a crashed worker held come back within the test (README, Faults).
VISIBILITY_TIMEOUT = 20


def spark_events(
    handle: SandboxHandle, stop: threading.Event, created: list[str], pause: float = 0.1
) -> None:
    """Spark creating UserEligibilityUpdated events (and delivering them) until `stop`."""
    while not stop.is_set():
        created.append(handle.sandbox.simulate_user_eligibility().event_id)
        stop.wait(pause)


def stored_since(database_url: str, since: datetime) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM events WHERE stored_at > %s", [since]).fetchone()
    return int(row[0]) if row else 0


def expected_hints(handle: SandboxHandle, event_ids: set[str]) -> set[tuple[str, str, str]]:
    hints = set()
    for event_id in event_ids:
        event = handle.state.get_event(event_id)
        assert event is not None
        for field, change in (("addedUsers", "added"), ("removedUsers", "removed")):
            for user_id in event.payload.get(field) or []:
                hints.add((event_id, str(user_id), change))
    return hints


@pytest.mark.parametrize("aof", [True, False], ids=["aof-always", "no-aof"])
def test_it_consumes_again_after_each_redis_kill_and_stores_every_spark_event_once(
    aof: bool,
    tmp_path: Path,
    database_url: str,
    start_ingress: Callable[..., IngressServer],
    start_sandbox: Callable[..., SandboxHandle],
) -> None:
    redis_server = RedisServer(tmp_path / "redis", appendonly=aof).start()
    redis_url = redis_server.url
    spark = start_sandbox(delivery_delays=SPARK_RETRY_DELAYS)
    # Spark's clock 5 minutes behind: every delivery it logs is older than the delivery-log
    # check's settle time (2 minutes), so the check at the end looks at all of them.
    spark.control.set_clock(datetime.now(UTC) - timedelta(minutes=5))
    ingress = start_ingress(redis_url, secret=WEBHOOK_SECRET)
    spark.register_webhook(ingress.webhook_url)
    env = worker_env(
        database_url,
        redis_url,
        **spark_env(spark),
        BROKER_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT),
    )
    worker = SupervisedWorker(env, tmp_path / "worker.log")
    stream = WebhookStream(ingress.webhook_url, WEBHOOK_SECRET, threads=4, pause=0.05)
    stop_spark = threading.Event()
    created: list[str] = []
    generators = [
        threading.Thread(target=spark_events, args=(spark, stop_spark, created), daemon=True)
        for _ in range(2)
    ]
    resumed: list[float] = []
    try:
        worker.start()
        stream.start()
        for generator in generators:
            generator.start()
        for kill in range(1, KILLS + 1):
            # The stream runs on; this is the load between two crashes.
            stop_spark.wait(LOAD_SECONDS)
            redis_server.kill()
            stop_spark.wait(DOWN_SECONDS)
            redis_server.start()
            restarted = time.monotonic()
            since = datetime.now(UTC)
            # Consuming again: events stored after the restart (not the end of a backlog).
            try:
                wait_for(
                    lambda since=since: stored_since(database_url, since) > 0,  # type: ignore[misc]
                    RESUME_WITHIN,
                    f"the worker to consume again after Redis kill {kill}",
                )
            except AssertionError:
                worker.dump_stacks()
                raise
            resumed.append(time.monotonic() - restarted)
            assert worker.alive, "the supervised worker set is gone"
        stop_spark.set()
        stream.stop()
        for generator in generators:
            generator.join(30)

        spark.wait_for_deliveries(timeout=60)
        # What a crashed worker held comes back after the visibility timeout.
        # A backlog built up during the outages, on a machine shared with other work, and
        # tasks a crash cut short are retried after a backoff of up to MAX_COUNTDOWN.
        settle = VISIBILITY_TIMEOUT + 10 + MAX_COUNTDOWN + 300
        wait_for(drained(redis_url), settle, "the ingest queue to drain")
        lost_direct = stream.accepted - stored_event_ids(database_url)

        # What beat runs every 15 minutes (the backfill also at each worker start).
        recovered = recover_as_beat(env, redis_url, settle)

        spark_created = set(created)
        wait_for(
            lambda: spark_created <= stored_event_ids(database_url),
            settle,
            "every event Spark created to be stored",
        )
        wait_for(drained(redis_url), settle, "the ingest queue to drain")
    finally:
        stop_spark.set()
        stream.stop()
        worker.stop()
        redis_server.stop()

    answered_2xx = {
        attempt["eventId"]
        for attempt in spark.control.deliveries()
        if attempt.get("statusCode") is not None and 200 <= attempt["statusCode"] < 300
    }
    ids = [list(spark_created)]
    with psycopg.connect(database_url) as conn:
        statuses: dict[str, str] = dict(
            conn.execute("SELECT event_id, status FROM events WHERE event_id = ANY(%s)", ids)
        )
        hints = set(
            conn.execute(
                "SELECT event_id, user_id, change FROM eligibility_hints WHERE event_id = ANY(%s)",
                ids,
            )
        )
    print(
        f"\nFAULT Redis kill -9 x{KILLS} ({'AOF always' if aof else 'no AOF'}): worker crashes "
        f"{worker.crashes}, consuming again {min(resumed):.1f}-{max(resumed):.1f} s after each "
        f"restart; Spark events {len(spark_created)} (answered 2xx {len(answered_2xx)}), "
        f"stored {len(statuses)}, recovered by the backfill {recovered.by_backfill}"
        f" and the delivery-log check {recovered.by_check}; events Spark does not know: "
        f"answered 2xx {len(stream.accepted)}, lost {len(lost_direct)}"
    )
    assert answered_2xx <= spark_created
    assert set(statuses) == spark_created
    assert set(statuses.values()) == {"processed"}
    # The handler's effects, once each (the hints are keyed by event, user and change).
    assert hints == expected_hints(spark, spark_created)
    assert max(resumed) < RESUME_WITHIN
