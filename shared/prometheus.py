"""prometheus_client's multiprocess mode for the ingress (gunicorn) and the worker (prefork).

Every process writes its metrics to files in PROMETHEUS_MULTIPROC_DIR and whoever serves
/metrics sums them. prometheus_client reads that variable when it is first imported, so the
parent calls `prepare_multiprocess_dir` before it forks and before anything imports
prometheus_client.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir(prefix: str) -> Path:
    """The directory for this run's metric files: PROMETHEUS_MULTIPROC_DIR emptied of an
    earlier run's files, or a fresh temporary one (removed at exit) put in the environment."""
    directory = _directory(prefix)
    # The `celery` command imports its plugins (Flower among them, which imports
    # prometheus_client) before the worker app: choose the value class again, now that the
    # directory is set, so that metrics made from here on write to files.
    if "prometheus_client.values" in sys.modules:
        from prometheus_client import values

        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return directory


def _directory(prefix: str) -> Path:
    configured = os.environ.get(MULTIPROC_ENV)
    if configured:
        directory = Path(configured)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        return directory
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ[MULTIPROC_ENV] = str(directory)
    owner = os.getpid()

    def remove() -> None:
        # Forked children inherit this handler; only the parent that made it removes it.
        if os.getpid() == owner:
            shutil.rmtree(directory, ignore_errors=True)

    atexit.register(remove)
    return directory


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))
