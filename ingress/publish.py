"""Queue a verified webhook body as a Celery task message with a single Redis LPUSH.

Celery's `send_task` costs about 0.5 ms of CPU per message (routing, signals, the kombu
producer), which halves the ingress's request rate. This module writes the exact envelope
that `send_task` makes kombu's Redis transport put on the queue list, so a normal Celery
worker consumes it as an ordinary task. tests/ingress/test_publish.py compares the two for
the installed celery/kombu, so an upgrade that changes the format fails there, not in
production.

The message (Celery protocol 2, JSON serializer):
  queue     shared.queues.INGEST_QUEUE, task name shared.queues.INGEST_EVENT_TASK
  task id   a fresh uuid4 string (the worker uses it as the delivery id)
  args      []
  kwargs    {"body_b64": base64 of the raw body, "received_at": ISO-8601 UTC with
             microseconds, "source": "webhook"}
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import socket
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import redis
from redis.backoff import ConstantBackoff
from redis.retry import Retry

from shared.queues import INGEST_EVENT_TASK, INGEST_QUEUE

# A hung Redis (SIGSTOP, network partition) must turn into a 503 well inside Spark's own
# request timeout, not into a request that hangs a gunicorn thread.
SOCKET_TIMEOUT = 2.0
CONNECT_TIMEOUT = 1.0

_HOSTNAME = socket.gethostname()


class PublishError(RuntimeError):
    """The message may not be stored: the caller must not answer 2xx.

    After a timeout the outcome is unknown: a hung Redis that wakes up still executes the
    LPUSH waiting in its socket buffer. Spark then retries the 503 and the event is queued
    twice, which the worker's inbox absorbs like any other duplicate delivery.
    """


def ingest_kwargs(body: bytes, received_at: datetime) -> dict[str, str]:
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    return {
        "body_b64": base64.b64encode(body).decode("ascii"),
        "received_at": received_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "source": "webhook",
    }


def ingest_kwargsrepr(body: bytes, kwargs: dict[str, str]) -> str:
    """What Celery shows for the task's kwargs (events, flower, worker logs).

    Celery would put the first kilobyte of the base64 body here; webhook bodies may carry
    personal data, so only the size is shown.
    """
    shown = {**kwargs, "body_b64": f"<{len(body)} bytes>"}
    return repr(shown)


class MessageIds:
    """Random version 4 UUIDs for task ids and delivery tags, without a system call each.

    `uuid.uuid4()` reads the kernel's random source for every id, and each such call lets
    go of the GIL: on a busy gthread worker the thread then waits for its turn to run again
    (4 % of the worker's samples under load, more than building the message). These ids need
    to be unique, not secret, so a generator seeded from the kernel's source serves. A forked
    process must make its own (the Publisher does), or it repeats its parent's sequence.
    """

    def __init__(self) -> None:
        self._random = random.Random(os.urandom(32))  # noqa: S311 (unique, not secret)

    def new(self) -> str:
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))


class MessageTemplate:
    """The kombu Redis transport envelope that `send_task` would LPUSH, with named holes.

    The envelope is written once as a dict, dumped with placeholder strings, and turned into
    a format string: building a message is then one `str.format` instead of two `json.dumps`
    and a dict per request (about 20 µs of the ingress's CPU per webhook). Every value filled
    in is an ASCII string that needs no JSON escaping (uuids, base64, ISO timestamps, the
    kwargs repr below); the one that could, the origin's host name, is escaped here.
    """

    def __init__(self, *, reply_to: str, origin: str, queue: str = INGEST_QUEUE) -> None:
        hole = "<<{}>>".format
        task_body = [
            [],
            {"body_b64": hole("body_b64"), "received_at": hole("received_at"),
             "source": "webhook"},
            # What Celery puts in the task body after args and kwargs.
            {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
        ]  # fmt: skip
        headers: dict[str, Any] = {
            "lang": "py",
            "task": INGEST_EVENT_TASK,
            "id": hole("task_id"),
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": hole("task_id"),
            "parent_id": None,
            "argsrepr": "()",
            "kwargsrepr": hole("kwargsrepr"),
            "origin": hole("origin"),
            "ignore_result": None,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
        }
        envelope = {
            "body": hole("task_body"),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": {
                "correlation_id": hole("task_id"),
                "reply_to": hole("reply_to"),
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": queue},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": hole("delivery_tag"),
            },
        }
        fixed = {"origin": origin, "reply_to": reply_to}
        self._task_body = self._format_string(task_body, {})
        self._envelope = self._format_string(envelope, fixed)

    @staticmethod
    def _format_string(document: Any, fixed: dict[str, str]) -> str:
        """`document` as JSON, its holes turned into format fields or filled from `fixed`."""
        text = json.dumps(document).replace("{", "{{").replace("}", "}}")

        def field(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in fixed:
                return json.dumps(fixed[name])[1:-1].replace("{", "{{").replace("}", "}}")
            return "{" + name + "}"

        return re.sub(r"<<(\w+)>>", field, text)

    def render(self, body: bytes, received_at: datetime, task_id: str, delivery_tag: str) -> bytes:
        kwargs = ingest_kwargs(body, received_at)
        task_body = self._task_body.format(**kwargs).encode("ascii")
        return self._envelope.format(
            task_body=base64.b64encode(task_body).decode("ascii"),
            task_id=task_id,
            kwargsrepr=ingest_kwargsrepr(body, kwargs),
            delivery_tag=delivery_tag,
        ).encode("ascii")


class Publisher:
    """Puts ingest task messages on Redis; one instance per process, shared by its threads.

    Each thread keeps one connection from the shared pool for as long as it lives (gunicorn's
    threads live as long as their worker). Borrowing per call costs about 50 µs of CPU (a
    lock, a liveness read on the socket, bookkeeping): twice the LPUSH itself.
    """

    def __init__(self, redis_url: str, *, queue: str = INGEST_QUEUE) -> None:
        self._queue = queue
        self._pool = redis.ConnectionPool.from_url(
            redis_url,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            # One quick retry covers a pooled connection that Redis closed (restart, idle
            # timeout). Timeouts are not retried: a hung Redis would only double the wait.
            retry=Retry(ConstantBackoff(0.05), 1, supported_errors=(redis.ConnectionError,)),
        )
        self._local = threading.local()
        # Celery sets reply_to to an id per app and thread; nothing replies to ingest tasks.
        self._reply_to = str(uuid.uuid4())
        self._pid = 0
        self._ids = MessageIds()
        self._template: MessageTemplate | None = None

    def publish_ingest(self, body: bytes, received_at: datetime) -> str:
        """Queue `body` exactly as received; return the task id. Raises PublishError."""
        template, ids = self._for_this_process()
        task_id = ids.new()
        message = template.render(body, received_at, task_id, ids.new())
        try:
            # kombu's Redis transport keeps priority 0 messages in the list named after the
            # queue, and its consumers BRPOP from the other end.
            self._client().lpush(self._queue, message)
        except redis.RedisError as exc:
            raise PublishError(f"Redis did not take the message: {type(exc).__name__}") from exc
        return task_id

    def _for_this_process(self) -> tuple[MessageTemplate, MessageIds]:
        # A publisher made before gunicorn forks (--preload) must not tag every worker's
        # messages as its own: the origin is Celery's anonymous node name, which holds the
        # pid, and each process needs ids of its own.
        pid = os.getpid()
        if self._template is None or self._pid != pid:
            self._template = MessageTemplate(
                reply_to=self._reply_to, origin=f"gen{pid}@{_HOSTNAME}", queue=self._queue
            )
            self._ids = MessageIds()
            self._pid = pid
        return self._template, self._ids

    def ping(self) -> bool:
        try:
            return bool(self._client().ping())
        except redis.RedisError:
            return False

    def _client(self) -> redis.Redis:
        client: redis.Redis | None = getattr(self._local, "client", None)
        if client is None:
            # Connects now, so it raises while Redis is down; nothing is kept until it works.
            client = redis.Redis(connection_pool=self._pool, single_connection_client=True)
            self._local.client = client
        return client

    def close(self) -> None:
        self._pool.disconnect()
