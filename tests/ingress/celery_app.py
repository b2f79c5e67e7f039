"""A stock Celery app that consumes the ingest queue, standing in for the real worker.

test_publish.py starts it as `celery -A tests.ingress.celery_app worker -Q ingest` to prove
that an unmodified Celery worker accepts the messages the ingress writes by hand. The task
records what it received in Redis, where the test reads it back.
"""

from __future__ import annotations

import json

import redis
from celery import Celery, Task

from shared.queues import INGEST_EVENT_TASK, INGEST_QUEUE

REDIS_URL = "redis://127.0.0.1:6379/12"
RECEIVED_KEY_PREFIX = "ingress-test:received:"

app = Celery("ingress_test_consumer", broker=REDIS_URL, set_as_current=False)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_default_queue=INGEST_QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name=INGEST_EVENT_TASK, bind=True, shared=False)
def ingest_event(self: Task, body_b64: str, received_at: str, source: str) -> None:
    record = {
        "task_id": self.request.id,
        "body_b64": body_b64,
        "received_at": received_at,
        "source": source,
        "routing_key": (self.request.delivery_info or {}).get("routing_key"),
    }
    with redis.Redis.from_url(REDIS_URL) as client:
        client.set(RECEIVED_KEY_PREFIX + str(self.request.id), json.dumps(record), ex=600)
