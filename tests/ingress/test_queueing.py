"""The ingress queues through Celery's own publishing: signals, routes, what monitoring sees."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from celery import signals
from flask.testing import FlaskClient

from ingress.app import create_app, ingest_kwargs
from ingress.queueing import TaskQueue
from shared.queues import INGEST_EVENT_TASK, INGEST_QUEUE
from tests.ingress.conftest import make_settings, queued, signed_headers, spark_body

PATH = "/webhooks/spark"


@pytest.fixture
def published() -> Iterator[list[dict[str, Any]]]:
    """What Celery's before_task_publish and after_task_publish signals see, in order."""
    seen: list[dict[str, Any]] = []

    def before(sender: str, headers: dict[str, Any], routing_key: str, **_: Any) -> None:
        seen.append({"signal": "before", "task": sender, "headers": headers, "queue": routing_key})

    def after(sender: str, headers: dict[str, Any], **_: Any) -> None:
        seen.append({"signal": "after", "task": sender, "id": headers["id"]})

    signals.before_task_publish.connect(before, weak=False)
    signals.after_task_publish.connect(after, weak=False)
    yield seen
    signals.before_task_publish.disconnect(before)
    signals.after_task_publish.disconnect(after)


def test_it_publishes_the_ingest_task_through_celerys_signals(
    client: FlaskClient, app_redis: redis.Redis, published: list[dict[str, Any]]
) -> None:
    body = spark_body()

    assert client.post(PATH, data=body, headers=signed_headers(body)).status_code == 202

    before, after = published
    (message,) = queued(app_redis)
    task_id = message["envelope"]["headers"]["id"]
    assert before["signal"] == "before"
    assert before["task"] == INGEST_EVENT_TASK
    assert before["queue"] == INGEST_QUEUE
    assert before["headers"]["id"] == task_id
    assert after == {"signal": "after", "task": INGEST_EVENT_TASK, "id": task_id}


def test_it_keeps_the_body_out_of_what_monitoring_shows(
    client: FlaskClient, app_redis: redis.Redis, published: list[dict[str, Any]]
) -> None:
    body = spark_body(event_id="personal-data-7f3a")

    client.post(PATH, data=body, headers=signed_headers(body))

    (message,) = queued(app_redis)
    shown = [message["envelope"]["headers"]["kwargsrepr"], published[0]["headers"]["kwargsrepr"]]
    for kwargsrepr in shown:
        assert "personal-data-7f3a" not in kwargsrepr
        assert base64.b64encode(body).decode()[:40] not in kwargsrepr
        assert f"<{len(body)} bytes>" in kwargsrepr
        assert "'source': 'webhook'" in kwargsrepr
    # The message itself carries the body, whole.
    assert base64.b64decode(message["kwargs"]["body_b64"]) == body


def test_it_honours_task_routes(redis_url: str, app_redis: redis.Redis) -> None:
    queue = TaskQueue(redis_url, routes={INGEST_EVENT_TASK: {"queue": "ingest-elsewhere"}})
    try:
        client = create_app(make_settings(redis_url), queue).test_client()
        body = spark_body()

        assert client.post(PATH, data=body, headers=signed_headers(body)).status_code == 202
    finally:
        queue.close()

    assert app_redis.llen(INGEST_QUEUE) == 0
    (raw,) = app_redis.lrange("ingest-elsewhere", 0, -1)
    envelope = json.loads(raw)
    assert envelope["headers"]["task"] == INGEST_EVENT_TASK
    assert envelope["properties"]["delivery_info"]["routing_key"] == "ingest-elsewhere"


def test_it_gives_every_message_a_task_id_of_its_own(
    client: FlaskClient, app_redis: redis.Redis
) -> None:
    body = spark_body()

    for _ in range(3):
        client.post(PATH, data=body, headers=signed_headers(body))

    ids = [m["envelope"]["headers"]["id"] for m in queued(app_redis)]
    assert len(set(ids)) == 3


def test_it_writes_the_receipt_time_in_utc_with_microseconds() -> None:
    oslo_winter = timezone(timedelta(hours=1))
    local = datetime(2026, 11, 26, 6, 33, 21, 5, tzinfo=oslo_winter)

    assert ingest_kwargs(b"", local)["received_at"] == "2026-11-26T05:33:21.000005+00:00"
    assert ingest_kwargs(b"", local.astimezone(UTC)) == ingest_kwargs(b"", local)
    with pytest.raises(ValueError, match="timezone-aware"):
        ingest_kwargs(b"", datetime(2026, 11, 26, 5, 33, 21))  # noqa: DTZ001
