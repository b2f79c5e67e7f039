"""Pool children killed (`kill -9`) again and again under a stream of webhooks.

The prefork pool's children run the tasks; the parent acknowledges a message only once its
task returned (`task_acks_late`) and gives it back when the child dies
(`task_reject_on_worker_lost`). A kill lands either mid-task (before the inbox's commit:
nothing was stored, the message runs again) or after the commit and before the
acknowledgement (the message runs again and finds its delivery stored: outcome `duplicate`,
no effect repeated). Both are counted from the worker's log. Once in the stream every
child is killed with an ingest held inside its transaction by a table lock, so that at least
one kill lands mid-ingest (as tests/worker/test_ingest_event.py does alone, in `make test`).
A child killed after the commit but before sending the event's follow-ups leaves the work
planned in PostgreSQL: beat runs, as in production, and its sweeps send it.

Once, every child is killed while an acknowledgement's POST is in flight, Spark having stored
it (the sandbox holds its answers back meanwhile). Its answer never comes: when the lease runs
out the attempt is `unknown` and the same acknowledgement goes again, so Spark holds two
copies: the one repeat that is the ledger's policy (tests/faults/spark_stream.py), counted as
`resent`. A random kill can land there too; in one CI run it did, and was then counted as a
duplicate. Anything repeated beyond that is a duplicate.
"""

from __future__ import annotations

import os
import random
import re
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg

from tests.faults.spark_stream import STREAM_TYPES, EventStream, measure, settle
from tests.faults.test_two_beats import start_beat
from tests.fixtures.sandbox import WEBHOOK_SECRET, SandboxHandle, spark_env
from tests.fixtures.services import IngressServer, WorkerProcess, worker_env
from tests.waiting import wait_for

EVENTS = 160
INTERVAL = 0.08
KILL_EVERY = (0.15, 0.6)  # seconds between kills, drawn uniformly


def waiting_locks(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()
    return int(row[0]) if row else 0


def kill_every_child(worker: WorkerProcess) -> int:
    """`kill -9` every pool child of the worker; how many there were."""
    children = worker.children()
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    return len(children)


def kill_while_the_inbox_is_held(worker: WorkerProcess, database_url: str) -> int:
    """One kill sure to land mid-ingest: the inbox's table held by a lock, an ingest blocked
    inside its transaction, every pool child killed. The random kills may all miss."""
    with psycopg.connect(database_url) as blocker:
        blocker.execute("LOCK TABLE events IN EXCLUSIVE MODE")
        wait_for(lambda: waiting_locks(database_url) > 0, 60, "an ingest blocked on the lock")
        killed = kill_every_child(worker)
        wait_for(lambda: "WorkerLostError" in worker.log(), 60, "the lost task")
        blocker.rollback()
    return killed


def ack_held_at_spark(sandbox: SandboxHandle) -> bool:
    """An acknowledgement Spark stored and has not answered yet (its answer held back)."""
    return any(
        ack["answerLost"]
        for event in sandbox.control.lpc_events()
        for ack in event["acknowledgements"]
    )


def acks_settled(database_url: str) -> bool:
    """Every acknowledgement planned is sent: none is left to go again (a lease to run out)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM reports WHERE kind = 'lpc_ack' AND status <> 'sent'"
        ).fetchone()
    return row is not None and row[0] == 0


def kill_while_an_acknowledgement_is_in_flight(
    worker: WorkerProcess, sandbox: SandboxHandle
) -> int:
    """Spark stores each report and holds its answer back (longer than our read timeout);
    every pool child is killed once an acknowledgement's POST is under way."""
    sandbox.control.set_report_faults(
        errorRate=1, lostAnswerShare=1, lostAnswerMode="delay", lostAnswerSeconds=60
    )
    try:
        # Spark's copy, not our attempt row: the row is committed before the POST goes.
        wait_for(lambda: ack_held_at_spark(sandbox), 60, "an acknowledgement stored by Spark")
        return kill_every_child(worker)
    finally:
        sandbox.control.clear_report_faults()


def test_it_stores_every_answered_event_once_while_pool_children_are_killed(
    sandbox: SandboxHandle,
    database_url: str,
    redis_url: str,
    start_ingress: Callable[..., IngressServer],
    start_worker: Callable[..., WorkerProcess],
    *,
    tmp_path: Path,
) -> None:
    ingress = start_ingress(redis_url, secret=WEBHOOK_SECRET)
    worker = start_worker(database_url, redis_url, concurrency=2, **spark_env(sandbox))
    sandbox.register_webhook(ingress.webhook_url, notification_types=STREAM_TYPES)
    # Beat as production runs it: a child killed after the commit and before it sent the
    # event's follow-ups (the acknowledgement's task) leaves the acknowledgement planned in
    # PostgreSQL, where the every-minute `sweep-lpc-acks` finds it.
    beat = start_beat(
        worker_env(database_url, redis_url, **spark_env(sandbox)), tmp_path / "beat.log"
    )

    try:
        stream = EventStream(sandbox, EVENTS, INTERVAL).start()
        kills = held_kills = mid_post_kills = 0
        stop = threading.Event()
        rng = random.Random(15)
        while stream.running and not stop.wait(rng.uniform(*KILL_EVERY)):
            children = worker.children()
            if children:
                try:
                    os.kill(rng.choice(children), signal.SIGKILL)
                    kills += 1
                except ProcessLookupError:
                    pass  # the pool replaced it meanwhile
            if len(stream.created) >= EVENTS // 2 and not held_kills:
                held_kills = kill_while_the_inbox_is_held(worker, database_url)
            if len(stream.created) >= EVENTS * 3 // 4 and not mid_post_kills:
                mid_post_kills = kill_while_an_acknowledgement_is_in_flight(worker, sandbox)
        created = stream.join()
        sandbox.wait_for_deliveries(timeout=60)

        settle("pool child kill -9", sandbox, database_url, redis_url, created, timeout=480)
        # An acknowledgement whose sender was killed mid-POST is leased for 3 minutes
        # (worker/reports/sender.py LEASE) and goes again only after that: measure once no
        # acknowledgement is left to go.
        wait_for(lambda: acks_settled(database_url), 300, "every acknowledgement sent")
        outcome = measure("pool child kill -9", sandbox, database_url, created)
    finally:
        beat.terminate()
        beat.wait(30)
    log = worker.log()
    lost = set(re.findall(r"events\.ingest_event\[([0-9a-f-]+)\] retry: .*WorkerLostError", log))
    rerun_stored = set(
        re.findall(r"events\.ingest_event\[([0-9a-f-]+)\] succeeded .*'duplicate'", log)
    )
    other_lost = len(re.findall(r"\] retry: .*WorkerLostError", log)) - len(lost)
    outcome.notes = (
        f"{kills} random kills, {held_kills} with an ingest held mid-transaction and "
        f"{mid_post_kills} with an acknowledgement's POST in flight; "
        f"{len(lost)} ingests lost by a killed child and rerun, "
        f"{len(lost & rerun_stored)} of them killed after their commit; "
        f"{other_lost} other tasks (acknowledgements, reconciles) lost and rerun"
    )
    print(outcome.line())
    assert kills >= 10
    assert lost, "no kill landed on a running ingest"
    assert outcome.answered == outcome.sent
    assert outcome.holds(), outcome.line()
    assert outcome.resent >= 1, "the acknowledgement killed mid-POST was not sent again"
    assert outcome.stored == outcome.sent
