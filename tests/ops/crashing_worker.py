"""`celery -A tests.ops.crashing_worker worker`: the project's worker app, made to stop on an
error Celery cannot recover from while it starts, as many times as CRASHES says (counted in
the file CRASH_COUNT_FILE), then to start normally.

The error is the one kombu's Redis transport raises when it closes a channel whose connection
is already gone (after Redis was killed under load), which reaches the same place in Celery:
WorkController.start, "Unrecoverable error".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from celery import bootsteps

from worker.app import app


# Celery ships no types: its bootstep base class is Any to mypy.
class Crash(bootsteps.StartStopStep):  # type: ignore[misc]
    def start(self, parent: Any) -> None:
        counter = Path(os.environ["CRASH_COUNT_FILE"])
        crashed = int(counter.read_text()) if counter.exists() else 0
        if crashed < int(os.environ.get("CRASHES", "1")):
            counter.write_text(str(crashed + 1))
            raise AttributeError("'NoneType' object has no attribute 'hostname'")


app.steps["worker"].add(Crash)

__all__ = ["app"]
