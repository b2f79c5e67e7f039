"""The same event in two workers at once: every eventId delivered many times concurrently,
to one ingress feeding two worker processes.

Spark's requests are captured as it sends them (the sandbox delivering to a recording
receiver), then each is POSTed to the ingress COPIES times at once, so that copies of one
new event run in both workers in the same instant: the inbox's `INSERT ... ON CONFLICT DO
NOTHING` on the eventId decides which one stores it and runs the handler; the others only
record their delivery.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psycopg
import requests

from tests.faults.spark_stream import STREAM_TYPES, EventStream, settle
from tests.fixtures.sandbox import (
    WEBHOOK_SECRET,
    ReceivedWebhook,
    SandboxHandle,
    WebhookReceiver,
    spark_env,
)
from tests.fixtures.services import IngressServer, WorkerProcess
from tests.waiting import wait_for

EVENTS = 30
COPIES = 12  # of each event, sent at once
BACKFILLED = r"events\.backfill_events\[[0-9a-f-]+\] succeeded"


def post_at_once(url: str, webhook: ReceivedWebhook, copies: int) -> list[int]:
    """`copies` POSTs of one request, released together by a barrier."""
    headers = {
        name: value
        for name, value in webhook.headers.items()
        if name.lower() in ("content-type", "x-payload-signature")
    }
    barrier = threading.Barrier(copies)

    def post(_: int) -> int:
        barrier.wait(10)
        return requests.post(url, data=webhook.body, headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(copies) as pool:
        return list(pool.map(post, range(copies)))


def test_it_stores_an_event_sent_to_two_workers_at_once_once_with_its_effects_once(
    sandbox: SandboxHandle,
    webhook_receiver: WebhookReceiver,
    *,
    database_url: str,
    redis_url: str,
    start_ingress: Callable[..., IngressServer],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    ingress = start_ingress(redis_url, secret=WEBHOOK_SECRET)
    workers = [
        start_worker(database_url, redis_url, concurrency=2, **spark_env(sandbox)) for _ in range(2)
    ]
    # Each worker backfills from Spark's /events when it starts: done before the events
    # exist, so that every copy of them comes through the webhook.
    wait_for(
        lambda: sum(len(re.findall(BACKFILLED, w.log())) for w in workers) == 2,
        60,
        "the start-up backfills",
    )
    sandbox.register_webhook(webhook_receiver.url, notification_types=STREAM_TYPES)
    created = EventStream(sandbox, EVENTS, 0.0).start().join()
    captured = webhook_receiver.wait_for(EVENTS, timeout=60)

    answered: set[str] = set()
    accepted = 0
    for webhook in captured:
        statuses = post_at_once(ingress.webhook_url, webhook, COPIES)
        accepted += sum(200 <= status < 300 for status in statuses)
        if any(200 <= status < 300 for status in statuses):
            answered.add(json.loads(webhook.body)["eventId"])

    outcome = settle(
        "same event in two workers at once",
        sandbox,
        database_url,
        redis_url,
        created,
        answered=answered,
        expect_all=True,
    )
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM event_deliveries WHERE source = 'webhook'"
        ).fetchone()
    deliveries = row[0] if row else 0
    stored_by = [
        len(re.findall(r"ingest_event\[[0-9a-f-]+\] succeeded .*'new'", w.log())) for w in workers
    ]
    repeats_by = [
        len(re.findall(r"ingest_event\[[0-9a-f-]+\] succeeded .*'duplicate'", w.log()))
        for w in workers
    ]
    outcome.notes = (
        f"{accepted} POSTs answered 2xx ({COPIES} at once per event), {deliveries} deliveries "
        f"recorded; stored by worker 1 / 2: {stored_by[0]} / {stored_by[1]}, "
        f"repeats seen by worker 1 / 2: {repeats_by[0]} / {repeats_by[1]}"
    )
    print(outcome.line())
    assert accepted == EVENTS * COPIES
    assert outcome.holds(), outcome.line()
    assert outcome.stored == outcome.sent == EVENTS
    # Every delivery recorded once, whichever worker ran it.
    assert deliveries == accepted
    assert sum(stored_by) == EVENTS
    assert all(repeats_by), "both workers must have run copies of the events"
