from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

from shared.config import load_settings
from shared.queues import INGEST_EVENT_TASK, INGEST_QUEUE, SPARK_QUEUE
from worker.celery_app import (
    LONGEST_TASK_TIME_LIMIT,
    MAX_COUNTDOWN,
    RETRY_BACKOFF_MAX,
    TASK_MODULES,
    VISIBILITY_TIMEOUT,
    create_app,
)

REPO = Path(__file__).resolve().parents[2]

# As `celery -A worker.app worker` builds it, with every task module the worker imports.
app = create_app(load_settings({}), current=False)
for module in TASK_MODULES:
    importlib.import_module(module)


def _our_tasks() -> dict[str, object]:
    return {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}


def test_it_keeps_the_visibility_timeout_above_every_time_limit_and_retry_wait() -> None:
    # Redis hands an unacknowledged message to another worker after the visibility timeout,
    # even while the first still runs it or waits out a retry countdown. A message's life in
    # a worker: its countdown, a wait for a free pool process (busy at worst with the longest
    # task), then its own run.
    timeout = app.conf.broker_transport_options["visibility_timeout"]
    longest = 0
    for name, task in _our_tasks().items():
        limit = getattr(task, "time_limit", None) or app.conf.task_time_limit
        backoff = getattr(task, "retry_backoff_max", RETRY_BACKOFF_MAX)
        retry_delay = getattr(task, "default_retry_delay", 0)
        assert max(backoff, retry_delay) <= MAX_COUNTDOWN, name
        assert timeout >= MAX_COUNTDOWN + LONGEST_TASK_TIME_LIMIT + limit, name
        longest = max(longest, limit)
    assert longest == LONGEST_TASK_TIME_LIMIT
    # ...and no higher than that: it is how long a killed worker's messages wait.
    assert timeout == VISIBILITY_TIMEOUT == 1500
    assert app.conf.visibility_timeout == timeout
    assert app.conf.result_backend_transport_options["visibility_timeout"] == timeout


def test_it_leaves_reconnecting_to_kombu_and_finds_a_vanished_redis_by_keepalive() -> None:
    # redis-py's health checks would reconnect the consumer's BRPOP connection behind
    # kombu's event loop after a Redis restart: a worker that silently consumes nothing.
    options = app.conf.broker_transport_options
    assert options["health_check_interval"] == 0
    assert "retry_on_timeout" not in options
    assert options["socket_keepalive"] is True
    assert options["socket_timeout"] > 0


def test_it_takes_a_shorter_visibility_timeout_from_the_environment() -> None:
    short = create_app(load_settings({"BROKER_VISIBILITY_TIMEOUT": "20"}), current=False)
    assert short.conf.broker_transport_options["visibility_timeout"] == 20
    assert short.conf.visibility_timeout == 20


def test_it_acknowledges_late_and_requeues_work_of_a_lost_worker() -> None:
    assert app.conf.task_acks_late
    assert app.conf.task_reject_on_worker_lost
    assert app.conf.task_retry_on_worker_lost
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_serializer == "json"


def test_it_retries_infrastructure_errors_with_bounded_backoff_on_every_task() -> None:
    for name, task in _our_tasks().items():
        autoretry = getattr(task, "autoretry_for", ())
        assert any(issubclass(e, ConnectionError) for e in autoretry), name
        assert getattr(task, "retry_backoff", False), name
        assert getattr(task, "retry_jitter", False), name
        assert getattr(task, "max_retries", None) is not None, (
            f"{name} must bound worker-loss retries"
        )


def test_it_routes_ingest_to_its_own_queue_and_names_tasks_stably() -> None:
    assert app.tasks[INGEST_EVENT_TASK].queue == INGEST_QUEUE
    assert app.tasks["events.backfill_events"].queue == SPARK_QUEUE
    for name in _our_tasks():
        domain, _, verb_noun = name.partition(".")
        assert domain, name
        # "domain.verb_noun" or a plain verb ("reports.sweep"): stable, never renamed.
        assert verb_noun.isidentifier(), name


def test_it_schedules_the_backfill_on_beat() -> None:
    entries = {entry["task"]: entry for entry in app.conf.beat_schedule.values()}
    assert "events.backfill_events" in entries
    assert entries["events.backfill_events"]["schedule"].run_every.total_seconds() == 15 * 60


def test_it_schedules_the_delivery_log_check_on_beat() -> None:
    entries = {entry["task"]: entry for entry in app.conf.beat_schedule.values()}
    check = entries["webhooks.check_delivery_log"]
    assert check["schedule"].run_every.total_seconds() == 15 * 60
    assert app.tasks["webhooks.check_delivery_log"].queue == SPARK_QUEUE


def test_it_builds_no_celery_app_when_a_domain_module_is_imported() -> None:
    # Every module of the worker but the entry point, in a fresh interpreter with no settings:
    # importing them must neither read settings nor build (or make current) a Celery app.
    script = """
import pkgutil, sys
import celery._state
import worker
for module in pkgutil.walk_packages(worker.__path__, "worker."):
    if module.name != "worker.app" and not module.name.endswith("__main__"):
        __import__(module.name)
import worker.curves.handler
assert "worker.app" not in sys.modules
print(len(list(celery._state._get_active_apps())), celery._state.default_app)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "SPARK_"))}
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "None"]
