"""POST /webhooks/spark: verify the signature over the raw bytes, queue them, answer."""

from __future__ import annotations

import contextlib
import http.client
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import redis
from flask.testing import FlaskClient

from devstack.servers import RedisServer
from ingress.app import create_app
from ingress.queueing import SOCKET_TIMEOUT
from shared.config import MAX_WEBHOOK_BYTES, ConfigError, Settings, load_settings
from shared.queues import INGEST_EVENT_TASK, INGEST_QUEUE
from shared.signing import SIGNATURE_HEADER, sign
from tests.ingress.conftest import (
    SECRET,
    IngressServer,
    make_settings,
    queued,
    queued_bodies,
    signed_headers,
    spark_body,
)

PATH = "/webhooks/spark"
ClientFor = Callable[[Settings], FlaskClient]


def post(client: FlaskClient, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    response = client.post(PATH, data=body, headers=headers)
    return response.status_code, response.get_data()


# --- accepted -----------------------------------------------------------------------------


def test_it_queues_exactly_the_bytes_received_with_the_receipt_time(
    client: FlaskClient, app_redis: redis.Redis
) -> None:
    body = spark_body()
    before = datetime.now(UTC)
    response = client.post(PATH, data=body, headers=signed_headers(body))
    after = datetime.now(UTC)

    assert response.status_code == 202
    assert response.get_json() == {"status": "queued"}
    (message,) = queued(app_redis)
    assert message["args"] == []
    assert message["kwargs"]["source"] == "webhook"
    assert queued_bodies(app_redis) == [body]
    received_at = message["kwargs"]["received_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", received_at)
    assert before <= datetime.fromisoformat(received_at) <= after
    headers = message["envelope"]["headers"]
    assert headers["task"] == INGEST_EVENT_TASK
    assert uuid.UUID(headers["id"]).version == 4
    assert message["envelope"]["properties"]["delivery_info"]["routing_key"] == INGEST_QUEUE


def test_it_accepts_the_reference_test_vector(
    redis_url: str, app_redis: redis.Redis, client_for: ClientFor
) -> None:
    # Reliability notes §(c) 14, cross-checked there with openssl.
    client = client_for(
        make_settings(redis_url, {"SPARK_WEBHOOK_SECRETS": "test-secret-please-rotate"})
    )
    body = b'{"eventId":"evt_1","amount":12.5}'

    status, _ = post(
        client, body, {SIGNATURE_HEADER: "codzPBXRu9SW7tCW4GEhbAIPkoPqNFbLX9zIPwOEdEo="}
    )

    assert status == 202
    assert queued_bodies(app_redis) == [body]


def test_it_does_not_parse_the_body(client: FlaskClient, app_redis: redis.Redis) -> None:
    # Parsing is the worker's job: neither garbage nor a RecursionError bomb can hurt the ingress.
    not_json = b"\xff\xfe not json at all"
    nested = b"[" * 100_000 + b"]" * 100_000
    form = b"eventId=evt_1&amount=12.5"
    form_headers = {**signed_headers(form), "Content-Type": "application/x-www-form-urlencoded"}

    assert post(client, not_json, signed_headers(not_json))[0] == 202
    assert post(client, nested, signed_headers(nested))[0] == 202
    assert post(client, form, form_headers)[0] == 202
    assert queued_bodies(app_redis) == [not_json, nested, form]


def test_it_accepts_a_body_signed_with_any_configured_secret(
    redis_url: str, app_redis: redis.Redis, client_for: ClientFor
) -> None:
    old, new, stranger = b"secret-before-rotation", b"secret-after-rotation", b"someone-else"
    client = client_for(
        make_settings(redis_url, {"SPARK_WEBHOOK_SECRETS": f"{new.decode()},{old.decode()}"})
    )
    body = spark_body()

    statuses = [post(client, body, signed_headers(body, key))[0] for key in (old, new, stranger)]

    assert statuses == [202, 202, 401]
    assert queued_bodies(app_redis) == [body, body]


@pytest.mark.slow
def test_it_accepts_20_identical_deliveries_at_once(served: IngressServer) -> None:
    # Spark retries and replays: every copy is queued, the worker's inbox dedupes.
    body = spark_body()
    headers = signed_headers(body)
    start = threading.Barrier(20)

    def deliver(_: int) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
        try:
            start.wait(10)
            connection.request("POST", PATH, body=body, headers=headers)
            return connection.getresponse().status
        finally:
            connection.close()

    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(deliver, range(20)))

    assert statuses == [202] * 20
    assert queued_bodies(served.redis) == [body] * 20
    assert len({m["envelope"]["headers"]["id"] for m in queued(served.redis)}) == 20


# --- rejected: signature --------------------------------------------------------------------


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "not base64 at all!",
        sign(SECRET, b"another body"),
        sign(b"wrong-secret", spark_body()),
        sign(SECRET, spark_body()).swapcase(),
        sign(SECRET, spark_body()).rstrip("="),
        sign(SECRET, spark_body())[:-4] + "AAA=",
        "sha256=" + sign(SECRET, spark_body()),
    ],
    ids=[
        "missing", "empty", "not-base64", "other-body", "wrong-secret", "swapped-case",
        "unpadded", "altered", "prefixed",
    ],
)  # fmt: skip
def test_it_rejects_a_bad_signature_and_queues_nothing(
    client: FlaskClient, app_redis: redis.Redis, signature: str | None
) -> None:
    headers = {} if signature is None else {SIGNATURE_HEADER: signature}

    status, body = post(client, spark_body(), headers)

    assert status == 401
    assert body == b'{"error":"invalid signature"}'
    assert app_redis.llen(INGEST_QUEUE) == 0


def test_it_rejects_a_tampered_body(client: FlaskClient, app_redis: redis.Redis) -> None:
    body = spark_body()
    tampered = body.replace(b"Bj\xc3\xb8rn", b"Bjorn")
    compact, spaced = b'{"eventId":"evt_1","amount":12.5}', b'{"eventId": "evt_1", "amount": 12.5}'

    assert post(client, tampered, signed_headers(body))[0] == 401
    assert post(client, body + b" ", signed_headers(body))[0] == 401
    assert post(client, spaced, signed_headers(compact))[0] == 401
    assert app_redis.llen(INGEST_QUEUE) == 0


@pytest.mark.slow
def test_it_rejects_a_non_ascii_signature_header(served: IngressServer) -> None:
    # http.client refuses to send such a header, so speak HTTP over a raw socket.
    body = spark_body()
    signature = sign(SECRET, body).encode("ascii")
    request = (
        b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
        b"X-Payload-Signature: \xe9" + signature + b"\r\n\r\n" + body
    )
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(request)
        response = b""
        while chunk := sock.recv(65536):
            response += chunk

    assert response.startswith(b"HTTP/1.1 401 ")
    assert served.redis.llen(INGEST_QUEUE) == 0


# --- rejected: size -------------------------------------------------------------------------


def test_it_accepts_a_body_of_exactly_the_limit(
    client: FlaskClient, app_redis: redis.Redis
) -> None:
    body = b" " * MAX_WEBHOOK_BYTES

    assert post(client, body, signed_headers(body))[0] == 202
    assert queued_bodies(app_redis) == [body]


@pytest.mark.parametrize("size", [MAX_WEBHOOK_BYTES + 1, 2 * MAX_WEBHOOK_BYTES])
def test_it_rejects_a_body_over_the_limit(
    client: FlaskClient, app_redis: redis.Redis, size: int
) -> None:
    body = b" " * size

    status, response = post(client, body, signed_headers(body))

    assert status == 413
    assert response == b'{"error":"payload too large"}'
    assert app_redis.llen(INGEST_QUEUE) == 0


def post_chunked(port: int, body: bytes) -> int:
    """POST `body` with Transfer-Encoding: chunked (no Content-Length), as 64 KiB chunks."""
    chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        # The server answers an oversized body without reading the rest of it and may close
        # the connection while chunks are still going out: its answer is read all the same.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.request("POST", PATH, body=chunks, headers=signed_headers(body))
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("size", "expected"),
    [(MAX_WEBHOOK_BYTES, 202), (MAX_WEBHOOK_BYTES + 1, 413), (3 * MAX_WEBHOOK_BYTES, 413)],
)
def test_it_applies_the_limit_to_chunked_bodies(
    served: IngressServer, size: int, expected: int
) -> None:
    # Werkzeug truncates a chunked body at MAX_CONTENT_LENGTH without raising (reliability
    # notes row 16): a correctly signed oversized body must get 413, not a truncated 401.
    body = b"x" * size

    assert post_chunked(served.port, body) == expected
    assert queued_bodies(served.redis) == ([body] if expected == 202 else [])


# --- rejected: method -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"])
def test_it_allows_only_post(client: FlaskClient, method: str) -> None:
    response = client.open(PATH, method=method)

    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]


# --- Redis failures -------------------------------------------------------------------------


@pytest.fixture
def private_client(private_redis: RedisServer, client_for: ClientFor) -> FlaskClient:
    return client_for(make_settings(private_redis.url))


@pytest.mark.slow
def test_it_answers_503_while_redis_is_down_and_recovers(
    private_redis: RedisServer, private_client: FlaskClient
) -> None:
    body = spark_body()
    assert post(private_client, body, signed_headers(body))[0] == 202  # a connection to break

    private_redis.kill()
    started = time.monotonic()
    status, response = post(private_client, body, signed_headers(body))
    elapsed = time.monotonic() - started

    assert status == 503
    assert response == b'{"error":"queue unavailable"}'
    assert elapsed < 2
    # Same port and data directory: the AOF shows what the dead server had accepted.
    restarted = RedisServer(
        directory=private_redis.directory, port=private_redis.port, appendonly=True
    ).start()
    try:
        with redis.Redis.from_url(restarted.url) as storage:
            assert storage.llen(INGEST_QUEUE) == 1
            assert post(private_client, body, signed_headers(body))[0] == 202
            assert storage.llen(INGEST_QUEUE) == 2
    finally:
        restarted.stop()


@pytest.mark.slow
def test_it_answers_503_within_the_socket_timeout_while_redis_hangs(
    private_redis: RedisServer, private_client: FlaskClient
) -> None:
    body = spark_body()
    assert post(private_client, body, signed_headers(body))[0] == 202

    private_redis.pause()
    try:
        started = time.monotonic()
        status, _ = post(private_client, body, signed_headers(body))
        elapsed = time.monotonic() - started
    finally:
        private_redis.resume()

    assert status == 503
    assert SOCKET_TIMEOUT <= elapsed < SOCKET_TIMEOUT + 1.5
    assert post(private_client, body, signed_headers(body))[0] == 202


@pytest.mark.slow
def test_it_answers_503_when_redis_is_out_of_memory(
    private_redis: RedisServer, private_client: FlaskClient
) -> None:
    body = spark_body()
    with redis.Redis.from_url(private_redis.url) as storage:
        storage.config_set("maxmemory", 1)  # with noeviction every write now fails with OOM

        assert post(private_client, body, signed_headers(body))[0] == 503
        assert storage.llen(INGEST_QUEUE) == 0
        storage.config_set("maxmemory", 0)
        assert post(private_client, body, signed_headers(body))[0] == 202


# --- configuration and logging ----------------------------------------------------------------


def test_it_refuses_to_start_without_a_secret(redis_url: str) -> None:
    settings = load_settings({"REDIS_URL": redis_url})

    with pytest.raises(ConfigError, match="SPARK_WEBHOOK_SECRETS"):
        create_app(settings)


def test_it_accepts_unsigned_bodies_only_when_told_to_and_warns(
    redis_url: str,
    app_redis: redis.Redis,
    client_for: ClientFor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = load_settings({"REDIS_URL": redis_url, "SPARK_WEBHOOK_ALLOW_UNSIGNED": "1"})
    with caplog.at_level(logging.WARNING, logger="ingress"):
        client = client_for(settings)
    body = spark_body()

    status, _ = post(client, body, {})

    assert status == 202
    assert queued_bodies(app_redis) == [body]
    assert any(
        record.levelno == logging.WARNING and "UNSIGNED" in record.getMessage()
        for record in caplog.records
    )


def test_it_still_requires_signatures_when_secrets_exist_despite_allow_unsigned(
    redis_url: str, app_redis: redis.Redis, client_for: ClientFor
) -> None:
    client = client_for(make_settings(redis_url, {"SPARK_WEBHOOK_ALLOW_UNSIGNED": "1"}))
    body = spark_body()

    statuses = [post(client, body, {})[0], post(client, body, signed_headers(body))[0]]

    assert statuses == [401, 202]


def test_it_never_logs_the_body_the_signature_or_the_secret(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    marker = "personal-data-7f3a"
    body = spark_body(event_id=marker)
    signature = sign(SECRET, body)
    caplog.set_level(logging.DEBUG)

    post(client, body, {SIGNATURE_HEADER: signature})
    post(client, body + b"!", {SIGNATURE_HEADER: signature})
    post(client, body, {SIGNATURE_HEADER: signature.swapcase()})

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "queued as task" in logged
    assert "invalid signature" in logged
    for secret_or_data in (marker, signature, signature.swapcase(), SECRET.decode()):
        assert secret_or_data not in logged
