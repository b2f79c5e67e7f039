"""The `users.sync_registry` task (run by beat every five minutes) on a real worker."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from celery import Celery

from shared.queues import SPARK_QUEUE
from tests.fixtures.sandbox import SandboxHandle, spark_env
from tests.fixtures.services import WorkerProcess
from tests.users.helpers import (
    api_requests,
    assert_requests_match_spec,
    calls,
    cli_json,
    rows,
    user_document,
    write_json,
)
from worker.schedule import USERS_SYNC_EVERY_SECONDS, beat_schedule

pytestmark = pytest.mark.slow


def test_it_pushes_what_is_unsynced_and_then_has_nothing_to_do(
    sandbox: SandboxHandle,
    database_url: str,
    redis_url: str,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    users = [user_document("u-1", vehicles=("car",)), user_document("u-2")]
    cli_json(database_url, "users", "import", str(write_json(tmp_path / "u.json", users)),
             "--no-sync")  # fmt: skip
    worker = start_worker(database_url, redis_url, concurrency=1, **spark_env(sandbox))
    producer = Celery("test-sender", broker=redis_url, set_as_current=False)

    def sync() -> str:
        task_id = str(uuid.uuid4())
        producer.send_task("users.sync_registry", queue=SPARK_QUEUE, task_id=task_id)
        return f"users.sync_registry[{task_id}] succeeded"

    try:
        worker.wait_for_log(sync())
        pushed = [c for c in calls(api_requests(sandbox)) if c[1].startswith("/users")]
        assert pushed == [
            ("POST", "/users/batch"),
            ("POST", "/users/locations/batch"),
            ("POST", "/users/u-1/vehicles"),
        ]
        assert_requests_match_spec(api_requests(sandbox))
        assert rows(database_url, "SELECT count(*) AS n FROM users WHERE synced_at IS NULL") == [
            {"n": 0}
        ]
        sandbox.control.clear_requests()

        worker.wait_for_log(sync())
        # (The worker's start-up /events backfill is no business of this test.)
        assert [c for c in calls(api_requests(sandbox)) if c[1] != "/events"] == []
    finally:
        producer.close()


def test_it_is_on_the_beat_schedule_every_five_minutes() -> None:
    entry = beat_schedule()["sync-users-registry"]

    assert entry["task"] == "users.sync_registry"
    assert entry["schedule"].run_every.total_seconds() == USERS_SYNC_EVERY_SECONDS == 300
    assert entry["options"]["queue"] == SPARK_QUEUE
