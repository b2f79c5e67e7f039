"""How the Celery application is built; `worker.app` builds the one the processes run.

Nothing here builds an app or reads settings at import, so the domain modules (tasks,
handlers) import what they need from here without configuring Celery as a side effect.

Celery on Redis delivers at least once, and only if told to; every setting below that is
not a default is here because of a way an event could otherwise be lost or run twice
(see the reliability notes). Tasks are idempotent against PostgreSQL, so "at least once"
is all they need.
"""

from __future__ import annotations

import socket
from typing import Any

import psycopg
import redis
from celery import Celery, current_app
from kombu.entity import Queue
from kombu.exceptions import OperationalError as KombuOperationalError

from shared.config import Settings
from shared.queues import DISPATCH_QUEUE, INGEST_QUEUE, SPARK_QUEUE
from shared.redis_transport import transport_for
from worker.schedule import beat_schedule

# The default time limit of a task, and the longest any task sets (the eligibility reconcile,
# which pages a million users).
TASK_TIME_LIMIT = 300
LONGEST_TASK_TIME_LIMIT = 600
# The longest a message may wait in a worker for its ETA: retry backoffs and every countdown
# are at most this. Longer waits are kept in PostgreSQL (a `retry_at`, a `due_at`) and picked
# up by beat's sweeps, never held in an ETA, because Redis hands every message a worker holds
# unacknowledged for longer than the visibility timeout to another worker.
MAX_COUNTDOWN = 300
RETRY_BACKOFF_MAX = MAX_COUNTDOWN
# How long Redis waits before it gives a message a worker took but never acknowledged (the
# worker was killed, or lost its connection) to another worker. It must cover the longest
# life of a message in a worker: its countdown, then a wait for a free pool process (which
# may be busy with the longest task), then its own run, or a running task is handed to a
# second worker. 1,500 s: a whole worker killed with `kill -9` has its messages run again
# after at most this plus the restore interval (README, "Faults").
VISIBILITY_TIMEOUT = MAX_COUNTDOWN + 2 * LONGEST_TASK_TIME_LIMIT
# How often a worker looks for messages past the visibility timeout.
UNACKED_RESTORE_INTERVAL = 10
# RedBeat's lock: a standby beat takes over at most this long after the active one dies
# (the lock's last extension expires); tests/faults/test_two_beats.py measures it.
BEAT_LOCK_TIMEOUT = 120

# Errors of our own infrastructure: retry with backoff, never acknowledge the event away.
INFRASTRUCTURE_ERRORS: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    redis.ConnectionError,
    redis.TimeoutError,
    KombuOperationalError,
    ConnectionError,
    TimeoutError,
)

RELIABLE_TASK_OPTIONS: dict[str, Any] = {
    "autoretry_for": INFRASTRUCTURE_ERRORS,
    "retry_backoff": True,  # exponential
    "retry_backoff_max": RETRY_BACKOFF_MAX,
    "retry_jitter": True,  # full jitter, so retries after an outage do not arrive together
    # A database outage can last hours; the message keeps retrying rather than being dropped.
    "max_retries": None,
}


def celery_config(settings: Settings) -> dict[str, Any]:
    # A shorter timeout only for tests that wait for a killed worker's messages.
    visibility_timeout = settings.broker_visibility_timeout or VISIBILITY_TIMEOUT
    transport_options = {
        "visibility_timeout": visibility_timeout,
        # Return a crashed worker's unacked messages within ~10 s of the timeout, not ~100 s.
        "unacked_restore_interval": UNACKED_RESTORE_INTERVAL,
        "unacked_restore_throttle": 1,
        # Without socket timeouts a stopped (SIGSTOP) Redis hangs callers indefinitely.
        "socket_timeout": 10,
        "socket_connect_timeout": 5,
        # No health checks: before a command, redis-py's check reconnects a connection whose
        # Redis was restarted, silently, onto a new socket. For the consumer's BRPOP that
        # socket is one kombu's event loop does not watch, so the worker waits for a reply
        # it never reads and consumes nothing, with no error (seen after Redis kill -9;
        # README, "Faults"). Without them kombu reads the old socket's EOF and reconnects
        # properly. A peer that vanished without closing (a partition) is found by TCP
        # keepalive instead: about 30 + 3 * 10 s.
        "health_check_interval": 0,
        "socket_keepalive": True,
        "socket_keepalive_options": {
            socket.TCP_KEEPIDLE: 30,
            socket.TCP_KEEPINTVL: 10,
            socket.TCP_KEEPCNT: 3,
        },
    }
    return {
        "broker_url": settings.redis_url,
        "broker_transport": transport_for(settings.redis_url),
        "broker_transport_options": transport_options,
        # Celery reads the timeout from three places; when they differ the shortest wins.
        "result_backend_transport_options": {"visibility_timeout": visibility_timeout},
        "visibility_timeout": visibility_timeout,
        # Keep trying to reach Redis at start and after a connection loss, forever.
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        # Nothing reads task results; a backend would only add Redis writes.
        "result_backend": None,
        "task_ignore_result": True,
        # ...and no backend means nothing to expire: no daily celery.backend_cleanup on beat.
        "result_expires": None,
        # JSON only: no pickle from the network.
        "task_serializer": "json",
        "accept_content": ["json"],
        # Acknowledge after the task returns, so a crash mid-task means redelivery, not loss.
        "task_acks_late": True,
        # A pool child killed by SIGKILL or the OOM killer: requeue instead of acking anyway...
        "task_reject_on_worker_lost": True,
        # ...through retry(), so max_retries bounds a message that kills its worker every time.
        "task_retry_on_worker_lost": True,
        "task_time_limit": TASK_TIME_LIMIT,
        "task_soft_time_limit": TASK_TIME_LIMIT - 30,
        # On connection loss the broker redelivers unacked tasks; stop the old copies running.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # On SIGTERM, give reserved messages back to Redis promptly instead of after the timeout.
        "worker_soft_shutdown_timeout": 30,
        "worker_enable_soft_shutdown_on_idle": True,
        # One unacknowledged message per process: a crash strands at most one per child.
        "worker_prefetch_multiplier": 1,
        "task_default_queue": SPARK_QUEUE,
        "task_queues": [Queue(INGEST_QUEUE), Queue(SPARK_QUEUE), Queue(DISPATCH_QUEUE)],
        "task_create_missing_queues": False,
        # A failed publish from the worker (a follow-up task) must surface quickly.
        "task_publish_retry_policy": {
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 1,
        },
        # Schedules are UTC; local-time rules (13:30, month end) are decided in PostgreSQL.
        "enable_utc": True,
        "timezone": "UTC",
        "redbeat_redis_url": settings.redis_url,
        "redbeat_key_prefix": "spark-partner:redbeat:",
        "redbeat_lock_timeout": BEAT_LOCK_TIMEOUT,
        "beat_max_loop_interval": 20,
        "beat_schedule": beat_schedule(),
        "worker_hijack_root_logger": True,
        # Task events for Flower and `celery events`: received/started/succeeded from the
        # worker, and "sent" from whoever publishes.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
    }


def create_app(settings: Settings, *, current: bool = True) -> Celery:
    """The app for `settings`. `current=False` for an app that only sends (tests, tools),
    so that it does not become the process's current app."""
    app = Celery("spark_partner", set_as_current=current)
    app.conf.update(celery_config(settings))
    app.conf.spark_settings = settings
    # Every module with tasks; the worker imports them at start.
    app.conf.include = TASK_MODULES
    return app


TASK_MODULES = [
    "worker.events.tasks",
    "worker.users.tasks",
    "worker.eligibility.tasks",
    "worker.curves.tasks",
    "worker.consumption.tasks",
    "worker.reports.tasks",
    "worker.webhooks.tasks",
    "worker.lpc.tasks",
]


def current_settings() -> Settings:
    """The settings of the app that runs the current task (in a worker: `worker.app`'s)."""
    configured: Settings = current_app.conf.spark_settings
    return configured
