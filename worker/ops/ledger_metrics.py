"""`spark-partner serve-metrics`: the ledgers, queues and beat's heartbeat as Prometheus
gauges, read at scrape time (worker.ops.health.gather), so they are never stale and nothing
is kept between scrapes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from worker.ops.health import Snapshot
from worker.ops.marks import DELIVERY_LOG_CHECK, WORKER_CRASH
from worker.reports.deadlines import OPEN_STATUSES, STATUSES

PREFIX = "spark_partner_"


def _gauge(name: str, documentation: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, documentation, labels=labels)


def _age(snapshot: Snapshot, at: datetime | None) -> float | None:
    return None if at is None else max((snapshot.now - at).total_seconds(), 0.0)


class LedgerCollector(Collector):
    def __init__(self, take_snapshot: Callable[[datetime], Snapshot]) -> None:
        self._take_snapshot = take_snapshot

    def collect(self) -> Iterator[Metric]:
        snapshot = self._take_snapshot(datetime.now(UTC))
        yield from metrics_of(snapshot)


# One metric after another: long, but flat.
def metrics_of(snapshot: Snapshot) -> Iterator[Metric]:  # noqa: PLR0912, PLR0915
    up = _gauge("ledger_source_up", "1 when the source answered this scrape.", ["source"])
    for source in ("redis", "workers", "database"):
        up.add_metric([source], 0 if source in snapshot.errors else 1)
    yield up

    if "redis" not in snapshot.errors:
        depth = _gauge("queue_depth", "Messages waiting in the queue.", ["queue"])
        oldest = _gauge(
            "queue_oldest_age_seconds",
            "How long the queue's oldest waiting message has waited (0 when empty).",
            ["queue"],
        )
        for queue in snapshot.queues:
            depth.add_metric([queue.name], queue.depth)
            age = queue.oldest_age_seconds(snapshot.now) if queue.depth else 0.0
            if age is not None:
                oldest.add_metric([queue.name], age)
        yield depth
        yield oldest
        beat_age = _age(snapshot, snapshot.beat_tick)
        if beat_age is not None:
            yield _gauge_value("beat_heartbeat_age_seconds", "Since beat's last tick.", beat_age)

    if snapshot.workers is not None:
        yield _gauge_value(
            "workers_responding", "Workers that answered ping.", len(snapshot.workers)
        )

    if not snapshot.database_ok:
        return

    for name, documentation, at in (
        ("last_webhook_age_seconds", "Since the last webhook delivery stored.",
         snapshot.last_webhook),
        ("last_backfill_age_seconds", "Since the last backfill started.",
         snapshot.last_backfill["started_at"] if snapshot.last_backfill else None),
        ("last_reconcile_age_seconds", "Since the last eligibility reconcile finished.",
         datetime.fromisoformat(snapshot.last_reconcile["finished_at"])
         if snapshot.last_reconcile else None),
        ("last_curve_age_seconds", "Since the last price curve was stored.",
         snapshot.last_curve_at),
    ):  # fmt: skip
        age = _age(snapshot, at)
        if age is not None:
            yield _gauge_value(name, documentation + " Absent when never.", age)
    yield _gauge_value(
        "last_backfill_failed",
        "1 when the last backfill run failed.",
        1 if snapshot.last_backfill and snapshot.last_backfill["error"] else 0,
    )

    mark_age = _gauge("mark_age_seconds", "Since each ops mark (ops_marks).", ["name"])
    for mark in snapshot.marks.values():
        mark_age.add_metric([mark.name], _age(snapshot, mark.at) or 0.0)
    yield mark_age
    check = snapshot.marks.get(DELIVERY_LOG_CHECK)
    if check is not None and check.detail:
        yield _gauge_value(
            "delivery_log_recovered_events",
            "Events the delivery-log checks recovered from Spark, in all.",
            float(check.detail.get("recovered_total") or 0),
        )
        yield _gauge_value(
            "delivery_log_check_failed",
            "1 when the last delivery-log check stopped on an error.",
            1 if check.detail.get("error") else 0,
        )
    crash = snapshot.marks.get(WORKER_CRASH)
    # Always present (0 before the first crash), so that increase() sees the first one.
    yield CounterMetricFamily(
        PREFIX + "worker_crashes",
        "Worker main processes stopped by an unrecoverable error (each restarted by whatever "
        "runs it), in all.",
        value=float((crash.detail or {}).get("total") or 0) if crash else 0.0,
    )
    healthy = snapshot.webhook_healthy()
    if healthy is not None:
        yield _gauge_value(
            "spark_webhook_healthy",
            "1 when Spark reported our webhook healthy at the last delivery-log check.",
            1 if healthy else 0,
        )

    events = _gauge("events_24h", "Events stored in the last 24 hours, by status.", ["status"])
    for status in ("received", "processed", "unhandled", "failed"):
        events.add_metric([status], snapshot.events_24h.get(status, 0))
    yield events
    yield _gauge_value(
        "dead_letters_open", "Dead letters not replayed.", snapshot.dead_letters_open
    )
    yield _gauge_value(
        "delivery_conflicts_24h",
        "Deliveries in the last 24 hours whose body differs from the stored event's.",
        snapshot.conflicts_24h,
    )
    users = _gauge("users", "Users in the registry, by state.", ["state"])
    users.add_metric(["eligible"], snapshot.users_eligible)
    users.add_metric(["enrolled"], snapshot.users_enrolled)
    yield users
    yield _gauge_value(
        "last_reconcile_failed",
        "1 when the last eligibility reconcile failed.",
        1 if snapshot.last_reconcile and snapshot.last_reconcile["status"] == "failed" else 0,
    )
    yield _gauge_value(
        "tomorrows_curve_present",
        "1 when a price curve for tomorrow (local day) is stored.",
        1 if snapshot.tomorrow_areas else 0,
    )
    yield _gauge_value(
        "tomorrows_curve_missing",
        "1 when the daily check recorded tomorrow's curve as missing (final).",
        1 if snapshot.tomorrow_check == "missing" else 0,
    )
    yield _gauge_value(
        "dispatch_plans_failed",
        "Failed dispatch plans of curves still in force.",
        snapshot.failed_plans,
    )
    yield _gauge_value(
        "compensation_problems",
        "Locations this month whose compensation Spark reports problems with.",
        snapshot.compensation_problems,
    )
    yield _gauge_value(
        "lpc_events_unacknowledged",
        "Resource and location LPC events of the last 7 days without an acknowledgement.",
        snapshot.lpc_unacknowledged,
    )

    reports = _gauge(
        "reports", "Reports by status, local month and zone.", ["status", "month", "zone"]
    )
    deadline = _gauge(
        "report_deadline_seconds",
        "Seconds to the month's report deadline (the earlier of its end in the zone and in UTC, "
        "plus the grace; negative once passed), for months with unsent reports.",
        ["month", "zone"],
    )
    nearest: float | None = None
    for month in snapshot.months:
        label = f"{month.month:%Y-%m}"
        for status in STATUSES:
            reports.add_metric([status, label, month.zone], month.counts[status])
        if any(month.counts[status] for status in OPEN_STATUSES):
            left = (month.aim - snapshot.now).total_seconds()
            deadline.add_metric([label, month.zone], left)
            nearest = left if nearest is None else min(nearest, left)
    yield reports
    yield deadline
    if nearest is not None:
        yield _gauge_value(
            "report_nearest_deadline_seconds",
            "Seconds to the nearest deadline of a month with unsent reports. Absent when none.",
            nearest,
        )


def _gauge_value(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, documentation, value=value)
