"""The `events.ingest_event` task on a real Celery worker, Redis and PostgreSQL."""

from __future__ import annotations

import base64
import os
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from celery import Celery

from devstack.servers import PostgresServer
from shared.db import connect
from shared.db.migrate import upgrade
from shared.queues import INGEST_EVENT_TASK, INGEST_QUEUE
from tests.fixtures.services import WorkerProcess
from tests.waiting import drained, wait_for
from tests.worker.events import body, notification

pytestmark = pytest.mark.slow


@pytest.fixture
def sender(redis_url: str) -> Iterator[Callable[[bytes], str]]:
    producer = Celery("test-sender", broker=redis_url, set_as_current=False)

    def send(raw: bytes) -> str:
        task_id = str(uuid.uuid4())
        producer.send_task(
            INGEST_EVENT_TASK,
            kwargs={
                "body_b64": base64.b64encode(raw).decode(),
                "received_at": datetime.now(UTC).isoformat(),
                "source": "webhook",
            },
            queue=INGEST_QUEUE,
            task_id=task_id,
        )
        return task_id

    yield send
    producer.close()


def count(database_url: str, sql: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def test_it_stores_twenty_copies_of_one_event_once(
    database_url: str,
    redis_url: str,
    start_worker: Callable[..., WorkerProcess],
    sender: Callable[[bytes], str],
) -> None:
    start_worker(database_url, redis_url, concurrency=2)
    raw = body(notification())
    for _ in range(20):
        sender(raw)

    wait_for(
        lambda: count(database_url, "SELECT count(*) FROM event_deliveries") == 20,
        30,
        "20 deliveries",
    )
    assert count(database_url, "SELECT count(*) FROM events") == 1


def test_it_processes_an_event_once_when_its_worker_process_is_killed_mid_ingest(
    database_url: str,
    redis_url: str,
    start_worker: Callable[..., WorkerProcess],
    sender: Callable[[bytes], str],
) -> None:
    worker = start_worker(database_url, redis_url, concurrency=1)
    # A type without a handler, so the event's status shows the ingest alone.
    document = notification(
        notification_type="SomethingNew",
        payload={"payloadType": "SomethingNew"},
    )
    with connect(database_url) as blocker:
        # Hold the inbox so the ingest blocks inside its transaction, then kill the process
        # running it: the task must come back and finish, and store the event once.
        blocker.execute("LOCK TABLE events IN EXCLUSIVE MODE")
        sender(body(document))
        wait_for(
            lambda: count(database_url, "SELECT count(*) FROM pg_locks WHERE NOT granted") > 0,
            20,
            "the ingest to block on the lock",
        )
        children = worker.children()
        assert children, "the prefork pool has no child"
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        worker.wait_for_log("WorkerLostError", timeout=20)
        blocker.rollback()

    wait_for(
        lambda: count(database_url, "SELECT count(*) FROM events") == 1, 60, "the retried ingest"
    )
    # The retried copy is acknowledged and no other waits or is held: none can run again.
    wait_for(drained(redis_url), 30, "the ingest queue drained")
    assert count(database_url, "SELECT count(*) FROM events") == 1
    assert count(database_url, "SELECT count(*) FROM event_deliveries") == 1
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT event_id, status FROM events").fetchone()
    assert row == (document["eventId"], "unhandled")


def test_it_retries_through_a_database_outage_without_losing_the_event(
    tmp_path: Path,
    redis_url: str,
    start_worker: Callable[..., WorkerProcess],
    sender: Callable[[bytes], str],
) -> None:
    server = PostgresServer(tmp_path / "pg").start()
    try:
        with connect(server.url) as conn:
            upgrade(conn)
        worker = start_worker(server.url, redis_url, concurrency=1)
        server.stop("immediate")
        document = notification()
        sender(body(document))
        worker.wait_for_log("Retry in", timeout=30)
        restart = threading.Timer(0.5, server.start)
        restart.start()
        restart.join()
        wait_for(
            lambda: count(server.url, "SELECT count(*) FROM events") == 1,
            90,
            "the event after the outage",
        )
        assert count(server.url, "SELECT count(*) FROM event_deliveries") == 1
    finally:
        server.stop("immediate")


def test_it_dead_letters_a_broken_body_and_acknowledges_it(
    database_url: str,
    redis_url: str,
    start_worker: Callable[..., WorkerProcess],
    sender: Callable[[bytes], str],
) -> None:
    start_worker(database_url, redis_url, concurrency=1)
    sender(b"[" * 5000 + b"]" * 5000)
    wait_for(
        lambda: count(database_url, "SELECT count(*) FROM dead_letters") == 1, 30, "the dead letter"
    )
