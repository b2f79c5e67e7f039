from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from devstack.servers import free_port, port_open
from shared.db import Connection
from shared.signing import SIGNATURE_HEADER, sign
from tests.fixtures.services import REPO, IngressServer, WorkerProcess, worker_env
from tests.lpc.support import location_payload, location_target
from tests.waiting import wait_for
from tests.worker.events import body, notification
from worker.events.inbox import ingest
from worker.ops.crashes import record_crash
from worker.ops.marks import DELIVERY_LOG_CHECK, mark

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    """Every sample of a /metrics answer, parsed with prometheus_client's own parser."""
    answer = requests.get(url, timeout=10)
    assert answer.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


@pytest.mark.slow
def test_it_counts_the_tasks_of_every_pool_process_on_the_workers_port(
    database_url: str,
    redis_url: str,
    start_ingress: Callable[..., IngressServer],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    port = free_port()
    start_worker(database_url, redis_url, concurrency=3, WORKER_METRICS_PORT=str(port))
    ingress = start_ingress(redis_url, secret="metrics-secret")
    for _ in range(12):
        raw = body(notification())
        headers = {SIGNATURE_HEADER: sign(b"metrics-secret", raw)}
        assert requests.post(ingress.webhook_url, data=raw, headers=headers, timeout=10).ok
    url = f"http://127.0.0.1:{port}/metrics"
    key = ("spark_partner_worker_tasks_total",
           (("outcome", "success"), ("task", "events.ingest_event")))  # fmt: skip
    wait_for(lambda: scrape(url).get(key) == 12, 30, "12 ingest tasks counted")

    found = scrape(url)
    done = ("spark_partner_worker_receipt_to_done_seconds_count",
            (("task", "events.ingest_event"),))  # fmt: skip
    assert found[done] == 12
    run_time = ("spark_partner_worker_task_seconds_count", (("task", "events.ingest_event"),))
    assert found[run_time] == 12


@pytest.fixture
def serve_metrics(tmp_path: Path) -> Iterator[Callable[[str, str], str]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(database_url: str, redis_url: str) -> str:
        port = free_port()
        log = (tmp_path / "serve-metrics.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "--env-file", "/nonexistent",
             "serve-metrics", "--host", "127.0.0.1", "--port", str(port)],
            env=worker_env(database_url, redis_url),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        started.append(process)
        wait_for(lambda: port_open("127.0.0.1", port), 20, "serve-metrics listening")
        return f"http://127.0.0.1:{port}/metrics"

    yield start
    for process in started:
        process.terminate()
        process.wait(10)


def test_it_serves_the_ledgers_read_at_scrape_time(
    database_url: str,
    redis_url: str,
    db: Connection,
    worker_app: Celery,
    serve_metrics: Callable[[str, str], str],
) -> None:
    url = serve_metrics(database_url, redis_url)
    found = scrape(url)
    assert found[("spark_partner_dead_letters_open", ())] == 0
    assert found[("spark_partner_ledger_source_up", (("source", "database"),))] == 1
    assert found[("spark_partner_queue_depth", (("queue", "ingest"),))] == 0
    assert found[("spark_partner_workers_responding", ())] == 0
    assert ("spark_partner_beat_heartbeat_age_seconds", ()) not in found
    assert found[("spark_partner_lpc_events_unacknowledged", ())] == 0

    lpc = notification(
        notification_type="LocationLPCRequested",
        payload=location_payload(location_target("loc-1")),
    )
    for delivery_id, raw in (("d1", b"{broken"), ("d2", body(lpc))):
        ingest(
            db,
            delivery_id=delivery_id,
            raw=raw,
            received_at=datetime.now(UTC),
            source="webhook",
            settings=worker_app.conf.spark_settings,
            sender=worker_app,
        )
    db.commit()
    found = scrape(url)
    assert found[("spark_partner_dead_letters_open", ())] == 1
    assert found[("spark_partner_lpc_events_unacknowledged", ())] == 1

    mark(db, DELIVERY_LOG_CHECK, detail={"webhook_healthy": False, "recovered_total": 10})
    db.commit()
    found = scrape(url)
    assert found[("spark_partner_spark_webhook_healthy", ())] == 0
    assert found[("spark_partner_delivery_log_recovered_events", ())] == 10
    assert found[("spark_partner_mark_age_seconds", (("name", DELIVERY_LOG_CHECK),))] < 60

    # Worker crashes: present (0) before the first, so that increase() sees it.
    assert found[("spark_partner_worker_crashes_total", ())] == 0
    for _ in range(2):
        record_crash(database_url, "w@h", AttributeError("gone"))
    assert scrape(url)[("spark_partner_worker_crashes_total", ())] == 2
