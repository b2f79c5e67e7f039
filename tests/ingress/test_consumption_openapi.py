"""The consumption endpoints' OpenAPI document: valid, served as shipped, and true to the real
answers of every kind (each checked with openapi-core against real traffic)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

from devstack.servers import free_port
from ingress.consumption import MAX_CONSUMPTION_BYTES, OPENAPI_PATH, openapi_document
from tests.fixtures.services import IngressServer, WorkerProcess
from tests.reports.support import HOUR, reading, wait_until

T0 = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
TOKEN = "a-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def spec() -> OpenAPI:
    # from_dict checks the document itself against the OpenAPI 3.0 schema first.
    return OpenAPI.from_dict(json.loads(openapi_document()))


def check(openapi: OpenAPI, answer: requests.Response, *, request_valid: bool = True) -> None:
    """The answer is one the document describes for its request; and the request one that it
    allows, when the request was meant to be valid."""
    request = RequestsOpenAPIRequest(answer.request)
    if request_valid:
        openapi.validate_request(request)
    openapi.validate_response(request, RequestsOpenAPIResponse(answer))


def post(ingress: IngressServer, body: Any, headers: dict[str, str] | None = None) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(
        f"{ingress.url}/consumption",
        data=data,
        headers={"Content-Type": "application/json", **(AUTH if headers is None else headers)},
        timeout=30,
    )


def get(ingress: IngressServer, path: str, headers: dict[str, str] | None = None) -> Any:
    return requests.get(f"{ingress.url}{path}", headers=AUTH if headers is None else headers,
                        timeout=10)  # fmt: skip


def test_it_serves_the_document_it_ships(
    redis_url: str, start_ingress: Callable[..., IngressServer]
) -> None:
    ingress = start_ingress(redis_url, CONSUMPTION_API_TOKENS=TOKEN)

    served = requests.get(f"{ingress.url}{OPENAPI_PATH}", timeout=10)

    assert served.status_code == 200
    assert served.headers["Content-Type"] == "application/json"
    assert served.content == openapi_document()
    check(spec(), served)


@pytest.mark.slow
def test_it_answers_as_the_document_says(
    database_url: str,
    redis_url: str,
    start_ingress: Callable[..., IngressServer],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    openapi = spec()
    ingress = start_ingress(redis_url, CONSUMPTION_API_TOKENS=TOKEN)
    down = start_ingress(f"redis://127.0.0.1:{free_port()}/0", CONSUMPTION_API_TOKENS=TOKEN)
    good = reading("ev-1", T0, T0 + HOUR, 7.5, location_id="home", reading_id="s-1")
    spelled = {**reading("ev-2", T0, T0 + HOUR, 0), "kWh": " 1.5e0 "}

    accepted = post(ingress, {"readings": [good, spelled]})
    batch = f"/consumption/batches/{accepted.json()['batchId']}"
    queued = get(ingress, batch)
    start_worker(database_url, redis_url, concurrency=1)
    stored = wait_until(
        lambda: (a := get(ingress, batch)).json()["status"] == "stored" and a,
        30,
        "the batch to be stored",
    )
    valid = [
        accepted,
        queued,
        stored,
        get(ingress, "/consumption/batches/never-given"),
        post(down, {"readings": [good]}),
        get(down, batch),
    ]
    refused = [
        post(ingress, {"readings": [good, {**good, "end": good["start"], "colour": "red"}]}),
        post(ingress, b"{readings"),
        post(ingress, {"readings": []}),
        post(ingress, {"readings": [good]}, headers={}),
        get(ingress, batch, headers={"Authorization": "Bearer guess"}),
        post(ingress, b'{"readings": [' + b" " * MAX_CONSUMPTION_BYTES + b"]}"),
    ]

    assert [a.status_code for a in valid] == [202, 200, 200, 404, 503, 503]
    assert [a.status_code for a in refused] == [400, 400, 400, 401, 401, 413]
    assert stored.json()["inserted"] == 2
    for answer in valid:
        check(openapi, answer)
    for answer in refused:
        check(openapi, answer, request_valid=False)
