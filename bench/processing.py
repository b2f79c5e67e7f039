"""Webhook -> processed: the worker storing webhooks, against a Celery task that does nothing,
run by a worker with the same settings. Target: at least 0.8 of its rate.

    .venv/bin/python -m bench.processing [--events N] [--concurrency N] [--rounds N]

Each round, baseline then candidate, on a fresh database (every migration) and an emptied
Redis database (--redis-url):

- --events messages are published on the `ingest` queue exactly as the ingress publishes a
  webhook (ingress.queueing.TaskQueue.send, the ingress's Celery app), each a distinct signed
  PriceCurveCreated notification with two targets, with no worker running;
- then one `celery worker -Q ingest --concurrency N` starts (prefork, the command of the
  Procfile) and takes them. Candidate: `-A worker.app`, the real ingest task (parse, inbox
  row, the curve handler, its follow-up on the dispatch queue, which no one consumes here).
  Baseline: `-A bench.noop_worker`, the same app and settings with a task that does nothing.

After the rounds, `breakdown` times what the worker's figure is made of, in this process,
with no Celery worker: the same webhooks stored by `worker.events.inbox.ingest()` one after
another (wall and CPU time, the follow-up published to Redis), the statements and round
trips of one (libpq's trace), a database round trip (`SELECT 1`) and a durable one-row
commit. The README's arithmetic for this target uses them.

"Processed" is acknowledged: a message leaves Redis's `unacked` only after its task returned,
and the ingest task returns after its commit. The rate counts the messages processed between
the moment 10% and the moment 90% were done, so neither the worker's start nor the last
stragglers weigh. The candidate's database must hold --events events afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import redis
from psycopg import pq

from bench.curves import hours, notification
from bench.noop_worker import NOOP_TASK
from bench.support import fresh_database, print_result
from devstack.servers import environment_without, terminate
from ingress.app import ingest_kwargs
from ingress.queueing import TaskQueue
from shared.config import load_settings
from shared.db import Connection, connect
from shared.queues import INGEST_EVENT_TASK, INGEST_QUEUE
from worker.celery_app import create_app
from worker.events.inbox import ingest

TARGET_RATIO = 0.8
ROOT = Path(__file__).resolve().parents[1]


def bodies(count: int) -> list[bytes]:
    created = datetime(2026, 3, 3, 12, 0, 1, tzinfo=UTC)
    starts = hours()
    return [
        notification(
            [(str(uuid.uuid4()), str(uuid.uuid4())) for _ in range(2)],
            starts,
            -0.25,
            created + timedelta(seconds=n),
        )
        for n in range(count)
    ]


def publish(redis_url: str, task: str, payloads: list[bytes]) -> None:
    queue = TaskQueue(redis_url)
    try:
        received_at = datetime.now(UTC)
        for body in payloads:
            queue.send(task, ingest_kwargs(body, received_at), kwargsrepr="<bench>")
    finally:
        queue.close()


def processed(broker: redis.Redis, total: int) -> int:
    # Waiting in the queue or delivered and not yet acknowledged (kombu's `unacked` hash).
    return total - int(broker.llen(INGEST_QUEUE)) - int(broker.hlen("unacked"))


def run_worker(
    app: str, *, database_url: str, redis_url: str, concurrency: int, total: int, log: Path
) -> float:
    """Starts the worker on the queued messages; the rate (per second) between 10% and 90%."""
    environ = environment_without(
        ("SPARK_", "REDIS_", "DATABASE_", "WORKER_METRICS"),
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        WORKER_METRICS_PORT="0",
        PYTHONPATH=str(ROOT),
    )
    command = [
        sys.executable, "-m", "celery", "-A", app, "worker", "-Q", INGEST_QUEUE,
        "--concurrency", str(concurrency), "--loglevel", "WARNING", "--without-gossip",
        "--without-mingle", "--hostname", f"bench-{uuid.uuid4().hex[:8]}@%h",
    ]  # fmt: skip
    broker = redis.Redis.from_url(redis_url)
    low, high = total // 10, total - total // 10
    with log.open("ab") as log_file:
        process = subprocess.Popen(command, cwd=ROOT, env=environ, stdout=log_file, stderr=log_file)
    try:
        deadline = time.monotonic() + 120 + total / 10
        marks: dict[str, tuple[float, int]] = {}
        while "high" not in marks:
            done = processed(broker, total)
            now = time.perf_counter()
            if "low" not in marks and done >= low:
                marks["low"] = (now, done)
            if done >= high:
                marks["high"] = (now, done)
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{app}: worker stopped or too slow:\n{log.read_text()[-3000:]}")
            time.sleep(0.02)
        while processed(broker, total) < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{app}: the last messages were not processed")
            time.sleep(0.05)
    finally:
        terminate(process, 30)
        broker.close()
    (t0, n0), (t1, n1) = marks["low"], marks["high"]
    return (n1 - n0) / max(t1 - t0, 1e-6)


def statements(conn: Connection, step: Callable[[], object]) -> tuple[int, int]:
    """The statements `step` runs on `conn` and its round trips, counted in libpq's trace of
    the protocol (PostgreSQL's CommandComplete and ReadyForQuery messages)."""
    with tempfile.TemporaryFile() as trace:
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            step()
        finally:
            conn.pgconn.untrace()
        trace.seek(0)
        received = [line.split(b"\t")[2] for line in trace if line.startswith(b"B\t")]
    return received.count(b"CommandComplete"), received.count(b"ReadyForQuery")


def breakdown(database_url: str, redis_url: str, payloads: list[bytes]) -> None:
    """Prints where one ingest's time goes, measured in this process (see the docstring)."""
    settings = load_settings({"DATABASE_URL": database_url, "REDIS_URL": redis_url})
    app = create_app(settings, current=False)
    received_at = datetime.now(UTC)
    # The last webhook is traced, apart from the timed ones.
    *timed, traced = payloads
    count = len(timed)
    try:
        with connect(database_url, autocommit=True) as conn:

            def store(body: bytes) -> None:
                ingest(
                    conn,
                    delivery_id=str(uuid.uuid4()),
                    raw=body,
                    received_at=received_at,
                    source="webhook",
                    settings=settings,
                    sender=app,
                )

            wall, cpu = time.perf_counter(), time.process_time()
            for body in timed:
                store(body)
            ingest_ms = (time.perf_counter() - wall) * 1000 / count
            ingest_cpu_ms = (time.process_time() - cpu) * 1000 / count

            started = time.perf_counter()
            for _ in range(count):
                conn.execute("SELECT 1")
            round_trip_ms = (time.perf_counter() - started) * 1000 / count

            conn.execute("CREATE TABLE bench_commit (n integer)")
            started = time.perf_counter()
            for n in range(count):
                with conn.transaction():
                    conn.execute("INSERT INTO bench_commit VALUES (%s)", (n,))
            # BEGIN, INSERT and COMMIT: three round trips, and the commit's WAL flush.
            commit_ms = (time.perf_counter() - started) * 1000 / count - 3 * round_trip_ms
            statement_count, trips = statements(conn, lambda: store(traced))
    finally:
        app.close()
    print(
        f"in process, {count} webhooks one after another: ingest() {ingest_ms:.1f} ms each "
        f"({ingest_cpu_ms:.1f} ms CPU; {statement_count} statements in {trips} round trips); "
        f"database round trip {round_trip_ms:.2f} ms; "
        f"durable commit {commit_ms:.2f} ms beyond its round trips"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.processing", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--events", type=int, default=2000, help="webhooks per run")
    parser.add_argument("--concurrency", type=int, default=2, help="worker pool processes")
    parser.add_argument("--rounds", type=int, default=3, help="baseline+candidate pairs")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    args = parser.parse_args(argv)

    broker = redis.Redis.from_url(args.redis_url)
    print(
        f"webhook -> processed: {args.events} signed PriceCurveCreated per run, "
        f"one worker, --concurrency {args.concurrency}, {args.rounds} rounds (A B A B ...)"
    )
    base_rates: list[float] = []
    rates: list[float] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-processing-") as directory:
            log = Path(directory) / "worker.log"
            for number in range(1, args.rounds + 1):
                payloads = bodies(args.events)
                with fresh_database(args.database_url, "processing") as url:
                    broker.flushdb()
                    publish(args.redis_url, NOOP_TASK, payloads)
                    settings = {
                        "database_url": url,
                        "redis_url": args.redis_url,
                        "concurrency": args.concurrency,
                        "total": args.events,
                        "log": log,
                    }
                    base_rates.append(run_worker("bench.noop_worker", **settings))
                    broker.flushdb()
                    publish(args.redis_url, INGEST_EVENT_TASK, payloads)
                    rates.append(run_worker("worker.app", **settings))
                    with psycopg.connect(url) as conn:
                        row = conn.execute("SELECT count(*) FROM events").fetchone()
                    stored = int(row[0]) if row else 0
                    if stored != args.events:
                        print(f"ERROR: {args.events} webhooks queued, {stored} events stored")
                        return 1
                print(
                    f"round {number}: no-op task {base_rates[-1]:7.1f}/s   "
                    f"webhook stored {rates[-1]:7.1f}/s   ratio {rates[-1] / base_rates[-1]:.2f}"
                )
            with fresh_database(args.database_url, "processing") as url:
                breakdown(url, args.redis_url, bodies(min(args.events, 500)))
    finally:
        broker.flushdb()
        broker.close()

    ratios = [r / b for r, b in zip(rates, base_rates, strict=True)]
    met = print_result(
        "bench.processing",
        ("Celery no-op task, same worker settings", statistics.median(base_rates), "tasks/s"),
        ("webhook queued -> stored and acknowledged", statistics.median(rates), "webhooks/s"),
        statistics.median(ratios),
        f">= {TARGET_RATIO}",
    )
    return 0 if met else 2


if __name__ == "__main__":
    raise SystemExit(main())
