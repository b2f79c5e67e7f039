"""`GET /consumption/batches/{id}`: what a 202 from `POST /consumption` lets a client rely on.

A batch reads `queued` until the worker has stored it, then `stored` with its counts; a batch
that nothing has touched for CONSUMPTION_BATCH_PENDING reads `unknown` (404), and sending its
readings again stores them once. The window is set to 0 here instead of waiting an hour.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import requests

from devstack.servers import free_port
from ingress.consumption import enqueue
from ingress.queueing import TaskQueue
from shared.batch_status import key
from shared.queues import INGEST_QUEUE
from tests.consumption.test_post_consumption import TOKENS, post, queued
from tests.fixtures.services import IngressServer, WorkerProcess
from tests.reports.support import HOUR, reading, wait_until

T0 = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
READINGS = [
    reading("ev-1", T0, T0 + HOUR, 7.5, location_id="home", reading_id="s-1"),
    reading("ev-2", T0, T0 + 2 * HOUR, 3.0),
]


def status(
    ingress: IngressServer, batch_id: str, token: str | None = "new-token"
) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    url = f"{ingress.url}/consumption/batches/{batch_id}"
    return requests.get(url, headers=headers, timeout=10)


def stored(ingress: IngressServer, batch_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = wait_until(
        lambda: (a := status(ingress, batch_id)).json()["status"] == "stored" and a.json(),
        30,
        f"batch {batch_id} to read as stored",
    )
    return answer


def counts(answer: dict[str, Any]) -> tuple[int, ...]:
    return tuple(
        answer[name]
        for name in ("readings", "inserted", "replaced", "unchanged", "rejected", "late")
    )


@pytest.mark.slow
def test_it_answers_queued_then_stored_with_the_counts(
    database_url: str,
    redis_url: str,
    start_ingress: Callable[..., IngressServer],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    ingress = start_ingress(redis_url, CONSUMPTION_API_TOKENS=TOKENS)

    accepted = post(ingress, {"readings": READINGS})
    batch_id = accepted.json()["batchId"]
    before = status(ingress, batch_id)
    start_worker(database_url, redis_url, concurrency=1)
    after = stored(ingress, batch_id)
    again = stored(ingress, post(ingress, {"readings": READINGS}).json()["batchId"])

    assert accepted.status_code == 202
    assert accepted.json() == {"batchId": batch_id, "readings": 2, "status": "queued"}
    assert accepted.headers["Location"] == f"/consumption/batches/{batch_id}"
    assert before.status_code == 200
    assert before.json()["status"] == "queued"
    assert before.json()["readings"] == 2
    received = datetime.fromisoformat(before.json()["receivedAt"])
    assert datetime.fromisoformat(before.json()["unknownAfter"]) - received == timedelta(hours=1)
    assert after["batchId"] == batch_id
    assert counts(after) == (2, 2, 0, 0, 0, 0)
    assert after["errors"] == []
    assert datetime.fromisoformat(after["receivedAt"]) == received
    assert datetime.fromisoformat(after["storedAt"]) >= received
    # Sent again: stored once, the second batch says so.
    assert counts(again) == (2, 0, 0, 2, 0, 0)


@pytest.mark.slow
def test_it_answers_unknown_for_a_lost_batch_after_the_window_and_a_resend_is_stored(
    database_url: str,
    redis_url: str,
    start_ingress: Callable[..., IngressServer],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    ingress = start_ingress(redis_url, CONSUMPTION_API_TOKENS=TOKENS, CONSUMPTION_BATCH_PENDING="0")
    lost = post(ingress, {"readings": READINGS}).json()["batchId"]
    # What a Redis crash between the worker's BRPOP and kombu's `unacked` write leaves: the
    # message in no queue (its status record, with a window of 0, lasted a millisecond).
    client = redis.Redis.from_url(redis_url)
    assert client.delete(INGEST_QUEUE) == 1
    client.close()
    start_worker(database_url, redis_url, concurrency=1)

    unknown = status(ingress, lost)
    resent = post(ingress, {"readings": READINGS}).json()["batchId"]

    assert unknown.status_code == 404
    assert unknown.json()["status"] == "unknown"
    assert unknown.json()["batchId"] == lost
    assert counts(stored(ingress, resent)) == (2, 2, 0, 0, 0, 0)
    assert status(ingress, lost).status_code == 404


@pytest.mark.slow
def test_it_reads_as_stored_when_a_batch_past_the_window_is_stored_after_all(
    database_url: str,
    redis_url: str,
    start_ingress: Callable[..., IngressServer],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    ingress = start_ingress(redis_url, CONSUMPTION_API_TOKENS=TOKENS, CONSUMPTION_BATCH_PENDING="0")
    batch_id = post(ingress, {"readings": READINGS}).json()["batchId"]

    before = status(ingress, batch_id)
    start_worker(database_url, redis_url, concurrency=1)

    assert before.status_code == 404
    assert counts(stored(ingress, batch_id)) == (2, 2, 0, 0, 0, 0)


@pytest.mark.slow
def test_it_brings_a_lost_stored_status_back_with_the_redelivered_message(
    database_url: str,
    redis_url: str,
    start_ingress: Callable[..., IngressServer],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    ingress = start_ingress(redis_url, CONSUMPTION_API_TOKENS=TOKENS)
    worker = start_worker(database_url, redis_url, concurrency=1)
    batch_id = post(ingress, {"readings": READINGS}).json()["batchId"]
    first = stored(ingress, batch_id)
    client = redis.Redis.from_url(redis_url)
    client.delete(key(batch_id))
    client.close()
    queue = TaskQueue(redis_url)

    # The same message once more, as Redis hands back an unacknowledged one.
    enqueue(queue, batch_id, READINGS, T0)
    worker.wait_for_log("was stored before", 30)
    queue.close()

    assert stored(ingress, batch_id) == first


def test_it_wants_the_token_and_answers_unknown_for_ids_never_given(
    redis_url: str, start_ingress: Callable[..., IngressServer]
) -> None:
    ingress = start_ingress(redis_url, CONSUMPTION_API_TOKENS=TOKENS)
    batch_id = post(ingress, {"readings": READINGS}).json()["batchId"]

    answers = [
        status(ingress, batch_id, token=None),
        status(ingress, batch_id, token="guess"),
        status(ingress, "0b6c1e8e-1a53-4c8e-9f0a-2d1c4a3b5e6f"),
        status(ingress, "a/b%2F..%00"),
        status(ingress, "%2Fa"),
        status(ingress, ""),
        status(ingress, "a%0Ab"),  # a newline, which `.` in a route's regex does not match
    ]

    assert [a.status_code for a in answers] == [401, 401, 404, 404, 404, 404, 404]
    assert [a.json().get("status") for a in answers[2:]] == ["unknown"] * 5
    assert queued(redis_url) == 1


def test_it_answers_503_when_redis_is_unavailable(
    start_ingress: Callable[..., IngressServer],
) -> None:
    ingress = start_ingress(f"redis://127.0.0.1:{free_port()}/0", CONSUMPTION_API_TOKENS=TOKENS)

    answer = status(ingress, "0b6c1e8e-1a53-4c8e-9f0a-2d1c4a3b5e6f")

    assert (answer.status_code, answer.json()) == (503, {"error": "queue unavailable"})
