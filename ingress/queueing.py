"""The ingress's one Celery app: it publishes the worker's ingest tasks and never runs any.

Publishing goes through Celery's own `send_task`, so `task_routes`, the
`before_task_publish` / `after_task_publish` signals (which tracing and error reporting hook
into) and the message format are Celery's. Nothing here imports `worker/`: the task names
and queues are the ones both sides agree on in `shared/queues.py`.

A caller gets a task id only once Redis holds the message; otherwise `QueueUnavailable`, and
the ingress must not answer 2xx. After a timeout the outcome is unknown (a hung Redis that
wakes up still runs the write waiting in its socket buffer): Spark then retries the 503 and
the event is queued twice, which the worker's inbox absorbs like any duplicate delivery.
"""

from __future__ import annotations

from typing import Any

import redis
from celery import Celery
from kombu.exceptions import KombuError

from shared.queues import INGEST_QUEUE
from shared.redis_transport import transport_for

# A hung Redis (SIGSTOP, network partition) must turn into a 503 well inside Spark's own
# request timeout, not into a request that hangs a gunicorn thread.
SOCKET_TIMEOUT = 2.0
CONNECT_TIMEOUT = 1.0


class QueueUnavailable(RuntimeError):
    """Redis did not take the message (or may not have): the caller must not answer 2xx."""


def _no_retry_after_a_timeout(exc: BaseException, interval: float) -> None:
    """kombu's errback before each reconnection: a refused or reset connection (Redis
    restarted, an idle connection closed) is worth one quick retry, a hung Redis is not: it
    would only make the caller wait another socket timeout."""
    if isinstance(exc, (redis.TimeoutError, TimeoutError)):
        raise exc


PUBLISH_RETRY_POLICY: dict[str, Any] = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.1,
    "interval_max": 0.1,
    "errback": _no_retry_after_a_timeout,
}


def create_celery(redis_url: str, routes: dict[str, dict[str, str]] | None = None) -> Celery:
    app = Celery("spark_partner_ingress", broker=redis_url, set_as_current=False)
    app.conf.update(
        # One redis-py client per channel instead of one per publish (shared/redis_transport.py).
        broker_transport=transport_for(redis_url),
        broker_transport_options={
            "socket_timeout": SOCKET_TIMEOUT,
            "socket_connect_timeout": CONNECT_TIMEOUT,
            # Connecting (a fresh pool connection, /readyz) tries twice, not for the 4 s of
            # broker_connection_timeout: a Redis that refuses is a 503 now.
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": 0.1,
            "interval_max": 0.1,
        },
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        # Nothing waits for these tasks' results.
        result_backend=None,
        task_ignore_result=True,
        # Everything the ingress sends is ingest work (events.ingest_event,
        # consumption.ingest_readings); `routes` (Celery's task_routes) can send a task
        # elsewhere.
        task_default_queue=INGEST_QUEUE,
        task_routes=routes,
        task_publish_retry_policy=PUBLISH_RETRY_POLICY,
    )
    return app


class TaskQueue:
    """Sends tasks to the worker; one per ingress process, shared by its threads."""

    def __init__(self, redis_url: str, routes: dict[str, dict[str, str]] | None = None) -> None:
        self.app = create_celery(redis_url, routes)
        # The broker's own error classes (connection and channel, e.g. Redis's OOM refusal),
        # and AttributeError: after such an error kombu's Redis transport may close the
        # channel's connection under it, and the next publish on that channel fails in
        # `_connparams` ("'NoneType' object has no attribute 'client'", the same kombu flaw
        # as the worker's crash in README "Faults"). Seen while Redis was full
        # (tests/faults/test_redis_starved.py): it was a 500; Redis did not take the message.
        connection = self.app.connection_for_write()
        self._errors: tuple[type[BaseException], ...] = (
            KombuError,
            AttributeError,
            *connection.connection_errors,
            *connection.channel_errors,
        )
        connection.release()

    def send(
        self,
        name: str,
        kwargs: dict[str, Any],
        *,
        kwargsrepr: str,
        task_id: str | None = None,
    ) -> str:
        """Queue the task `name`; its id once Redis holds it. Raises QueueUnavailable.

        `kwargsrepr` is what logs, events and monitoring show instead of the arguments,
        which may carry personal data.
        """
        try:
            result = self.app.send_task(
                name, kwargs=kwargs, task_id=task_id, kwargsrepr=kwargsrepr, retry=True
            )
        except self._errors as exc:
            raise QueueUnavailable(f"Redis did not take the message: {exc!r}") from exc
        task_id = result.id
        assert task_id is not None
        return task_id

    def ping(self) -> bool:
        """Whether Redis answers, through a connection of the publishing pool."""
        try:
            with self.app.pool.acquire(block=True, timeout=SOCKET_TIMEOUT) as connection:
                return bool(connection.default_channel.client.ping())
        except self._errors:
            return False

    def close(self) -> None:
        self.app.close()
