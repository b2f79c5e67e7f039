"""LPC events through the whole path: sandbox → ingress → worker → PostgreSQL → sandbox,
stored and acknowledged once whether delivered twice or fetched only by the backfill."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from tests.fixtures.sandbox import SandboxHandle, spark_env
from tests.fixtures.services import IngressServer, WorkerProcess
from tests.waiting import wait_for
from tests.worker.cli import run, run_json

pytestmark = pytest.mark.slow


def count(database_url: str, sql: str, *params: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(sql.encode(), params or None).fetchone()
    assert row is not None
    return int(row[0])


def test_it_stores_and_acknowledges_an_event_delivered_twice_and_one_only_backfilled_once(
    sandbox: SandboxHandle,
    database_url: str,
    redis_url: str,
    start_ingress: Callable[..., IngressServer],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    ingress = start_ingress(redis_url, secret="e2e-secret")
    start_worker(database_url, redis_url, **spark_env(sandbox))
    sandbox.register_webhook(
        ingress.webhook_url,
        secret="e2e-secret",
        notification_types=("ResourceLPCRequested", "LocationLPCRequested"),
    )
    sandbox.control.set_delivery(duplicate=True)

    resources = [
        {"resource": {"locationId": f"loc-{n}", "resourceId": f"r-{n}", "meterPointId": "7070"}}
        for n in range(3)
    ]
    answer = sandbox.api("POST", "/simulation/events/lpc/resources", json={"resources": resources})
    assert answer.status_code == 200, answer.text
    resource_event = answer.json()["simulatedEvent"]["id"]
    sandbox.wait_for_deliveries(timeout=10)
    webhook_deliveries = "SELECT count(*) FROM event_deliveries WHERE source = 'webhook'"
    wait_for(lambda: count(database_url, webhook_deliveries) == 2, 30, "2 deliveries")
    assert [a["statusCode"] for a in sandbox.control.deliveries()] == [202, 202]

    sandbox.control.set_delivery(duplicate=False, drop=True)
    location = {"location": {"locationId": "loc-9", "meterPointId": "7079"}}
    answer = sandbox.api("POST", "/simulation/events/lpc/locations", json={"locations": [location]})
    location_event = answer.json()["simulatedEvent"]["id"]
    sandbox.wait_for_deliveries(timeout=10)
    backfill = run(database_url, "events", "backfill", REDIS_URL=redis_url, **spark_env(sandbox))
    assert backfill.exit_code == 0, backfill.output
    wait_for(lambda: count(database_url, "SELECT count(*) FROM lpc_events") == 2, 30, "2 stored")

    listed = {item["eventId"]: item for item in run_json(database_url, "lpc", "list")}
    assert set(listed) == {resource_event, location_event}
    assert listed[resource_event]["targets"] == 3
    assert listed[location_event]["kind"] == "location"
    assert count(database_url, "SELECT count(*) FROM lpc_targets") == 4
    # Four two-hour caps per target, made by the sandbox when the request gives no points.
    assert count(database_url, "SELECT count(*) FROM lpc_caps") == 16
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT first_source FROM events WHERE event_id = %s", (location_event,)
        ).fetchone()
    assert row == ("poll",)

    # Our registry knows none of these targets: nothing to ask the control system, each
    # acknowledgement declines every target, once.
    def acknowledged(event_id: str) -> Callable[[], bool]:
        sql = (
            "SELECT count(*) FROM reports"
            " WHERE kind = 'lpc_ack' AND event_id = %s AND status = 'sent'"
        )
        return lambda: count(database_url, sql, event_id) == 1

    for event_id in (resource_event, location_event):
        wait_for(acknowledged(event_id), 60, f"{event_id} acknowledged")
        [report] = sandbox.sandbox.reports.reports(event_id)
        [payload] = report.body["payloads"]
        assert payload["acknowledgedTargets"] == []
        attempts = (
            "SELECT count(*) FROM report_attempts t JOIN reports r ON r.id = t.report_id"
            " WHERE r.kind = 'lpc_ack' AND r.event_id = %s"
        )
        assert count(database_url, attempts, event_id) == 1
    assert count(database_url, "SELECT count(*) FROM lpc_dispatches") == 0
