from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis
from celery import Celery

from shared.db import Connection
from tests.curves.support import curve_event, curve_payload, local_hours, points, store, targets
from tests.fixtures.sandbox import SandboxHandle, spark_env
from tests.fixtures.services import REPO, WorkerProcess, worker_env
from tests.ops.support import checks, levels, status
from tests.waiting import wait_for
from tests.worker.cli import run
from worker.events.inbox import ingest
from worker.ops.beat import BEAT_HEARTBEAT_KEY
from worker.ops.marks import DELIVERY_LOG_CHECK, mark

OSLO = ZoneInfo("Europe/Oslo")


@pytest.fixture
def start_beat(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(database_url: str, redis_url: str, **extra: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"beat-{len(started)}.log").open("wb")
        beat = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "worker.app", "beat",
                "-S", "worker.ops.beat.HeartbeatScheduler", "--loglevel", "INFO",
            ],
            env=worker_env(database_url, redis_url, **extra),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        started.append(beat)
        return beat

    yield start
    for beat in started:
        if beat.poll() is None:
            beat.send_signal(signal.SIGTERM)
            beat.wait(20)


@pytest.mark.slow
def test_it_is_ok_on_a_healthy_stack_and_acts_on_a_stopped_worker_and_a_stopped_beat(
    database_url: str,
    redis_url: str,
    sandbox: SandboxHandle,
    start_worker: Callable[..., WorkerProcess],
    start_beat: Callable[..., subprocess.Popen[bytes]],
) -> None:
    env = spark_env(sandbox)
    worker = start_worker(database_url, redis_url, **env)
    beat = start_beat(database_url, redis_url, **env)
    client = redis.Redis.from_url(redis_url)
    wait_for(lambda: client.exists(BEAT_HEARTBEAT_KEY) == 1, 30, "beat's first tick")
    # The worker's start-up backfill against the sandbox.
    wait_for(lambda: status(database_url, redis_url)[0] == 0, 30, "status all ok")

    code, report = status(database_url, redis_url)
    assert code == 0, report
    assert report["level"] == "ok"
    assert len(checks(report)["workers"]["workers"]) == 1
    assert checks(report)["last backfill"]["ageSeconds"] < 60

    worker.stop()
    code, report = status(database_url, redis_url)
    assert code == 2
    assert checks(report)["workers"] == {
        "name": "workers", "level": "act", "summary": "no worker answers ping", "workers": [],
    }  # fmt: skip

    beat.send_signal(signal.SIGTERM)
    beat.wait(20)
    # Three missed ticks (45 s) make beat silent: within the minute the issue asks for.
    wait_for(lambda: levels(status(database_url, redis_url)[1])["beat"] == "act", 60, "beat act")


def test_it_acts_on_a_dead_letter_a_failed_plan_and_a_report_near_its_deadline(
    database_url: str, redis_url: str, db: Connection, worker_app: Celery
) -> None:
    now = datetime.now(UTC)
    # Nothing wrong in the ledgers yet; the missing worker and beat are the only act lines.
    code, report = status(database_url, redis_url)
    assert code == 2
    assert {name for name, level in levels(report).items() if level == "act"} == {
        "workers", "beat",
    }  # fmt: skip

    ingest(
        db,
        delivery_id="d1",
        raw=b"{broken",
        received_at=now,
        source="webhook",
        settings=worker_app.conf.spark_settings,
        sender=worker_app,
    )
    tomorrow = now.astimezone(OSLO).date() + timedelta(days=1)
    event = curve_event(
        curve_payload(points(local_hours(tomorrow), [0.1] * 24), targets(3)), created_at=now
    )
    store(db, event)
    db.execute(
        "UPDATE curve_dispatches SET status = 'failed' WHERE event_id = %s AND resource_id = %s",
        (event["eventId"], targets(1)[0][0]),
    )
    # Last month's report, still due, with a grace that puts its deadline 3 hours from now.
    this_month = now.astimezone(OSLO).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    grace = now + timedelta(hours=3) - this_month
    db.execute(
        "INSERT INTO reports (event_id, month, first_period_start, last_period_end, status,"
        " created_at, updated_at)"
        " VALUES (%s, %s, %s, %s, 'due', now(), now())",
        # A day into the month, so that it ends in the same month in Oslo and in UTC.
        (
            event["eventId"],
            last_month.date(),
            last_month + timedelta(days=1),
            last_month + timedelta(days=1, hours=1),
        ),
    )
    db.commit()

    code, report = status(
        database_url, redis_url, SPARK_REPORT_GRACE=f"{int(grace.total_seconds())}"
    )
    assert code == 2
    found = checks(report)
    assert found["dead letters"]["level"] == "act"
    assert found["dead letters"]["open"] == 1
    assert found["dispatch plans failed"]["level"] == "act"
    assert found["dispatch plans failed"]["failed"] == 1
    month = found[f"reports {last_month:%Y-%m} Europe/Oslo"]
    assert month["level"] == "act"
    assert month["due"] == 1
    assert 2.9 * 3600 < month["secondsToAim"] <= 3 * 3600
    assert found["tomorrow's curve"]["level"] == "ok"
    assert found["tomorrow's curve"]["areas"] == ["NO1"]
    assert found["events (24 h)"]["byStatus"] == {"received": 1}

    mark(db, DELIVERY_LOG_CHECK, detail={"webhook_healthy": False, "recovered": 0})
    db.commit()
    assert levels(status(database_url, redis_url)[1])["last delivery-log check"] == "act"

    text = run(database_url, "status", REDIS_URL=redis_url)
    assert text.exit_code == 2
    assert any(
        line.startswith("act") and "dead letters" in line for line in text.output.splitlines()
    )


def test_it_reports_an_unreachable_database_as_act(redis_url: str) -> None:
    code, report = status("postgresql://nobody@127.0.0.1:1/none", redis_url)
    assert code == 2
    assert levels(report)["database reachable"] == "act"
    assert "queue ingest" in levels(report)
