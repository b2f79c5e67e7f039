"""monitoring/: the alert rules load in promtool, and every metric a rule or a dashboard panel
uses is one that the ingress, the workers or serve-metrics export."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, Metric
from prometheus_client.parser import text_string_to_metric_families

from ingress.app import create_app
from ingress.queueing import TaskQueue
from shared.config import load_settings
from worker.ops import task_metrics
from worker.ops.health import Snapshot
from worker.ops.ledger_metrics import metrics_of
from worker.ops.marks import DELIVERY_LOG_CHECK, Mark
from worker.ops.queues import QueueState
from worker.reports.deadlines import STATUSES, MonthDeadline

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
METRIC = re.compile(r"\b(spark_partner_[a-z0-9_]+)")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def panel_expressions() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def names(families: Iterable[Metric]) -> set[str]:
    return {
        family.name + suffix for family in families for suffix in SUFFIXES.get(family.type, ("",))
    }


def full_snapshot() -> Snapshot:
    """A snapshot where everything has happened, so every ledger metric is present."""
    now = datetime(2026, 3, 29, 12, tzinfo=UTC)
    return Snapshot(
        now=now,
        tomorrow=date(2026, 3, 30),
        local_now=now,
        queues=[QueueState("ingest", 2, now - timedelta(seconds=5))],
        workers=["w@h"],
        beat_tick=now,
        marks={
            DELIVERY_LOG_CHECK: Mark(
                DELIVERY_LOG_CHECK, now, {"webhook_healthy": True, "recovered_total": 1}
            )
        },
        last_webhook=now,
        last_backfill={"started_at": now, "error": None, "enqueued": 0},
        last_reconcile={"status": "done", "finished_at": now.isoformat(), "error": None},
        last_curve_at=now,
        months=[
            MonthDeadline(
                month=date(2026, 3, 1),
                zone="Europe/Oslo",
                deadline=now + timedelta(days=3),
                aim=now + timedelta(days=3),
                final_sweeps_from=now + timedelta(days=2),
                counts={status: 1 for status in STATUSES},
                time_left=timedelta(days=3),
            )
        ],
    )


def exported() -> set[str]:
    queue = TaskQueue("redis://127.0.0.1:1/0")
    try:
        settings = load_settings(
            {"REDIS_URL": "redis://127.0.0.1:1/0", "SPARK_WEBHOOK_SECRETS": "s"}
        )
        text = create_app(settings, queue).test_client().get("/metrics").get_data(as_text=True)
    finally:
        queue.close()
    ingress = names(text_string_to_metric_families(text))
    task_metrics.metrics()
    worker = names(REGISTRY.collect())
    ledgers = names(metrics_of(full_snapshot()))
    return ingress | worker | ledgers


def test_it_loads_the_rules_in_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian/Ubuntu: apt-get install prometheus)")
    result = subprocess.run(
        [promtool, "check", "rules", str(MONITORING / "alerts.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_alerts_on_what_the_issue_lists() -> None:
    expressions = " ".join(rule["expr"] for rule in rules())
    for metric in (
        "spark_partner_queue_oldest_age_seconds",
        "spark_partner_dead_letters_open",
        'outcome=~"unsigned|bad_signature"',
        "spark_partner_report_nearest_deadline_seconds",
        'spark_partner_reports{status="missed"}',
        "spark_partner_tomorrows_curve_missing",
        "spark_partner_last_webhook_age_seconds",
        "spark_partner_spark_webhook_healthy",
        "spark_partner_workers_responding",
        "spark_partner_beat_heartbeat_age_seconds",
    ):
        assert metric in expressions


def test_it_uses_only_exported_metrics_in_rules_and_panels() -> None:
    available = exported()
    used = {
        name
        for expression in [rule["expr"] for rule in rules()] + panel_expressions()
        for name in METRIC.findall(expression)
    }
    assert used, "no metric found in the rules or the dashboard"
    assert used - available == set()
    # Nothing is exported that neither the rules nor the dashboard look at, apart from
    # histogram and counter parts the panels derive.
    ledger = names(metrics_of(full_snapshot()))
    assert ledger - used == set()
