"""Slow and vanishing clients: the ingress's header and body timeouts, and bodies cut short.

The long scenario (50 slow clients against the real ingress while normal webhooks flow) is
tests/faults/test_slow_clients.py; these are the quick checks of its parts.
"""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import gevent
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder

from ingress import gunicorn_conf
from ingress.body_timeout import BodyTimeout
from shared.config import Settings
from shared.queues import INGEST_QUEUE
from tests.ingress.conftest import ROOT, IngressServer, make_settings, signed_headers, spark_body
from tests.waiting import wait_for

PATH = "/webhooks/spark"


def test_it_runs_the_ingress_on_gevent_with_a_header_timeout() -> None:
    # gthread gave a thread to each connection until its request was in; greenlets are cheap.
    assert gunicorn_conf.worker_class == "gevent"
    # gunicorn's gevent worker reads headers under a keepalive-second timer, and under none
    # at all when keep-alive is off.
    assert 0 < gunicorn_conf.keepalive <= 10
    assert gunicorn_conf.worker_connections >= 1000


def test_it_imports_no_psycopg_into_the_monkey_patched_ingress() -> None:
    # What gunicorn's gevent worker does before it loads the app: patch, then import.
    script = (
        "from gevent import monkey; monkey.patch_all()\n"
        "import sys, ingress.wsgi\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'worker')))\n"
    )
    environ = {"SPARK_WEBHOOK_SECRETS": "s", "REDIS_URL": "redis://127.0.0.1:1/0", "PATH": ""}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "[]"


class Trickle(io.RawIOBase):
    """A request body that arrives a byte at a time, `every` seconds apart (gevent sleeps)."""

    def __init__(self, body: bytes, every: float) -> None:
        self.body = body
        self.every = every
        self.sent = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        gevent.sleep(self.every)
        self.sent += 1
        return self.body[self.sent - 1 : self.sent]


def call_in_greenlet(app: Flask, body: bytes, stream: io.RawIOBase | io.BytesIO) -> str:
    """The app's status line for a webhook whose body comes from `stream`, called from a
    greenlet as gunicorn's gevent worker calls it."""
    environ = EnvironBuilder(
        path=PATH, method="POST", headers=list(signed_headers(body).items())
    ).get_environ()
    environ["wsgi.input"] = stream
    environ["CONTENT_LENGTH"] = str(len(body))
    statuses: list[str] = []

    def start_response(status: str, headers: object, exc_info: object = None) -> None:
        statuses.append(status)

    def run() -> None:
        b"".join(app(environ, start_response))  # type: ignore[arg-type]

    gevent.spawn(run).get(timeout=30)
    return statuses[0]


@pytest.mark.parametrize("every", [0.05, 5.0], ids=["byte-by-byte", "stalled"])
def test_it_answers_408_when_the_body_misses_its_deadline(
    client_for: Callable[[Settings], FlaskClient],
    redis_url: str,
    app_redis: redis.Redis,
    every: float,
) -> None:
    app = client_for(make_settings(redis_url)).application
    assert isinstance(app.wsgi_app, BodyTimeout)
    app.wsgi_app.seconds = 0.5
    body = spark_body()
    started = time.monotonic()

    status = call_in_greenlet(app, body, Trickle(body, every))

    # Cut off at the deadline whether bytes trickle in or none come at all.
    assert status.startswith("408 ")
    assert time.monotonic() - started < 2.5
    assert app_redis.llen(INGEST_QUEUE) == 0


def test_it_takes_a_body_that_arrives_within_the_deadline(
    client_for: Callable[[Settings], FlaskClient], redis_url: str, app_redis: redis.Redis
) -> None:
    app = client_for(make_settings(redis_url)).application
    body = spark_body()

    assert call_in_greenlet(app, body, io.BytesIO(body)) == "202 ACCEPTED"
    assert app_redis.llen(INGEST_QUEUE) == 1


@pytest.mark.slow
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_it_never_queues_a_body_cut_short(served: IngressServer, framing: str) -> None:
    # gunicorn hands the app what it has when the connection closes before Content-Length
    # bytes, as if complete; the ingress must see it is not.
    body = spark_body()
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in signed_headers(body).items())
    ).encode("ascii")
    half = body[: len(body) // 2]
    if framing == "chunked":
        request = head + b"Transfer-Encoding: chunked\r\n\r\n" + f"{len(body):x}\r\n".encode()
    else:
        request = head + f"Content-Length: {len(body)}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(request + half)
        sock.shutdown(socket.SHUT_WR)
        answer = sock.recv(65536)

    assert answer.startswith(b"HTTP/1.1 400 ")
    wait_for(lambda: b"request body cut short" in served.log.read_bytes(), 10, "the log line")
    assert served.redis.llen(INGEST_QUEUE) == 0
    assert b"signature" not in served.log.read_bytes()
