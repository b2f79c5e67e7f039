"""The ingress down for longer than Spark's 3 retries, under a stream of events.

While no ingress answers, Spark (the sandbox) tries each event four times and gives up. The
events it gave up on are still in Spark's `GET /events`: the backfill (beat, every 15
minutes, and each worker's start) enqueues every event the inbox lacks, through the same
ingest path. Here the backfill task is sent as beat sends it, once the ingress is back.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

import psycopg
from celery import Celery
from werkzeug.serving import make_server

from ingress.app import create_app
from shared.config import load_settings
from shared.queues import SPARK_QUEUE
from tests.faults.spark_stream import STREAM_TYPES, EventStream, answered_2xx, settle
from tests.fixtures.sandbox import WEBHOOK_SECRET, SandboxHandle, spark_env
from tests.fixtures.services import IngressServer, WorkerProcess
from tests.waiting import wait_for
from worker.events.tasks import BACKFILL_TASK

EVENTS = 90
INTERVAL = 0.1
BACKFILLED = r"events\.backfill_events\[[0-9a-f-]+\] succeeded"


def serve_ingress(redis_url: str, port: int) -> IngressServer:
    """The ingress app on `port` (the address Spark has), in a thread."""
    settings = load_settings({"REDIS_URL": redis_url, "SPARK_WEBHOOK_SECRETS": WEBHOOK_SECRET})
    server = make_server("127.0.0.1", port, create_app(settings), threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    url = f"http://127.0.0.1:{port}"
    return IngressServer(url, f"{url}/webhooks/spark", WEBHOOK_SECRET, server, thread)


def test_it_recovers_every_event_spark_gave_up_on_while_the_ingress_was_down_once(
    sandbox: SandboxHandle,
    database_url: str,
    redis_url: str,
    start_ingress: Callable[..., IngressServer],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    first = start_ingress(redis_url, secret=WEBHOOK_SECRET)
    port = first.server.port
    worker = start_worker(database_url, redis_url, concurrency=2, **spark_env(sandbox))
    worker.wait_for_log("backfill_events", 60)
    wait_for(lambda: bool(re.search(BACKFILLED, worker.log())), 60, "the start-up backfill")
    sandbox.register_webhook(first.webhook_url, notification_types=STREAM_TYPES)

    stream = EventStream(sandbox, EVENTS, INTERVAL).start()
    wait_for(lambda: len(stream.created) >= EVENTS // 3, 60, "a third of the stream")
    first.stop()
    down_at = time.monotonic()
    # Down for a third of the stream, seconds: far longer than Spark's 3 retries of an event
    # (0.35 s in all with the test sandbox's delays), so it gives up on many.
    wait_for(lambda: len(stream.created) >= 2 * EVENTS // 3, 60, "two thirds of the stream")
    down_for = time.monotonic() - down_at
    second = serve_ingress(redis_url, port)
    try:
        created = stream.join()
        sandbox.wait_for_deliveries(timeout=60)
        given_up = set(created) - answered_2xx(sandbox)
        assert given_up, "Spark gave up on no event: the ingress was not down long enough"
        attempts = [d for d in sandbox.control.deliveries() if d["eventId"] in given_up]
        assert len(attempts) == 4 * len(given_up)  # a first try and 3 retries each

        producer = Celery("beat-stand-in", broker=redis_url, set_as_current=False)
        producer.send_task(BACKFILL_TASK, queue=SPARK_QUEUE)
        producer.close()
        outcome = settle(
            "ingress down longer than Spark's retries",
            sandbox,
            database_url,
            redis_url,
            created,
            expect_all=True,
        )
    finally:
        second.stop()
    with psycopg.connect(database_url) as conn:
        polled = conn.execute(
            "SELECT count(*) FROM events WHERE first_source = 'poll' AND event_id = ANY(%s)",
            (list(given_up),),
        ).fetchone()
    outcome.notes = (
        f"ingress down {down_for:.1f} s; Spark gave up on {len(given_up)} events "
        f"(4 attempts each), {polled[0] if polled else 0} of them stored by the backfill"
    )
    print(outcome.line())
    assert outcome.holds(), outcome.line()
    assert outcome.stored == outcome.sent == EVENTS
    assert polled == (len(given_up),)
