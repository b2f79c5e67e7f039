"""Fixtures for the ingress tests.

Each test queues into its own empty Redis database, from the session's Redis fixture
(`redis_url`, tests/fixtures/services.py): the machine's Redis or TEST_REDIS_URL when one
answers, a private one otherwise.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from devstack.servers import RedisServer, free_port, port_open
from ingress.app import create_app
from ingress.queueing import TaskQueue
from shared.config import Settings, load_settings
from shared.queues import INGEST_QUEUE
from shared.signing import SIGNATURE_HEADER, sign

ROOT = Path(__file__).resolve().parents[2]
SECRET = b"ingress-test-secret"


def make_settings(url: str, environ: dict[str, str] | None = None) -> Settings:
    """Settings from a dict, never from our own environment."""
    return load_settings(
        {"REDIS_URL": url, "SPARK_WEBHOOK_SECRETS": SECRET.decode(), **(environ or {})}
    )


def signed_headers(body: bytes, secret: bytes = SECRET) -> dict[str, str]:
    return {SIGNATURE_HEADER: sign(secret, body), "Content-Type": "application/json"}


def spark_body(event_id: str = "ca05399b-c2d6-4dd6-b278-40a7e2061d42") -> bytes:
    """A Spark notification in wire format, trailing newline included (it is signed too)."""
    return (
        '{"notificationId":"b6a6bd4a-6d37-4c74-95d1-4eb7f27a9bdd","eventId":"' + event_id + '",'
        '"eventCreatedAtUtc":"2000-01-01T00:00:00+00:00",'
        '"notificationSentUtc":"2000-01-01T00:00:00+00:00",'
        '"notificationType":"UserEligibilityUpdated","payload":{'
        '"lastUpdated":"2000-01-01T00:00:00+00:00","addedUsers":["Bjørn"],'
        '"removedUsers":[],"payloadType":"UserEligibility"}}\n'
    ).encode("utf-8")


def queued(client: redis.Redis) -> list[dict[str, Any]]:
    """The ingest messages in the queue, oldest first, with their task body decoded."""
    messages = []
    for raw in reversed(client.lrange(INGEST_QUEUE, 0, -1)):
        envelope = json.loads(raw)
        args, kwargs, embed = json.loads(base64.b64decode(envelope["body"]))
        messages.append({"envelope": envelope, "args": args, "kwargs": kwargs, "embed": embed})
    return messages


def queued_bodies(client: redis.Redis) -> list[bytes]:
    return [base64.b64decode(m["kwargs"]["body_b64"]) for m in queued(client)]


@pytest.fixture
def app_redis(redis_url: str) -> Iterator[redis.Redis]:
    """The test's Redis database, where the in-process app queues."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def client_for() -> Iterator[Callable[[Settings], FlaskClient]]:
    """Test clients for apps built from other settings; their Celery apps close at teardown."""
    queues: list[TaskQueue] = []

    def build(settings: Settings) -> FlaskClient:
        queues.append(TaskQueue(settings.redis_url))
        return create_app(settings, queues[-1]).test_client()

    yield build
    for queue in queues:
        queue.close()


@pytest.fixture
def client(redis_url: str, client_for: Callable[[Settings], FlaskClient]) -> FlaskClient:
    return client_for(make_settings(redis_url))


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of our own, to kill, pause or starve; AOF on so a restart shows the data."""
    server = RedisServer(directory=tmp_path / "redis", appendonly=True).start()
    yield server
    server.stop()


def readyz(port: int) -> bool:
    """Whether a worker of the ingress at `port` answers GET /readyz with 200."""
    if not port_open("127.0.0.1", port, timeout=0.2):
        return False
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/readyz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@dataclass
class IngressServer:
    port: int
    redis: redis.Redis
    log: Path


@pytest.fixture
def served(redis_url: str, tmp_path: Path) -> Iterator[IngressServer]:
    """The real thing: gunicorn with ingress/gunicorn_conf.py serving ingress.wsgi:app."""
    port = free_port()
    log = tmp_path / "gunicorn.log"
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SPARK_", "REDIS_", "DATABASE_", "PORT"))
    }
    environ.update(
        PORT=str(port),
        REDIS_URL=redis_url,
        SPARK_WEBHOOK_SECRETS=SECRET.decode(),
        PYTHONPATH=str(ROOT),
    )
    args = [
        sys.executable, "-m", "gunicorn", "-c", str(ROOT / "ingress" / "gunicorn_conf.py"),
        "--bind", f"127.0.0.1:{port}", "ingress.wsgi:app",
    ]  # fmt: skip
    with log.open("wb") as log_file:
        process = subprocess.Popen(args, cwd=ROOT, env=environ, stdout=log_file, stderr=log_file)
    try:
        # The arbiter listens at once, but a request waits until a worker has imported the
        # app (seconds on a loaded machine): ready means /readyz answers.
        deadline = time.monotonic() + 30
        while not readyz(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start:\n" + log.read_text()[-3000:])
            time.sleep(0.05)
        client = redis.Redis.from_url(redis_url)
        yield IngressServer(port=port, redis=client, log=log)
        client.close()
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
