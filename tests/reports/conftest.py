"""Fixtures of the reports tests: a worker talking to the sandbox, and a way to send it tasks."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.fixtures.sandbox import SandboxHandle
from tests.fixtures.services import WorkerProcess
from tests.reports.support import Tasks, spark_env


@pytest.fixture
def tasks(redis_url: str) -> Iterator[Tasks]:
    client = Tasks(redis_url)
    yield client
    client.close()


@pytest.fixture
def spark_worker(
    sandbox: SandboxHandle,
    database_url: str,
    redis_url: str,
    start_worker: Callable[..., WorkerProcess],
) -> Callable[..., WorkerProcess]:
    """Call (with a concurrency) to start a real worker whose Spark is the sandbox."""

    def start(concurrency: int = 1) -> WorkerProcess:
        return start_worker(database_url, redis_url, concurrency=concurrency, **spark_env(sandbox))

    return start
