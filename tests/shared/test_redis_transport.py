"""kombu's Redis transport with one redis-py client per channel, on the session's Redis."""

from __future__ import annotations

import uuid
from typing import Any

from kombu.connection import Connection

from ingress.queueing import create_celery
from shared.config import load_settings
from shared.redis_transport import TRANSPORT, Channel, transport_for
from worker.celery_app import create_app


def connect(redis_url: str) -> Any:
    return Connection(redis_url, transport=TRANSPORT)  # type: ignore[no-untyped-call]


def test_it_publishes_and_consumes_through_one_client_per_channel(redis_url: str) -> None:
    queue = f"test-transport-{uuid.uuid4().hex}"
    with connect(redis_url) as connection:
        channel = connection.default_channel
        assert isinstance(channel, Channel)
        producer = connection.Producer(channel)
        for n in range(3):
            producer.publish({"n": n}, routing_key=queue)
        client = channel._create_client()

        producer.publish({"n": 3}, routing_key=queue)

        assert channel._create_client() is client
        simple = connection.SimpleQueue(queue)
        received = []
        for _ in range(4):
            message = simple.get(timeout=5)
            received.append(message.payload["n"])
            message.ack()
        simple.close()
        assert received == [0, 1, 2, 3]
        channel.client.delete(queue)


def test_it_builds_a_new_client_once_kombu_drops_the_channels_pools(redis_url: str) -> None:
    queue = f"test-transport-{uuid.uuid4().hex}"
    with connect(redis_url) as connection:
        channel = connection.default_channel
        before = channel._create_client()

        # What kombu does to a channel whose connection broke.
        channel._disconnect_pools()
        after = channel._create_client()

        assert after is not before
        assert after.connection_pool is channel.pool
        connection.Producer(channel).publish({"n": 1}, routing_key=queue)
        assert channel.client.llen(queue) == 1
        channel.client.delete(queue)


def test_it_keeps_a_separate_client_for_the_blocking_side(redis_url: str) -> None:
    with connect(redis_url) as connection:
        channel = connection.default_channel

        blocking = channel._create_client(asynchronous=True)

        assert blocking.connection_pool is channel.async_pool
        assert blocking is not channel._create_client()


def test_it_is_the_transport_of_both_apps_for_plain_redis_urls(redis_url: str) -> None:
    ingress = create_celery(redis_url)
    worker = create_app(load_settings({"REDIS_URL": redis_url}), current=False)
    for app in (ingress, worker):
        try:
            with app.connection_for_write() as connection:
                assert isinstance(connection.default_channel, Channel)
        finally:
            app.close()
    assert transport_for("redis://127.0.0.1:6379/0") == TRANSPORT


def test_it_leaves_tls_urls_to_kombus_own_transport() -> None:
    # kombu sets TLS up from the rediss scheme only when it picks the transport itself.
    assert transport_for("rediss://redis.example:6380/0") is None
