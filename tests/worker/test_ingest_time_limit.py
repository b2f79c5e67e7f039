"""An ingest cut off by its soft time limit is delivered again, not acknowledged away.

A hung PostgreSQL (tests/faults/test_postgres_hung.py) leaves an ingest waiting inside a
query until Celery's soft time limit raises `SoftTimeLimitExceeded` wherever the task is: an
error of our infrastructure, like a refused connection, so the delivery must be retried.
"""

from __future__ import annotations

import base64
import importlib
from datetime import UTC, datetime

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from shared.config import Settings, load_settings
from shared.queues import INGEST_EVENT_TASK
from worker.celery_app import TASK_MODULES, create_app

app = create_app(load_settings({}), current=False)
for module in TASK_MODULES:
    importlib.import_module(module)


class SecondRun(Exception):
    """Raised by the second run: it stops the test's retries there."""


def test_it_runs_an_ingest_again_after_its_soft_time_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs: list[int] = []

    def cut_off() -> Settings:
        runs.append(len(runs) + 1)
        if len(runs) == 1:
            raise SoftTimeLimitExceeded
        raise SecondRun

    monkeypatch.setattr("worker.events.tasks.current_settings", cut_off)
    task = app.tasks[INGEST_EVENT_TASK]
    # Eager: a retry runs again at once, in this process.
    result = task.apply(
        kwargs={
            "body_b64": base64.b64encode(b"{}").decode(),
            "received_at": datetime.now(UTC).isoformat(),
        }
    )

    assert runs == [1, 2]
    assert isinstance(result.result, SecondRun)
