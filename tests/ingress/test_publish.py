"""ingress.publish: the hand-built Celery message must be what Celery itself would send."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import celery
import pytest
import redis

from devstack.servers import free_port
from ingress.publish import (
    MessageTemplate,
    Publisher,
    PublishError,
    ingest_kwargs,
    ingest_kwargsrepr,
)
from shared.queues import INGEST_EVENT_TASK, INGEST_QUEUE
from tests.ingress import celery_app
from tests.ingress.conftest import ROOT, db_url, flushed, queued, spark_body

CONTRACT_DB = 13
WORKER_DB = 12
RECEIVED_AT = datetime(2026, 11, 26, 5, 33, 21, 123456, tzinfo=UTC)

# Differ per message, process or thread by design; everything else must match send_task.
# kwargsrepr is only for display and ours leaves the body out on purpose (see
# test_it_keeps_the_body_out_of_the_kwargs_repr).
VOLATILE_HEADERS = {"id", "root_id", "origin", "kwargsrepr"}
VOLATILE_PROPERTIES = {"correlation_id", "reply_to", "delivery_tag"}


@pytest.fixture
def contract_redis() -> Iterator[redis.Redis]:
    client = flushed(CONTRACT_DB)
    yield client
    client.close()


@pytest.fixture
def publisher() -> Iterator[Publisher]:
    publisher = Publisher(db_url(CONTRACT_DB))
    yield publisher
    publisher.close()


def send_task_envelope(body: bytes, client: redis.Redis) -> dict[str, Any]:
    """What this installed celery/kombu pair writes to Redis for the same task."""
    app = celery.Celery("contract", broker=db_url(CONTRACT_DB))
    app.conf.update(task_serializer="json", accept_content=["json"])
    try:
        app.send_task(
            INGEST_EVENT_TASK, args=[], kwargs=ingest_kwargs(body, RECEIVED_AT), queue=INGEST_QUEUE
        )
    finally:
        app.close()
    (raw,) = client.lrange(INGEST_QUEUE, 0, -1)
    client.delete(INGEST_QUEUE)
    envelope: dict[str, Any] = json.loads(raw)
    return envelope


def test_it_writes_the_envelope_that_celery_send_task_writes(
    contract_redis: redis.Redis, publisher: Publisher
) -> None:
    body = spark_body()
    expected = send_task_envelope(body, contract_redis)

    task_id = publisher.publish_ingest(body, RECEIVED_AT)
    (raw,) = contract_redis.lrange(INGEST_QUEUE, 0, -1)
    actual = json.loads(raw)

    assert list(actual) == list(expected)
    for key in ("content-type", "content-encoding"):
        assert actual[key] == expected[key]
    assert json.loads(base64.b64decode(actual["body"])) == json.loads(
        base64.b64decode(expected["body"])
    )
    headers, properties = actual["headers"], actual["properties"]
    assert set(headers) == set(expected["headers"])
    assert set(properties) == set(expected["properties"])
    for name in set(headers) - VOLATILE_HEADERS:
        assert headers[name] == expected["headers"][name], name
    for name in set(properties) - VOLATILE_PROPERTIES:
        assert properties[name] == expected["properties"][name], name
    assert headers["id"] == headers["root_id"] == properties["correlation_id"] == task_id
    assert re.fullmatch(rf"gen{os.getpid()}@.+", headers["origin"])
    assert uuid.UUID(properties["delivery_tag"]) != uuid.UUID(task_id)
    assert isinstance(properties["reply_to"], str)
    assert isinstance(headers["kwargsrepr"], str)


def test_it_escapes_an_origin_that_json_or_format_strings_would_choke_on() -> None:
    origin = 'gen7@host "quoted" {braces} \\ back'
    template = MessageTemplate(reply_to="reply-{x}", origin=origin)

    envelope = json.loads(template.render(b"{}", RECEIVED_AT, "task-1", "tag-1"))

    assert envelope["headers"]["origin"] == origin
    assert envelope["properties"]["reply_to"] == "reply-{x}"
    assert envelope["headers"]["id"] == "task-1"
    assert envelope["properties"]["delivery_tag"] == "tag-1"


def test_it_names_the_forked_process_as_origin_and_gives_it_ids_of_its_own(
    contract_redis: redis.Redis, publisher: Publisher
) -> None:
    publisher.publish_ingest(b"{}", RECEIVED_AT)  # template and ids made in this process
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            publisher.publish_ingest(b"{}", RECEIVED_AT)
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    # The parent's next ids: what the child would have repeated without a generator of its own.
    publisher.publish_ingest(b"{}", RECEIVED_AT)

    envelopes = [m["envelope"] for m in queued(contract_redis)]
    origins = [envelope["headers"]["origin"] for envelope in envelopes]
    ids = [envelope["headers"]["id"] for envelope in envelopes] + [
        envelope["properties"]["delivery_tag"] for envelope in envelopes
    ]

    assert sorted(origin.split("@")[0] for origin in origins) == sorted(
        [f"gen{os.getpid()}", f"gen{child}", f"gen{os.getpid()}"]
    )
    assert len(set(ids)) == 6
    assert all(uuid.UUID(value).version == 4 for value in ids)


def test_it_gives_every_message_a_fresh_uuid4(
    contract_redis: redis.Redis, publisher: Publisher
) -> None:
    ids = [publisher.publish_ingest(b"{}", RECEIVED_AT) for _ in range(3)]

    assert len(set(ids)) == 3
    assert all(uuid.UUID(task_id).version == 4 for task_id in ids)
    assert [m["envelope"]["headers"]["id"] for m in queued(contract_redis)] == ids


def test_it_writes_the_receipt_time_in_utc_with_microseconds() -> None:
    oslo_winter = timezone(timedelta(hours=1))
    local = datetime(2026, 11, 26, 6, 33, 21, 5, tzinfo=oslo_winter)

    assert ingest_kwargs(b"", local)["received_at"] == "2026-11-26T05:33:21.000005+00:00"
    with pytest.raises(ValueError, match="timezone-aware"):
        ingest_kwargs(b"", datetime(2026, 11, 26, 5, 33, 21))  # noqa: DTZ001


def test_it_keeps_the_body_out_of_the_kwargs_repr() -> None:
    body = spark_body(event_id="personal-data-7f3a")
    kwargs = ingest_kwargs(body, RECEIVED_AT)

    shown = ingest_kwargsrepr(body, kwargs)

    assert "personal-data-7f3a" not in shown
    assert kwargs["body_b64"] not in shown
    assert f"<{len(body)} bytes>" in shown


def test_it_raises_publish_error_quickly_when_redis_is_unreachable() -> None:
    publisher = Publisher(f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    try:
        with pytest.raises(PublishError):
            publisher.publish_ingest(b"{}", RECEIVED_AT)
        assert publisher.ping() is False
    finally:
        publisher.close()
    assert time.monotonic() - started < 1


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A stock `celery worker` (tests/ingress/celery_app.py) consuming the ingest queue."""
    flushed(WORKER_DB).close()
    log = tmp_path / "worker.log"
    args = [
        sys.executable, "-m", "celery", "-A", "tests.ingress.celery_app", "worker",
        "-Q", INGEST_QUEUE, "--pool", "solo", "--hostname", "ingress-test@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO",
        "--logfile", str(log),
    ]  # fmt: skip
    environ = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        args, cwd=ROOT, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    yield process
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
    if log.exists():
        sys.stderr.write(log.read_text()[-2000:])


@pytest.mark.slow
def test_it_is_consumed_by_a_stock_celery_worker(worker: subprocess.Popen[bytes]) -> None:
    body = spark_body() + b"\x00\xff raw bytes, not text"
    publisher = Publisher(db_url(WORKER_DB))
    try:
        task_id = publisher.publish_ingest(body, RECEIVED_AT)
    finally:
        publisher.close()

    deadline = time.monotonic() + 30
    with redis.Redis.from_url(db_url(WORKER_DB)) as storage:
        while (raw := storage.get(celery_app.RECEIVED_KEY_PREFIX + task_id)) is None:
            assert worker.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "the worker did not run the task within 30 s"
            time.sleep(0.1)

    received = json.loads(raw)
    assert received["task_id"] == task_id
    assert base64.b64decode(received["body_b64"]) == body
    assert received["received_at"] == "2026-11-26T05:33:21.123456+00:00"
    assert received["source"] == "webhook"
    assert received["routing_key"] == INGEST_QUEUE
