"""The delivery-log check: events Spark failed to deliver are recovered from its log and
counted; Spark reporting our webhook unhealthy is an alert and recorded for `status`."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from celery import Celery

from tests.fixtures.sandbox import SandboxHandle, spark_env
from tests.fixtures.services import REPO, WorkerProcess, worker_env
from tests.waiting import wait_for

pytestmark = pytest.mark.slow


def cli(
    database_url: str, redis_url: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", "--env-file", "/nonexistent", *args],
        env=worker_env(database_url, redis_url, LOG_FORMAT="json", **env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def stored_events(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        return {row[0] for row in conn.execute("SELECT event_id FROM events")}


def delivery_log_mark(database_url: str) -> dict[str, Any] | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT detail FROM ops_marks WHERE name = 'delivery_log_check'"
        ).fetchone()
    return None if row is None else dict(row[0])


def test_it_recovers_every_event_spark_failed_to_deliver_and_alerts_on_the_webhook(
    sandbox: SandboxHandle,
    database_url: str,
    redis_url: str,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    webhook = sandbox.register_webhook(f"http://127.0.0.1:9/hooks/{uuid.uuid4().hex}")
    sandbox.control.set_delivery(fail="refused")
    created = {sandbox.sandbox.simulate_user_eligibility().event_id for _ in range(10)}
    sandbox.wait_for_deliveries(timeout=20)
    assert sandbox.state.get_webhook(webhook["webhookId"]).status == "Unhealthy"  # type: ignore[union-attr]

    result = cli(database_url, redis_url, "webhooks", "check-deliveries", "--json",
                 **spark_env(sandbox))  # fmt: skip

    assert result.returncode == 1, result.stderr  # a webhook is unhealthy
    report = json.loads(result.stdout)
    assert report["failed"] == 10
    assert report["missing"] == 10
    assert report["recovered"] == 10
    assert report["webhook_healthy"] is False
    assert report["unhealthy_webhooks"] == [
        {
            "webhookId": webhook["webhookId"],
            "webhookUrl": webhook["webhookUrl"],
            "status": "Unhealthy",
            "enabled": True,
        }
    ]
    alerts = [json.loads(line) for line in result.stderr.splitlines() if '"alert"' in line]
    assert [a["alert"] for a in alerts] == ["spark_webhook_unhealthy"]
    assert webhook["webhookId"] in alerts[0]["event"]
    recorded = delivery_log_mark(database_url)
    assert recorded is not None
    assert (recorded["recovered"], recorded["recovered_total"]) == (10, 10)
    assert recorded["webhook_healthy"] is False
    status = cli(database_url, redis_url, "status", "--json")
    [line] = [c for c in json.loads(status.stdout)["checks"]
              if c["name"] == "last delivery-log check"]  # fmt: skip
    assert (line["level"], line["webhookHealthy"]) == ("act", False)
    assert status.returncode == 2

    # A worker with no Spark API (so no start-up backfill) stores what the check queued.
    start_worker(database_url, redis_url, concurrency=1)
    wait_for(lambda: stored_events(database_url) == created, 60, "the 10 recovered events")

    # Delivery back on: the next check finds nothing missing and counts nothing twice.
    sandbox.control.set_delivery(fail="off")
    again = cli(database_url, redis_url, "webhooks", "check-deliveries", "--json",
                **spark_env(sandbox))  # fmt: skip
    report = json.loads(again.stdout)
    assert (report["failed"], report["missing"], report["recovered"]) == (10, 0, 0)
    recorded = delivery_log_mark(database_url)
    assert recorded is not None
    assert recorded["recovered_total"] == 10


def test_it_runs_as_a_task_and_records_a_healthy_webhook(
    sandbox: SandboxHandle,
    database_url: str,
    redis_url: str,
    ingress_url: str,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    sandbox.register_webhook(ingress_url)
    created = {sandbox.sandbox.simulate_user_eligibility().event_id for _ in range(3)}
    sandbox.wait_for_deliveries(timeout=20)
    worker = start_worker(database_url, redis_url, concurrency=1, **spark_env(sandbox))
    wait_for(lambda: stored_events(database_url) == created, 60, "the delivered events")

    producer = Celery("test-producer", broker=redis_url, set_as_current=False)
    try:
        task_id = producer.send_task("webhooks.check_delivery_log", queue="spark").id
    finally:
        producer.close()

    worker.wait_for_log(f"webhooks.check_delivery_log[{task_id}] succeeded", 60)
    recorded = delivery_log_mark(database_url)
    assert recorded is not None
    assert recorded["webhook_healthy"] is True
    assert (recorded["notifications"], recorded["failed"], recorded["recovered"]) == (3, 0, 0)
    assert "spark_webhook_unhealthy" not in worker.log()
