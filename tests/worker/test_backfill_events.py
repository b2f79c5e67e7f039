"""The /events backfill: what Spark could not deliver is fetched and stored, once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable

import psycopg
import pytest

from devstack.servers import free_port
from tests.fixtures.sandbox import SandboxHandle, spark_env
from tests.fixtures.services import REPO, WorkerProcess, worker_env

pytestmark = pytest.mark.slow


def cli(
    database_url: str, redis_url: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", "--env-file", "/nonexistent", *args],
        env=worker_env(database_url, redis_url, **env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def stored(database_url: str) -> dict[str, str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT event_id, first_source FROM events").fetchall()
    return dict(rows)


def wait_for_events(database_url: str, count: int, timeout: float = 30) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = stored(database_url)
        if len(events) >= count:
            return events
        time.sleep(0.2)
    raise AssertionError(f"expected {count} events, have {stored(database_url)}")


def test_it_recovers_events_spark_gave_up_delivering(
    sandbox: SandboxHandle,
    database_url: str,
    redis_url: str,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    # The ingress is down: nothing listens on the registered URL, every attempt fails.
    sandbox.register_webhook(f"http://127.0.0.1:{free_port()}/webhooks/spark")
    created = [sandbox.sandbox.simulate_user_eligibility().event_id for _ in range(3)]
    created.append(sandbox.sandbox.simulate_price_curve().event_id)
    sandbox.wait_for_deliveries(timeout=10)
    attempts = sandbox.control.deliveries()
    assert len(attempts) == 4 * 4  # first try plus Spark's 3 retries, for each event
    assert not any(a["succeeded"] for a in attempts)
    assert {a["statusCode"] for a in attempts} == {None}  # connection refused

    worker = start_worker(database_url, redis_url, concurrency=1, **spark_env(sandbox))
    # The worker backfills as soon as it starts.
    events = wait_for_events(database_url, 4)
    assert set(events) == set(created)
    assert set(events.values()) == {"poll"}
    worker.wait_for_log("backfill enqueued 4 missing event(s)")

    # A later run finds nothing new and stops after the first page.
    result = cli(database_url, redis_url, "events", "backfill", "--json", **spark_env(sandbox))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["enqueued"] == 0
    assert report["pages"] == 1
    assert len(stored(database_url)) == 4


@pytest.mark.faults
def test_it_pages_past_known_events_until_a_page_is_all_known(
    sandbox: SandboxHandle,
    database_url: str,
    redis_url: str,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    start_worker(database_url, redis_url, concurrency=1)  # no Spark: the start-up backfill skips
    older = [sandbox.sandbox.simulate_user_eligibility().event_id for _ in range(1500)]
    result = cli(database_url, redis_url, "events", "backfill", "--json", **spark_env(sandbox))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"pages": 2, "seen": 1500, "enqueued": 1500, "error": None}
    # 1500 tasks on one process: each also sends its task events (Flower), a few ms more; on a
    # loaded 2-core machine the whole run has taken just over 120 s.
    wait_for_events(database_url, 1500, timeout=300)

    newer = [sandbox.sandbox.simulate_user_eligibility().event_id for _ in range(3)]
    again = cli(database_url, redis_url, "events", "backfill", "--json", **spark_env(sandbox))
    report = json.loads(again.stdout)
    assert report["enqueued"] == 3
    assert report["pages"] == 2  # the first page had new events, the second was all known
    assert set(wait_for_events(database_url, 1503)) == set(older) | set(newer)


def test_it_reports_an_unreachable_spark_and_exits_non_zero(
    database_url: str, redis_url: str
) -> None:
    result = cli(
        database_url,
        redis_url,
        "events",
        "backfill",
        SPARK_API_URL=f"http://127.0.0.1:{free_port()}/energy-coordination/v1",
        SPARK_TOKEN_URL=f"http://127.0.0.1:{free_port()}/connect/token",
        SPARK_CLIENT_ID="x",
        SPARK_CLIENT_SECRET="y",
    )
    assert result.returncode == 1
    assert "error=" in result.stdout
