"""Fixtures of the price-curve tests: the partner's control system stand-in, and Spark's
sandbox → signed webhook → the real ingress → Redis → a real worker → PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.curves.control import control
from tests.fixtures.sandbox import SandboxHandle, spark_env
from tests.fixtures.services import WorkerProcess

__all__ = ["control", "pipeline", "spark_env"]


@pytest.fixture
def pipeline(
    sandbox: SandboxHandle,
    ingress_url: str,
    database_url: str,
    redis_url: str,
    start_worker: Callable[..., WorkerProcess],
) -> Callable[..., WorkerProcess]:
    """Spark's price curves reach the ingress; call it (with worker settings) to start the
    worker, which also reaches the sandbox's API."""
    sandbox.register_webhook(ingress_url, notification_types=("PriceCurveCreated",))

    def start(concurrency: int = 2, **env: str) -> WorkerProcess:
        return start_worker(
            database_url, redis_url, concurrency=concurrency, **spark_env(sandbox), **env
        )

    return start
