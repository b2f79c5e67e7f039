"""Fixtures for the ingress tests.

Each test queues into its own empty Redis database, from the session's Redis fixture
(`redis_url`, tests/fixtures/services.py): the machine's Redis or TEST_REDIS_URL when one
answers, a private one otherwise.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from devstack.ingress import GunicornIngress, answers_readyz
from devstack.servers import RedisServer
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


@dataclass
class IngressServer:
    port: int
    redis: redis.Redis
    log: Path


@contextmanager
def gunicorn_served(redis_url: str, log_path: Path) -> Iterator[IngressServer]:
    """The real thing: gunicorn with ingress/gunicorn_conf.py serving ingress.wsgi:app
    (devstack/ingress.py), with a client of the Redis database it queues on."""
    # The arbiter listens at once, but a request waits until a worker has imported the app
    # (seconds on a loaded machine): ready means /readyz answers.
    ingress = GunicornIngress(redis_url, SECRET.decode(), log_path, ready=answers_readyz)
    with ingress, redis.Redis.from_url(redis_url) as client:
        yield IngressServer(port=ingress.port, redis=client, log=log_path)


@pytest.fixture
def served(redis_url: str, tmp_path: Path) -> Iterator[IngressServer]:
    with gunicorn_served(redis_url, tmp_path / "gunicorn.log") as server:
        yield server
