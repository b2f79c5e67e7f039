"""Fixtures of the price-curve tests: the partner's control system stand-in, and Spark's
sandbox → signed webhook → the real ingress → Redis → a real worker → PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from werkzeug.serving import make_server

from ingress.app import create_app
from ingress.publish import Publisher
from shared.config import load_settings
from tests.curves.control import control
from tests.fixtures.sandbox import WEBHOOK_SECRET, SandboxHandle
from tests.fixtures.services import WorkerProcess

__all__ = ["control", "ingress_url", "pipeline", "spark_env"]


def spark_env(sandbox: SandboxHandle) -> dict[str, str]:
    return {
        "SPARK_API_URL": sandbox.base_url,
        "SPARK_TOKEN_URL": sandbox.token_url,
        "SPARK_CLIENT_ID": sandbox.client_id,
        "SPARK_CLIENT_SECRET": sandbox.client_secret,
    }


@pytest.fixture
def ingress_url(redis_url: str) -> Iterator[str]:
    """The real ingress app on a free loopback port, queueing onto the test's Redis."""
    settings = load_settings({"REDIS_URL": redis_url, "SPARK_WEBHOOK_SECRETS": WEBHOOK_SECRET})
    publisher = Publisher(redis_url)
    server = make_server("127.0.0.1", 0, create_app(settings, publisher), threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}/webhooks/spark"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
        publisher.close()


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
