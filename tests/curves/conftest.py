"""Fixtures of the price-curve tests: the partner's control system stand-in, and Spark's
sandbox → signed webhook → the real ingress → Redis → a real worker → PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.curves.control import control
from tests.fixtures.sandbox import WEBHOOK_SECRET, SandboxHandle
from tests.fixtures.services import IngressServer, WorkerProcess

__all__ = ["control", "ingress_url", "pipeline", "spark_env"]


def spark_env(sandbox: SandboxHandle) -> dict[str, str]:
    return {
        "SPARK_API_URL": sandbox.base_url,
        "SPARK_TOKEN_URL": sandbox.token_url,
        "SPARK_CLIENT_ID": sandbox.client_id,
        "SPARK_CLIENT_SECRET": sandbox.client_secret,
    }


@pytest.fixture
def ingress_url(redis_url: str, start_ingress: Callable[..., IngressServer]) -> str:
    """The real ingress app on a free loopback port, queueing onto the test's Redis."""
    return start_ingress(redis_url, secret=WEBHOOK_SECRET).webhook_url


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
