"""The Celery application the processes run: `celery -A worker.app worker` and `... beat`.

The one module that builds the app from the environment, at import: only Celery's command
line imports it. Domain modules declare their tasks with `celery.shared_task` and take what
they share from `worker.celery_app`; the worker imports them through `include`.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import signals

from shared.config import load_settings
from shared.queues import SPARK_QUEUE
from worker import task_logging  # noqa: F401  (the worker and beat log through shared.logging)
from worker.celery_app import create_app
from worker.ops import signals as _ops_signals  # noqa: F401 (connects the operations hooks)

log = logging.getLogger(__name__)

app = create_app(load_settings())


@signals.worker_ready.connect
def _backfill_on_start(sender: Any = None, **_: Any) -> None:
    # Events Spark gave up on while no worker ran are recovered right away, not in 15 minutes.
    try:
        app.send_task("events.backfill_events", queue=SPARK_QUEUE)
    except Exception:
        log.exception("could not enqueue the start-up backfill; beat will run it")


@signals.worker_process_shutdown.connect
def _close_pools(**_: Any) -> None:
    from shared.db import close_pools

    close_pools()
