"""Celery's side of shared/logging.py: the worker and beat log through it, and every line a
task logs carries the task's id and name.

Connecting `setup_logging` tells Celery to leave logging to us (it then configures nothing of
its own); `--loglevel` still decides the level. Importing this module is the wiring.
"""

from __future__ import annotations

import sys
from typing import Any

from celery import signals

from shared import logging as logs


def _process_name() -> str:
    # `celery -A worker.app beat` and `... worker`: the subcommand names the process.
    for name in ("beat", "worker"):
        if name in sys.argv[1:]:
            return name
    return "celery"


@signals.setup_logging.connect
def _setup_logging(loglevel: int | str | None = None, **_: Any) -> None:
    logs.configure_logging(_process_name(), level=loglevel or "INFO")


@signals.task_prerun.connect
def _bind_task(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    # A pool process runs one task after another: nothing bound by the last one stays.
    logs.clear()
    logs.bind(task_id=task_id, task_name=getattr(task, "name", None))


@signals.task_postrun.connect
def _unbind_task(**_: Any) -> None:
    logs.clear()
