"""GET /healthz: the process answers; it does not look at Redis."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from devstack.servers import free_port
from shared.config import Settings
from tests.ingress.conftest import make_settings


def test_it_answers_200_while_the_process_is_up(client: FlaskClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_it_answers_200_even_when_redis_is_unreachable(
    client_for: Callable[[Settings], FlaskClient],
) -> None:
    # Liveness must not fail on a Redis outage, or the orchestrator restarts healthy processes.
    nobody_listens = f"redis://127.0.0.1:{free_port()}/0"
    client = client_for(make_settings(nobody_listens))

    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_it_allows_only_get(client: FlaskClient, method: str) -> None:
    assert client.open("/healthz", method=method).status_code == 405
