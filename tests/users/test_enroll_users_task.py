"""The `users.enroll_users` task on a real worker: SPARK_AUTO_ENROLL decides who is enrolled."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
    execute,
    rows,
    user_document,
    write_json,
)

pytestmark = pytest.mark.slow


@dataclass
class Setup:
    """A registry pushed to the sandbox, a worker to start, tasks to send."""

    sandbox: SandboxHandle
    database_url: str
    redis_url: str
    start: Callable[..., WorkerProcess]
    tmp_path: Path
    producer: Celery

    def registry(self, user_ids: list[str]) -> None:
        path = write_json(self.tmp_path / "users.json", [user_document(u) for u in user_ids])
        cli_json(self.database_url, "users", "import", str(path), sandbox=self.sandbox)

    def worker(self, concurrency: int = 1, **env: str) -> WorkerProcess:
        extra = spark_env(self.sandbox, **env)
        return self.start(self.database_url, self.redis_url, concurrency=concurrency, **extra)

    def enroll(self, user_ids: list[str]) -> str:
        """Send the task; its log line on success is returned."""
        task_id = str(uuid.uuid4())
        self.producer.send_task(
            "users.enroll_users", kwargs={"user_ids": user_ids}, queue=SPARK_QUEUE, task_id=task_id
        )
        return f"users.enroll_users[{task_id}] succeeded"


@pytest.fixture
def setup(
    sandbox: SandboxHandle,
    database_url: str,
    redis_url: str,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> Iterator[Setup]:
    producer = Celery("test-sender", broker=redis_url, set_as_current=False)
    yield Setup(sandbox, database_url, redis_url, start_worker, tmp_path, producer)
    producer.close()


def enrolled(database_url: str) -> list[str]:
    found = rows(database_url, "SELECT user_id FROM users WHERE enrolled ORDER BY user_id")
    return [row["user_id"] for row in found]


def wait_for_enrolled(database_url: str, expected: list[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if enrolled(database_url) == expected:
            return
        time.sleep(0.1)
    raise AssertionError(f"enrolled: {enrolled(database_url)}, expected {expected}")


def enrollment_calls(sandbox: SandboxHandle) -> list[tuple[str, str]]:
    return [c for c in calls(api_requests(sandbox)) if c[1].endswith("/enrollment")]


def test_it_enrolls_only_eligible_consenting_users_under_consented(setup: Setup) -> None:
    users = ["both", "eligible-only", "consenting-only", "leaving", "enrolled-already"]
    setup.registry(users)
    execute(
        setup.database_url,
        "UPDATE users SET eligible = user_id <> 'consenting-only',"
        " consented = user_id <> 'eligible-only',"
        " delete_after_month = CASE WHEN user_id = 'leaving' THEN date '2026-10-01' END,"
        " enrolled = user_id = 'enrolled-already'",
    )
    setup.sandbox.control.clear_requests()
    worker = setup.worker(SPARK_AUTO_ENROLL="consented")

    done = setup.enroll(users)

    worker.wait_for_log(done)
    assert enrolled(setup.database_url) == ["both", "enrolled-already"]
    assert enrollment_calls(setup.sandbox) == [("POST", "/users/both/enrollment")]
    assert_requests_match_spec(api_requests(setup.sandbox))


def test_it_splits_a_long_list_and_enrolls_everyone(setup: Setup) -> None:
    users = [f"user-{n:03d}" for n in range(450)]
    setup.registry(users)
    execute(setup.database_url, "UPDATE users SET eligible = true, consented = true")
    setup.worker(concurrency=2, SPARK_AUTO_ENROLL="consented")

    setup.enroll(users)

    wait_for_enrolled(setup.database_url, users, timeout=60)
    ids = rows(setup.database_url, "SELECT count(DISTINCT enrollment_id) AS n FROM users")
    assert ids == [{"n": 450}]


def test_it_enrolls_nobody_when_auto_enrollment_is_off(setup: Setup) -> None:
    setup.registry(["both"])
    execute(setup.database_url, "UPDATE users SET eligible = true, consented = true")
    worker = setup.worker()

    done = setup.enroll(["both"])

    worker.wait_for_log(done)
    assert enrolled(setup.database_url) == []
    assert enrollment_calls(setup.sandbox) == []
