from __future__ import annotations

from shared.queues import INGEST_EVENT_TASK, INGEST_QUEUE, SPARK_QUEUE
from worker.app import RETRY_BACKOFF_MAX, app
from worker.events import tasks  # noqa: F401 (registers the tasks)
from worker.webhooks import tasks as webhook_tasks  # noqa: F401 (registers the tasks)


def _our_tasks() -> dict[str, object]:
    return {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}


def test_it_keeps_the_visibility_timeout_above_every_time_limit_and_retry_wait() -> None:
    # Redis hands an unacknowledged message to another worker after the visibility timeout,
    # even while the first still runs it or waits out a retry countdown.
    timeout = app.conf.broker_transport_options["visibility_timeout"]
    for name, task in _our_tasks().items():
        limit = getattr(task, "time_limit", None) or app.conf.task_time_limit
        backoff = getattr(task, "retry_backoff_max", RETRY_BACKOFF_MAX)
        retry_delay = getattr(task, "default_retry_delay", 0)
        assert timeout >= 2 * (limit + max(backoff, retry_delay)), name
    assert app.conf.visibility_timeout == timeout
    assert app.conf.result_backend_transport_options["visibility_timeout"] == timeout


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
        assert "_" in verb_noun, name


def test_it_schedules_the_backfill_on_beat() -> None:
    entries = {entry["task"]: entry for entry in app.conf.beat_schedule.values()}
    assert "events.backfill_events" in entries
    assert entries["events.backfill_events"]["schedule"].run_every.total_seconds() == 15 * 60


def test_it_schedules_the_delivery_log_check_on_beat() -> None:
    entries = {entry["task"]: entry for entry in app.conf.beat_schedule.values()}
    check = entries["webhooks.check_delivery_log"]
    assert check["schedule"].run_every.total_seconds() == 15 * 60
    assert app.tasks["webhooks.check_delivery_log"].queue == SPARK_QUEUE
