from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import redis
from celery import Celery

import worker.ops.signals  # noqa: F401 (connects the sent_at stamp, as worker/app.py does)
from ingress.queueing import TaskQueue
from shared.queues import INGEST_EVENT_TASK, SPARK_QUEUE
from worker.ops.queues import queue_states, sent_at


def test_it_reads_depth_and_the_oldest_messages_age_per_queue(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    app = Celery("queue-test", broker=redis_url, set_as_current=False)
    before = datetime.now(UTC)
    app.send_task("events.backfill_events", queue=SPARK_QUEUE)
    app.send_task("events.backfill_events", queue=SPARK_QUEUE)
    app.close()
    received = datetime.now(UTC) - timedelta(minutes=7)
    queue = TaskQueue(redis_url)
    try:
        queue.send(
            INGEST_EVENT_TASK,
            {"body_b64": "e30=", "received_at": received.isoformat(), "source": "webhook"},
            kwargsrepr="{}",
        )
    finally:
        queue.close()

    states = {state.name: state for state in queue_states(client)}

    assert states["spark"].depth == 2
    oldest = states["spark"].oldest_sent_at
    assert oldest is not None
    assert before - timedelta(seconds=1) <= oldest <= datetime.now(UTC)
    assert states["ingest"].depth == 1
    # Stamped when sent, here: this process has the hook connected.
    assert states["ingest"].oldest_sent_at is not None
    assert states["ingest"].oldest_sent_at >= before - timedelta(seconds=1)
    assert states["dispatch"].depth == 0
    assert states["dispatch"].oldest_sent_at is None


def test_it_takes_an_unstamped_ingest_messages_age_from_its_receipt() -> None:
    # The ingress does not import worker/: its messages carry no sent_at header.
    received = datetime(2026, 3, 29, 0, 59, 59, 123456, tzinfo=UTC)
    body = [[], {"body_b64": "e30=", "received_at": received.isoformat()}, {}]
    envelope = {
        "body": base64.b64encode(json.dumps(body).encode()).decode(),
        "headers": {"task": INGEST_EVENT_TASK},
        "properties": {"body_encoding": "base64"},
    }
    assert sent_at(json.dumps(envelope).encode()) == received
    assert sent_at(b"not json") is None
    assert sent_at(json.dumps({"headers": {}, "body": "e30=", "properties": {}}).encode()) is None
