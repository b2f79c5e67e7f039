"""The energy report after an LPC event through the whole path: the sandbox emits a resource
and a location event, ingress and the worker store them, readings arrive, and the worker's
reports sweep sends each event's energy report to the sandbox's POST /reports, which checks
it against the event's targets and periods. Time is the sandbox's clock and the sweep's
`now`, moved, not waited for."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.sandbox import SandboxHandle
from tests.fixtures.services import IngressServer, WorkerProcess
from tests.reports.support import (
    HOUR,
    Tasks,
    execute,
    import_readings,
    reading,
    report_rows,
    spark_env,
    utc,
    write_readings,
)
from tests.waiting import wait_for
from tests.worker.cli import run, run_json

pytestmark = pytest.mark.slow

TYPES = ("ResourceLPCRequested", "LocationLPCRequested")
# The events' two two-hour periods: 10:00-12:00 and 12:00-14:00 UTC.
START = datetime(2026, 3, 4, 10, tzinfo=UTC)
END = START + 4 * HOUR


def _registry(database_url: str) -> None:
    """r-0 at loc-0 and r-1 at loc-1 are ours, r-2 is not; heat-9 is at location loc-9,
    whose meter point is 7079."""
    execute(database_url, "INSERT INTO users (user_id) VALUES ('u-1')")
    execute(
        database_url,
        "INSERT INTO locations (location_id, user_id, meter_point_ids) VALUES"
        " ('loc-0', 'u-1', '{7070}'), ('loc-1', 'u-1', '{7070}'), ('loc-9', 'u-1', '{7079}')",
    )
    execute(
        database_url,
        "INSERT INTO resources (resource_id, user_id, location_id, resource_type) VALUES"
        " ('r-0', 'u-1', 'loc-0', 'Charger'), ('r-1', 'u-1', 'loc-1', 'Charger'),"
        " ('heat-9', 'u-1', 'loc-9', 'Charger')",
    )


def _points() -> list[dict[str, Any]]:
    return [
        {"maxPowerInKiloWatts": 3.5, "timestamp": utc(START)},
        {"maxPowerInKiloWatts": 2.0, "timestamp": utc(START + 2 * HOUR)},
    ]


def _energy_reports(sandbox: SandboxHandle, event_id: str) -> list[dict[str, Any]]:
    return [
        r.body
        for r in sandbox.sandbox.reports.reports(event_id)
        if "EnergyUsage" in r.body["payloads"][0]["payloadType"]
    ]


def _status(database_url: str, event_id: str) -> str | None:
    rows = [r for r in report_rows(database_url, event_id) if r["kind"] == "lpc_energy"]
    return rows[0]["status"] if rows else None


def test_it_reports_each_lpc_events_energy_after_it_ends_and_the_sandbox_accepts_it(
    *,
    sandbox: SandboxHandle,
    database_url: str,
    redis_url: str,
    tmp_path: Path,
    start_ingress: Callable[..., IngressServer],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    _registry(database_url)
    ingress = start_ingress(redis_url, secret="e2e-secret")
    start_worker(database_url, redis_url, **spark_env(sandbox))
    sandbox.register_webhook(ingress.webhook_url, secret="e2e-secret", notification_types=TYPES)
    sandbox.control.set_clock(START - 20 * HOUR, frozen=True)
    resources = [
        {
            "resource": {"locationId": f"loc-{n}", "resourceId": f"r-{n}", "meterPointId": "7070"},
            "points": _points(),
        }
        for n in range(3)
    ]
    answer = sandbox.api("POST", "/simulation/events/lpc/resources", json={"resources": resources})
    assert answer.status_code == 200, answer.text
    resource_event = answer.json()["simulatedEvent"]["id"]
    location = {"location": {"locationId": "loc-9", "meterPointId": "7079"}, "points": _points()}
    answer = sandbox.api("POST", "/simulation/events/lpc/locations", json={"locations": [location]})
    assert answer.status_code == 200, answer.text
    location_event = answer.json()["simulatedEvent"]["id"]
    sandbox.wait_for_deliveries(timeout=10)
    wait_for(lambda: len(run_json(database_url, "lpc", "list")) == 2, 30, "both events stored")

    # The readings, after the event: hourly, and a zero for the resource we do not know.
    hours = [START + n * HOUR for n in range(4)]
    readings = [
        *(reading("r-0", h, h + HOUR, 1.25) for h in hours),
        *(reading("r-1", h, h + HOUR, 0.5 if h < START + 2 * HOUR else 0.0) for h in hours),
        reading("r-2", START, END, 0.0),
        *(reading("heat-9", h, h + HOUR, 2.0) for h in hours),
    ]
    import_readings(database_url, write_readings(tmp_path / "r.csv", readings), now=END + HOUR)
    tasks = Tasks(redis_url)
    try:
        # Ended, not settled yet: nothing goes.
        sandbox.control.set_clock(END + HOUR, frozen=True)
        tasks.send("reports.sweep", now=utc(END + HOUR))
        wait_for(lambda: _status(database_url, location_event) == "pending", 30, "planned")
        assert _energy_reports(sandbox, resource_event) == []
        # Settled (SPARK_REPORT_SETTLE's two hours) and covered by readings: sent.
        now = END + 2 * HOUR + timedelta(minutes=5)
        sandbox.control.set_clock(now, frozen=True)
        tasks.send("reports.sweep", now=utc(now))
        wait_for(lambda: _status(database_url, resource_event) == "sent", 60, "resource report")
        wait_for(lambda: _status(database_url, location_event) == "sent", 60, "location report")
    finally:
        tasks.close()

    [resource_report] = _energy_reports(sandbox, resource_event)
    assert resource_report["payloads"] == [
        {
            "payloadType": "EnergyUsage",
            "resourceId": "r-0",
            "locationId": "loc-0",
            "meterPointId": "7070",
            "points": [
                {"timestamp": utc(START), "kiloWattHours": 2.5},
                {"timestamp": utc(START + 2 * HOUR), "kiloWattHours": 2.5},
            ],
            "resolution": "02:00:00",
        },
        {
            "payloadType": "EnergyUsage",
            "resourceId": "r-1",
            "locationId": "loc-1",
            "meterPointId": "7070",
            "points": [{"timestamp": utc(START), "kiloWattHours": 1.0}],
            "resolution": "02:00:00",
        },
    ]
    [location_report] = _energy_reports(sandbox, location_event)
    assert location_report["payloads"] == [
        {
            "payloadType": "LocationEnergyUsage",
            "locationId": "loc-9",
            "meterPointId": "7079",
            "points": [
                {"timestamp": utc(START), "kiloWattHours": 4.0},
                {"timestamp": utc(START + 2 * HOUR), "kiloWattHours": 4.0},
            ],
            "resolution": "02:00:00",
        }
    ]
    shown = run_json(database_url, "lpc", "show", resource_event)["energyReport"]
    assert (shown["kind"], shown["status"], shown["dueReason"]) == (
        "lpc_energy", "sent", "complete",
    )  # fmt: skip
    assert (shown["payloads"], shown["points"], shown["kWh"]) == (2, 3, 6.0)
    assert [a["outcome"] for a in shown["attemptLog"]] == ["accepted"]
    text = run(database_url, "lpc", "show", location_event).output
    assert "energy report: sent (complete)  month 2026-03 Europe/Oslo" in text
