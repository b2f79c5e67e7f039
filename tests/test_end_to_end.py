"""The whole path: Spark (the sandbox) → ingress → Redis → worker → PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests

from shared.signing import SIGNATURE_HEADER, sign
from tests.fixtures.sandbox import SandboxHandle
from tests.fixtures.services import IngressServer, WorkerProcess
from tests.waiting import drained, wait_for
from tests.worker.events import body, notification

pytestmark = pytest.mark.slow


def rows(database_url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql).fetchall()


def test_it_stores_every_event_the_sandbox_delivers_once_even_when_delivered_twice(
    sandbox: SandboxHandle,
    database_url: str,
    redis_url: str,
    start_ingress: Callable[..., IngressServer],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    ingress = start_ingress(redis_url, secret="e2e-secret")
    start_worker(database_url, redis_url)
    sandbox.register_webhook(ingress.webhook_url, secret="e2e-secret")
    sandbox.control.set_delivery(duplicate=True)

    created = {sandbox.sandbox.simulate_user_eligibility().event_id for _ in range(3)}
    created.add(sandbox.sandbox.simulate_price_curve().event_id)
    sandbox.wait_for_deliveries(timeout=10)

    wait_for(
        lambda: len(rows(database_url, "SELECT 1 FROM event_deliveries")) == 8, 30, "8 deliveries"
    )
    stored = rows(database_url, "SELECT event_id, first_source FROM events")
    assert {event_id for event_id, _ in stored} == created
    assert {source for _, source in stored} == {"webhook"}
    assert [a["statusCode"] for a in sandbox.control.deliveries()] == [202] * 8


def test_it_stores_twenty_concurrent_posts_of_one_event_once_and_refuses_bad_signatures(
    database_url: str,
    redis_url: str,
    start_ingress: Callable[..., IngressServer],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    ingress = start_ingress(redis_url, secret="e2e-secret")
    start_worker(database_url, redis_url)
    raw = body(notification())
    good = {SIGNATURE_HEADER: sign(b"e2e-secret", raw), "Content-Type": "application/json"}
    bad = {SIGNATURE_HEADER: sign(b"someone-else", raw), "Content-Type": "application/json"}

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(
            pool.map(
                lambda _: (
                    requests.post(
                        ingress.webhook_url, data=raw, headers=good, timeout=10
                    ).status_code
                ),
                range(20),
            )
        )
    refused = requests.post(ingress.webhook_url, data=raw[:-1] + b" ", headers=good, timeout=10)
    unsigned = requests.post(ingress.webhook_url, data=raw, headers=bad, timeout=10)

    assert statuses == [202] * 20
    assert refused.status_code == unsigned.status_code == 401
    wait_for(
        lambda: len(rows(database_url, "SELECT 1 FROM event_deliveries")) == 20, 30, "20 deliveries"
    )
    # Nothing is left queued or held by the worker: no copy can still be stored.
    wait_for(drained(redis_url), 30, "the ingest queue drained")
    assert len(rows(database_url, "SELECT 1 FROM events")) == 1
    assert len(rows(database_url, "SELECT 1 FROM event_deliveries")) == 20
