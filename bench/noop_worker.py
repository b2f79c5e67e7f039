"""The baseline of bench.processing: the worker's own Celery app (worker.celery_app, the same
settings: acks late, prefetch 1, events on, the same transport options) with one more task
that does nothing. Run as `celery -A bench.noop_worker worker -Q ingest`."""

from __future__ import annotations

from typing import Any

from shared.config import load_settings
from shared.queues import INGEST_QUEUE
from worker.celery_app import RELIABLE_TASK_OPTIONS, create_app

NOOP_TASK = "bench.noop"

app = create_app(load_settings())


# Celery ships no type information (worker.* has the same exception in pyproject.toml).
@app.task(name=NOOP_TASK, queue=INGEST_QUEUE, **RELIABLE_TASK_OPTIONS)  # type: ignore[untyped-decorator]
def noop(**_: Any) -> None:
    """Takes the ingest task's arguments and does nothing with them."""
