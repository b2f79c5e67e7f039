"""A whole worker killed with `kill -9` (issue 15, hardening point 3): the messages it held
unacknowledged run again on another worker once the visibility timeout has passed since it
took them, within the restore interval after that, and never before.

The test runs with a visibility timeout of 30 s (BROKER_VISIBILITY_TIMEOUT); in production it
is worker.celery_app.VISIBILITY_TIMEOUT (README, "Faults").
"""

from __future__ import annotations

import base64
import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import psycopg
import pytest
import redis
from celery import Celery

from shared.db import connect
from shared.queues import INGEST_EVENT_TASK, INGEST_QUEUE
from tests.fixtures.services import WorkerProcess
from tests.waiting import UNACKED_KEY, drained, wait_for
from tests.worker.events import body, notification
from worker.celery_app import UNACKED_RESTORE_INTERVAL

VISIBILITY_TIMEOUT = 30
EVENTS = 6
# A worker's start and the task itself, on a busy machine.
SLACK = 15.0


@pytest.fixture
def send(redis_url: str) -> Iterator[Callable[[bytes], None]]:
    producer = Celery("fault-sender", broker=redis_url, set_as_current=False)

    def send(raw: bytes) -> None:
        producer.send_task(
            INGEST_EVENT_TASK,
            kwargs={
                "body_b64": base64.b64encode(raw).decode(),
                "received_at": datetime.now(UTC).isoformat(),
                "source": "webhook",
            },
            queue=INGEST_QUEUE,
            task_id=str(uuid.uuid4()),
        )

    yield send
    producer.close()


def held_events(redis_url: str) -> dict[str, float]:
    """The events in the messages workers hold unacknowledged, and when each was taken."""
    with redis.Redis.from_url(redis_url) as client:
        taken = {
            tag.decode(): score
            for tag, score in client.zrange("unacked_index", 0, -1, withscores=True)
        }
        held = {}
        for tag, entry in client.hgetall(UNACKED_KEY).items():
            message = json.loads(entry)[0]
            _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
            event = json.loads(base64.b64decode(kwargs["body_b64"]))
            held[event["eventId"]] = taken[tag.decode()]
    return held


def stored_at(database_url: str) -> dict[str, float]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT event_id, stored_at FROM events").fetchall()
    return {event_id: at.timestamp() for event_id, at in rows}


def test_it_runs_a_killed_workers_messages_again_within_the_visibility_timeout(
    database_url: str,
    redis_url: str,
    start_worker: Callable[..., WorkerProcess],
    send: Callable[[bytes], None],
) -> None:
    timeout = str(VISIBILITY_TIMEOUT)
    first = start_worker(database_url, redis_url, BROKER_VISIBILITY_TIMEOUT=timeout)
    events = [notification(notification_type="SomethingNew", payload={}) for _ in range(EVENTS)]
    with connect(database_url) as blocker:
        # Hold the inbox, so that both pool processes hold a message when the worker dies.
        blocker.execute("LOCK TABLE events IN EXCLUSIVE MODE")
        for document in events:
            send(body(document))
        wait_for(
            lambda: len(held_events(redis_url)) == 2,
            30,
            "both pool processes to hold a message",
        )
        held = held_events(redis_url)
        assert first.process is not None
        os.killpg(first.process.pid, signal.SIGKILL)
        killed = time.time()
        first.process.wait(10)
        blocker.rollback()

    start_worker(database_url, redis_url, BROKER_VISIBILITY_TIMEOUT=timeout)
    every = {document["eventId"] for document in events}
    latest = VISIBILITY_TIMEOUT + UNACKED_RESTORE_INTERVAL + SLACK
    wait_for(lambda: set(stored_at(database_url)) == every, latest, "every event stored")
    wait_for(drained(redis_url), 30, "nothing left queued or held")
    stored = stored_at(database_url)

    waited = {event_id: stored[event_id] - taken for event_id, taken in held.items()}
    print(
        f"\nFAULT worker kill -9: {EVENTS} sent, {len(stored)} stored; it held {len(held)} "
        f"message(s), run again "
        f"{min(waited.values()):.1f}-{max(waited.values()):.1f} s after they were taken "
        f"({max(stored[e] for e in held) - killed:.1f} s after the kill), with a visibility "
        f"timeout of {VISIBILITY_TIMEOUT} s and a restore interval of {UNACKED_RESTORE_INTERVAL} s"
    )
    # The others waited in the queue and ran as soon as the second worker started.
    assert len(held) == 2
    for event_id, wait in waited.items():
        assert VISIBILITY_TIMEOUT <= wait <= latest, event_id
