"""What the reports and consumption tests share: curves made by the sandbox and stored the way
the worker stores them, readings, the CLI, the sandbox's record of reports, worker tasks."""

from __future__ import annotations

import csv
import json
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from celery import Celery
from click.testing import Result
from psycopg.rows import dict_row

from bench.support import store_event_curve
from sandbox.simulation import PriceCurveRequest
from sandbox.state import Event
from shared.db import connect
from tests.fixtures.sandbox import SandboxHandle
from tests.fixtures.sandbox import spark_env as sandbox_spark_env
from tests.worker.cli import run

OSLO = ZoneInfo("Europe/Oslo")
HOUR = timedelta(hours=1)
READING_HEADER = ("resourceId", "locationId", "start", "end", "kWh", "readingId")


def spark_env(sandbox: SandboxHandle, **extra: str) -> dict[str, str]:
    return sandbox_spark_env(sandbox, **{"SPARK_TIMEZONE": "Europe/Oslo", **extra})


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=OSLO)


def utc(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()


def hours_of_local_day(day: datetime) -> list[datetime]:
    """The UTC starts of every hour of a local day: 23, 24 or 25 of them."""
    midnight = day.replace(hour=0, minute=0)
    start, end = midnight.astimezone(UTC), (midnight + timedelta(days=1)).astimezone(UTC)
    return [start + HOUR * n for n in range(int((end - start) / HOUR))]


def simulate_curve(
    sandbox: SandboxHandle,
    targets: Sequence[tuple[str, str]],
    starts: Sequence[datetime],
    *,
    created_at: datetime,
    price: float = -0.5,
    price_area: str = "NO1",
) -> Event:
    """A PriceCurve event made by the sandbox at `created_at` (its clock is set, frozen)."""
    sandbox.control.set_clock(created_at.astimezone(UTC), frozen=True)
    request = PriceCurveRequest(
        targets=[{"resourceId": r, "locationId": loc} for r, loc in targets],
        delta={
            "points": [
                {"price": price, "timestamp": start.astimezone(UTC).isoformat()} for start in starts
            ],
            "resolution": "01:00:00",
            "energyUnit": "kWh",
            "currency": "NOK",
        },
        price_area=price_area,
    )
    return sandbox.sandbox.simulate_price_curve(request)


def curve(
    sandbox: SandboxHandle,
    database_url: str,
    targets: Sequence[tuple[str, str]],
    starts: Sequence[datetime],
    *,
    created_at: datetime,
    price: float = -0.5,
    price_area: str = "NO1",
) -> Event:
    event = simulate_curve(
        sandbox, targets, starts, created_at=created_at, price=price, price_area=price_area
    )
    with connect(database_url) as conn:
        store_event_curve(conn, event, OSLO)
    return event


def reading(
    resource_id: str,
    start: datetime,
    end: datetime,
    kwh: float,
    *,
    location_id: str | None = None,
    reading_id: str | None = None,
) -> dict[str, Any]:
    return {
        "resourceId": resource_id,
        "locationId": location_id,
        "start": utc(start),
        "end": utc(end),
        "kWh": kwh,
        "readingId": reading_id,
    }


def write_readings(path: Path, readings: Iterable[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(READING_HEADER)
        for item in readings:
            writer.writerow(
                ["" if item.get(name) is None else item[name] for name in READING_HEADER]
            )
    return path


def cli(database_url: str, *args: str, sandbox: SandboxHandle | None = None, **env: str) -> Result:
    base = spark_env(sandbox) if sandbox else {"SPARK_TIMEZONE": "Europe/Oslo"}
    return run(database_url, *args, **{**base, **env})


def cli_json(
    database_url: str, *args: str, sandbox: SandboxHandle | None = None, **env: str
) -> Any:
    result = cli(database_url, *args, "--json", sandbox=sandbox, **env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def import_readings(
    database_url: str, path: Path, *, now: datetime, sandbox: SandboxHandle | None = None
) -> Any:
    return cli_json(
        database_url, "consumption", "import", str(path), "--now", utc(now), sandbox=sandbox
    )


def send_event_reports(
    database_url: str, sandbox: SandboxHandle, event_id: str, *, now: datetime
) -> Any:
    """`spark-partner reports send --event ID --now NOW --json`, which must exit 0."""
    return cli_json(
        database_url, "reports", "send", "--event", event_id, "--now", utc(now), sandbox=sandbox
    )


def due_reports(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path, *, start: datetime, events: int
) -> list[str]:
    """`events` curves for the two hours from `start`, sent 20 hours before, each for the EV
    and the heater of a home of its own, and readings that cover them, imported at `start`.
    The event ids."""
    event_ids: list[str] = []
    readings: list[dict[str, Any]] = []
    for n in range(events):
        targets = [(f"ev-{n}", f"home-{n}"), (f"heat-{n}", f"home-{n}")]
        event = curve(
            sandbox, database_url, targets, [start, start + HOUR], created_at=start - 20 * HOUR
        )
        event_ids.append(event.event_id)
        readings += [reading(r, start, start + 3 * HOUR, 3.0) for r, _ in targets]
    import_readings(database_url, write_readings(tmp_path / "r.csv", readings), now=start)
    return event_ids


def send_hour_reports(
    sandbox: SandboxHandle,
    database_url: str,
    tmp_path: Path,
    targets: Sequence[tuple[str, str]],
    *,
    start: datetime,
    kwh: float,
    now: datetime,
) -> Event:
    """A curve for the hour from `start`, sent 20 hours before, with `kwh` read by each target
    and imported at `now`; then its reports sent by the CLI at `now`, the sandbox's clock set
    (frozen) there too."""
    event = curve(sandbox, database_url, targets, [start], created_at=start - 20 * HOUR)
    readings = [reading(r, start, start + HOUR, kwh, location_id=loc) for r, loc in targets]
    import_readings(database_url, write_readings(tmp_path / "r.csv", readings), now=now)
    sandbox.control.set_clock(now, frozen=True)
    send_event_reports(database_url, sandbox, event.event_id, now=now)
    return event


def register_charger(
    database_url: str,
    user_id: str,
    location_id: str,
    resource_id: str,
    *,
    meter_point_ids: Sequence[str] = (),
    meter_point_id: str | None = None,
) -> None:
    """A user in our registry with a location and a charger at it."""
    execute(database_url, "INSERT INTO users (user_id) VALUES (%s)", (user_id,))
    execute(
        database_url,
        "INSERT INTO locations (location_id, user_id, meter_point_ids) VALUES (%s, %s, %s)",
        (location_id, user_id, list(meter_point_ids)),
    )
    execute(
        database_url,
        "INSERT INTO resources (resource_id, user_id, location_id, resource_type,"
        " meter_point_id) VALUES (%s, %s, %s, 'Charger', %s)",
        (resource_id, user_id, location_id, meter_point_id),
    )


def rows(database_url: str, sql: str, params: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()


def execute(database_url: str, sql: str, params: Any = None) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(sql, params)


def report_rows(database_url: str, event_id: str | None = None) -> list[dict[str, Any]]:
    return rows(
        database_url,
        "SELECT * FROM reports WHERE %(event_id)s::text IS NULL OR event_id = %(event_id)s"
        " ORDER BY event_id, part",
        {"event_id": event_id},
    )


def accepted_reports(sandbox: SandboxHandle, event_id: str | None = None) -> dict[str, Any]:
    """The sandbox's record: {"reports": [...], "countsByEventId": {...}, "lostAnswers": n}."""
    params = {"eventId": event_id} if event_id else None
    response = sandbox.http.get(sandbox.control.url + "/reports", params=params, timeout=10)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def set_report_faults(sandbox: SandboxHandle, **faults: Any) -> dict[str, Any]:
    response = sandbox.http.post(sandbox.control.url + "/reports/faults", json=faults, timeout=10)
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


def points_of(body: dict[str, Any], resource_id: str) -> list[dict[str, Any]]:
    (payload,) = [p for p in body["payloads"] if p["resourceId"] == resource_id]
    points: list[dict[str, Any]] = payload.get("points") or payload.get("curvePoints")
    return points


class Tasks:
    """Sends tasks to the test's worker, as beat or partner code would."""

    def __init__(self, redis_url: str) -> None:
        self.app = Celery("tests", broker=redis_url, set_as_current=False)
        self.app.conf.update(task_serializer="json", accept_content=["json"])

    def send(self, name: str, queue: str = "spark", **kwargs: Any) -> str:
        task_id = str(uuid.uuid4())
        self.app.send_task(name, kwargs=kwargs, queue=queue, task_id=task_id)
        return task_id

    def close(self) -> None:
        self.app.close()


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
