"""GET /readyz: 200 while Redis answers, 503 while it does not."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from devstack.servers import RedisServer, free_port
from ingress.queueing import SOCKET_TIMEOUT
from shared.config import Settings
from tests.ingress.conftest import make_settings

ClientFor = Callable[[Settings], FlaskClient]


def test_it_answers_200_when_redis_answers(client: FlaskClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ready"}


def test_it_answers_503_when_nothing_listens(client_for: ClientFor) -> None:
    client = client_for(make_settings(f"redis://127.0.0.1:{free_port()}/0"))

    started = time.monotonic()
    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.get_json() == {"status": "redis unreachable"}
    assert time.monotonic() - started < 1


@pytest.mark.slow
def test_it_follows_redis_going_down_and_coming_back(
    private_redis: RedisServer, client_for: ClientFor
) -> None:
    client = client_for(make_settings(private_redis.url))
    assert client.get("/readyz").status_code == 200

    private_redis.pause()
    try:
        started = time.monotonic()
        status = client.get("/readyz").status_code
        elapsed = time.monotonic() - started
    finally:
        private_redis.resume()

    assert status == 503
    assert elapsed < SOCKET_TIMEOUT + 1.5
    assert client.get("/readyz").status_code == 200
    private_redis.kill()
    assert client.get("/readyz").status_code == 503


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_it_allows_only_get(client: FlaskClient, method: str) -> None:
    assert client.open("/readyz", method=method).status_code == 405
