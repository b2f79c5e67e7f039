"""`POST /consumption` on the real ingress: token, size limit, schema check without a database,
then one queued task that the real worker stores."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import redis
import requests

from devstack.servers import free_port
from ingress.consumption import MAX_CONSUMPTION_BYTES
from shared.queues import INGEST_QUEUE
from tests.fixtures.services import IngressServer, WorkerProcess
from tests.reports.support import HOUR, reading, rows, wait_until

T0 = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
TOKENS = "old-token,new-token"


def post(
    ingress: IngressServer, body: object, token: str | None = "new-token"
) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(f"{ingress.url}/consumption", data=data, headers=headers, timeout=10)


def queued(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.llen(INGEST_QUEUE))
    finally:
        client.close()


@pytest.mark.slow
def test_it_queues_readings_that_the_worker_stores_under_the_batch_id(
    database_url: str,
    redis_url: str,
    start_ingress: Callable[..., IngressServer],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    ingress = start_ingress(redis_url, CONSUMPTION_API_TOKENS=TOKENS)
    start_worker(database_url, redis_url, concurrency=1)
    readings = [
        reading("ev-1", T0, T0 + HOUR, 7.5, location_id="home", reading_id="s-1"),
        reading("ev-2", T0, T0 + 2 * HOUR, 3.0),
    ]

    answer = post(ingress, {"readings": readings}, token="old-token")

    assert answer.status_code == 202, answer.text
    batch_id = answer.json()["batchId"]
    assert answer.json()["readings"] == 2
    batch = wait_until(
        lambda: rows(
            database_url,
            "SELECT * FROM consumption_batches WHERE batch_id = %s AND stored_at IS NOT NULL",
            (batch_id,),
        ),
        30,
        "the batch to be stored",
    )[0]
    assert (batch["source"], batch["readings"], batch["inserted"]) == ("api", 2, 2)
    stored = rows(database_url, "SELECT resource_id, kwh, batch_id FROM readings ORDER BY 1")
    assert stored == [
        {"resource_id": "ev-1", "kwh": 7.5, "batch_id": batch_id},
        {"resource_id": "ev-2", "kwh": 3.0, "batch_id": batch_id},
    ]


def test_it_refuses_requests_without_a_valid_token(
    redis_url: str, start_ingress: Callable[..., IngressServer]
) -> None:
    ingress = start_ingress(redis_url, CONSUMPTION_API_TOKENS=TOKENS)
    closed = start_ingress(redis_url)  # no tokens configured: nobody gets in
    body = {"readings": [reading("ev-1", T0, T0 + HOUR, 1.0)]}

    answers = [
        post(ingress, body, token=None),
        post(ingress, body, token="guess"),
        post(ingress, body, token=""),
        post(closed, body, token="new-token"),
    ]

    assert [a.status_code for a in answers] == [401, 401, 401, 401]
    assert queued(redis_url) == 0


def test_it_answers_field_errors_without_queueing_anything(
    redis_url: str, start_ingress: Callable[..., IngressServer]
) -> None:
    ingress = start_ingress(redis_url, CONSUMPTION_API_TOKENS=TOKENS)
    good = reading("ev-1", T0, T0 + HOUR, 1.0)
    bad = {**good, "end": good["start"], "kWh": "lots", "colour": "red"}
    del bad["resourceId"]

    answer = post(ingress, {"readings": [good, bad]})
    not_json = post(ingress, b"{readings")
    empty = post(ingress, {"readings": []})

    assert answer.status_code == 400
    assert answer.json() == {
        "errors": {
            "readings": {
                "1": {
                    "colour": ["is not a field of a reading"],
                    "resourceId": ["is required"],
                    "kWh": ["must be a number"],
                    "end": ["must be after start"],
                }
            }
        }
    }
    assert (not_json.status_code, not_json.json()) == (400, {"errors": {"_body": ["is not JSON"]}})
    assert empty.status_code == 400
    assert queued(redis_url) == 0


def test_it_refuses_a_body_over_the_limit(
    redis_url: str, start_ingress: Callable[..., IngressServer]
) -> None:
    ingress = start_ingress(redis_url, CONSUMPTION_API_TOKENS=TOKENS)
    body = b'{"readings": [' + b" " * MAX_CONSUMPTION_BYTES + b"]}"

    answer = post(ingress, body)

    assert answer.status_code == 413
    assert queued(redis_url) == 0


def test_it_answers_503_when_the_queue_is_unavailable(
    start_ingress: Callable[..., IngressServer],
) -> None:
    ingress = start_ingress(f"redis://127.0.0.1:{free_port()}/0", CONSUMPTION_API_TOKENS=TOKENS)

    answer = post(ingress, {"readings": [reading("ev-1", T0, T0 + HOUR, 1.0)]})

    assert (answer.status_code, answer.json()) == (503, {"error": "queue unavailable"})


def test_it_refuses_identifiers_that_postgresql_cannot_hold(
    redis_url: str, start_ingress: Callable[..., IngressServer]
) -> None:
    ingress = start_ingress(redis_url, CONSUMPTION_API_TOKENS=TOKENS)
    good = reading("ev-1", T0, T0 + HOUR, 1.0)
    # Valid JSON once escaped; taken, each failed the worker's task (found by fuzzing).
    bad = [{**good, "resourceId": "ev\x00"}, {**good, "readingId": "\ud800"}]

    answer = post(ingress, {"readings": bad})

    assert answer.status_code == 400
    assert answer.json() == {
        "errors": {
            "readings": {
                "0": {"resourceId": ["must not contain NUL or a lone surrogate"]},
                "1": {"readingId": ["must not contain NUL or a lone surrogate"]},
            }
        }
    }
    assert queued(redis_url) == 0
