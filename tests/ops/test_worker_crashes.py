"""A worker that stops on an unrecoverable error is counted (ops mark `worker_crash`, exported
as spark_partner_worker_crashes_total) and, under the Procfile's supervisor, started again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.fixtures.services import REPO, worker_env
from tests.waiting import wait_for
from worker.ops.marks import WORKER_CRASH

pytestmark = pytest.mark.slow


def crash_mark(database_url: str) -> dict[str, Any] | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT detail FROM ops_marks WHERE name = %s", [WORKER_CRASH]
        ).fetchone()
    return None if row is None else dict(row[0])


def test_it_counts_each_crash_of_a_worker_that_its_supervisor_starts_again(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    log_path = tmp_path / "worker.log"
    env = worker_env(
        database_url, redis_url, CRASH_COUNT_FILE=str(tmp_path / "crashes"), CRASHES="2"
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "devstack.supervise", "--min-delay", "0.1", "--",
                sys.executable, "-m", "celery", "-A", "tests.ops.crashing_worker", "worker",
                "--pool", "solo", "--without-mingle", "--without-gossip", "--loglevel", "INFO",
                "-n", "crashing@%h",
            ],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(lambda: "ready." in log_path.read_text(), 60, "the third start to be ready")
    finally:
        # As honcho stops it: SIGTERM to the group. A warm shutdown is no crash.
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    output = log_path.read_text()

    assert output.count("Unrecoverable error: AttributeError") == 2
    assert output.count("exited with status 1") == 2
    assert output.count("ALERT: worker crashing@") == 2
    recorded = crash_mark(database_url)
    assert recorded is not None
    assert recorded["total"] == 2
    assert recorded["hostname"].startswith("crashing@")
    assert "has no attribute 'hostname'" in recorded["error"]
    assert process.returncode == 0
