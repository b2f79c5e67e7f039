"""The worker's Prometheus metrics: tasks by name and outcome, run time, and for ingested
events and readings the time from their receipt at the ingress to done.

Prefork: every pool child counts into files under PROMETHEUS_MULTIPROC_DIR (prometheus_client's
multiprocess mode) and the main process serves their sum on WORKER_METRICS_PORT. The
directory must be in the environment before prometheus_client is first imported, so this
module is imported only from the signal handlers, and `start_worker_metrics` (worker_init,
main process, before the pool forks) sets it.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from shared.prometheus import prepare_multiprocess_dir
from shared.queues import INGEST_EVENT_TASK

log = logging.getLogger(__name__)

# Tasks whose `received_at` argument is when the ingress (or an import) received the data.
RECEIVED_TASKS = frozenset({INGEST_EVENT_TASK, "consumption.ingest_readings"})


def start_worker_metrics(worker: Any) -> None:
    from worker.celery_app import current_settings

    settings = current_settings()
    if not settings.worker_metrics_port:
        return
    prepare_multiprocess_dir("spark-partner-worker-metrics-")
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    try:
        start_http_server(settings.worker_metrics_port, settings.metrics_host, registry)
    except OSError as exc:
        # Another worker on this host has the port: this one runs on without metrics.
        log.warning(
            "worker metrics not served: %s:%d: %s (give each worker its own WORKER_METRICS_PORT)",
            settings.metrics_host,
            settings.worker_metrics_port,
            exc,
        )
        return
    log.info(
        "worker metrics on http://%s:%d/metrics",
        settings.metrics_host,
        settings.worker_metrics_port,
    )


class _Metrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.tasks = Counter(
            "spark_partner_worker_tasks", "Tasks run, by name and outcome.", ["task", "outcome"]
        )
        self.run_time = Histogram(
            "spark_partner_worker_task_seconds",
            "Run time of tasks, by name.",
            ["task"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
        )
        self.receipt_to_done = Histogram(
            "spark_partner_worker_receipt_to_done_seconds",
            "From receipt at the ingress (or import) to stored, for ingested events and readings.",
            ["task"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
        )


_metrics: _Metrics | None = None
_started: dict[str, float] = {}


def metrics() -> _Metrics:
    global _metrics  # noqa: PLW0603 (one set of metric objects per process, made on first use)
    if _metrics is None:
        _metrics = _Metrics()
    return _metrics


def task_started(task_id: str | None) -> None:
    if task_id is not None:
        _started[task_id] = time.perf_counter()


def task_finished(
    task_id: str | None, name: str, kwargs: dict[str, Any], state: str | None
) -> None:
    started = _started.pop(task_id, None) if task_id is not None else None
    outcome = (state or "unknown").lower()
    recorded = metrics()
    recorded.tasks.labels(name, outcome).inc()
    if started is not None:
        recorded.run_time.labels(name).observe(time.perf_counter() - started)
    received_at = kwargs.get("received_at")
    if name in RECEIVED_TASKS and outcome == "success" and isinstance(received_at, str):
        try:
            received = datetime.fromisoformat(received_at)
        except ValueError:
            return
        if received.tzinfo is not None:
            waited = (datetime.now(UTC) - received).total_seconds()
            recorded.receipt_to_done.labels(name).observe(max(waited, 0.0))
