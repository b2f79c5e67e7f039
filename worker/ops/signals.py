"""Celery signal hooks for operations: the `sent_at` header the queue ages are read from, the
per-task metrics (worker.ops.task_metrics), and the count of worker crashes
(worker.ops.crashes). Connected by importing this module from worker/app.py."""

from __future__ import annotations

import sys
import time
from typing import Any

from celery import signals

from worker.ops.queues import SENT_AT_HEADER


@signals.before_task_publish.connect
def _stamp_sent_at(headers: dict[str, Any] | None = None, **_: Any) -> None:
    # The message's own time, so `status` and the metrics can tell how long the oldest
    # message of a queue has waited. Read by worker/ops/queues.py.
    if headers is not None:
        headers.setdefault(SENT_AT_HEADER, time.time())


@signals.worker_init.connect
def _start_metrics(sender: Any = None, **_: Any) -> None:
    from worker.ops import task_metrics

    task_metrics.start_worker_metrics(sender)


@signals.task_prerun.connect
def _task_started(task_id: str | None = None, **_: Any) -> None:
    from worker.ops import task_metrics

    task_metrics.task_started(task_id)


@signals.task_postrun.connect
def _task_finished(
    task_id: str | None = None,
    task: Any = None,
    kwargs: dict[str, Any] | None = None,
    state: str | None = None,
    **_: Any,
) -> None:
    from worker.ops import task_metrics

    task_metrics.task_finished(task_id, getattr(task, "name", "unknown"), kwargs or {}, state)


@signals.worker_shutdown.connect
def _count_crash(sender: Any = None, **_: Any) -> None:
    # Celery's WorkController.start catches an error it cannot recover from, logs
    # "Unrecoverable error" and stops the worker from inside its `except Exception` block, so
    # the error is the one being handled here. A warm or cold shutdown (SystemExit, a signal)
    # is no crash.
    error = sys.exc_info()[1]
    if not isinstance(error, Exception):
        return
    from worker.celery_app import current_settings
    from worker.ops import crashes

    hostname = str(getattr(sender, "hostname", None) or "unknown")
    crashes.record_crash(current_settings().database_url, hostname, error)
