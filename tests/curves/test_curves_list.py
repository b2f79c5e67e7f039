"""`spark-partner curves list [--date D] [--area A] --json`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest

from shared.db import Connection
from tests.curves.support import (
    OSLO,
    curve_event,
    curve_payload,
    local_hours,
    points,
    store,
    targets,
)
from tests.fixtures.sandbox import IN_AREA_1, SandboxHandle
from tests.fixtures.services import WorkerProcess
from tests.waiting import wait_for
from tests.worker.cli import run_json


def store_day(conn: Connection, day: date, area: str, count: int = 2) -> str:
    hours = local_hours(day)
    document = curve_event(
        curve_payload(points(hours, [0.1] * len(hours)), targets(count), area=area),
        datetime.combine(day - timedelta(days=1), datetime.min.time(), tzinfo=UTC),
    )
    store(conn, document)
    event_id: str = document["eventId"]
    return event_id


def test_it_lists_the_curves_of_a_local_day_and_area(db: Connection, database_url: str) -> None:
    spring = store_day(db, date(2026, 3, 29), "NO1", count=3)
    spring_se = store_day(db, date(2026, 3, 29), "SE3")
    autumn = store_day(db, date(2026, 10, 25), "NO1")

    everything = run_json(database_url, "curves", "list")
    one_day = run_json(database_url, "curves", "list", "--date", "2026-03-29")
    one_area = run_json(database_url, "curves", "list", "--date", "2026-03-29", "--area", "NO1")

    assert everything[0]["eventId"] == autumn  # the latest day first
    assert {c["eventId"] for c in one_day} == {spring, spring_se}
    [item] = one_area
    assert item["eventId"] == spring
    assert (item["localDate"], item["priceArea"], item["periods"], item["targets"]) == (
        "2026-03-29",
        "NO1",
        23,
        3,
    )
    assert item["dispatch"] == {"pending": 3}
    assert {c["periods"] for c in everything if c["eventId"] == autumn} == {25}


@pytest.mark.slow
def test_it_lists_the_sandboxs_dst_day_curves_with_23_and_25_periods(
    sandbox: SandboxHandle, pipeline: Callable[..., WorkerProcess], database_url: str
) -> None:
    sandbox.add_user("alice")
    sandbox.add_location("alice", "alice-home", coordinates=IN_AREA_1)
    sandbox.add_resource("alice", "alice-home", "alice-charger")
    sandbox.enroll("alice")
    sandbox.control.set_daily_curves(full_day=True)
    pipeline()

    for eve, day in ((date(2026, 3, 28), "2026-03-29"), (date(2026, 10, 24), "2026-10-25")):
        sandbox.control.set_clock(datetime(eve.year, eve.month, eve.day, 12, 59, tzinfo=OSLO))
        sandbox.control.advance_clock(120)

        def listed(day: str = day) -> bool:
            return bool(run_json(database_url, "curves", "list", "--date", day))

        wait_for(listed, 20, f"the curve for {day}")
    spring = run_json(database_url, "curves", "list", "--date", "2026-03-29")
    autumn = run_json(database_url, "curves", "list", "--date", "2026-10-25")

    assert [c["periods"] for c in spring] == [23]
    assert [c["periods"] for c in autumn] == [25]
    assert {c["priceArea"] for c in spring + autumn} == {"NO4"}


@pytest.mark.slow
def test_it_keeps_the_sandboxs_off_the_hour_points_as_their_own_periods(
    sandbox: SandboxHandle, pipeline: Callable[..., WorkerProcess], database_url: str
) -> None:
    pipeline()
    start = datetime(2026, 3, 4, 6, 17, 23, 123456, tzinfo=UTC)
    body = {
        "targets": [{"resourceId": "r", "locationId": "l"}],
        "priceCurveDelta": {
            "points": points([start + timedelta(hours=i) for i in range(3)], [0.1, -0.2, 0.3])
        },
        "priceArea": "NO5",
    }
    event_id = sandbox.simulate_price_curve(body)["id"]
    wait_for(lambda: bool(run_json(database_url, "curves", "list")), 20, "the curve stored")

    shown = run_json(database_url, "curves", "show", event_id)

    assert [(p["start"], p["end"]) for p in shown["periods"]] == [
        ((start + timedelta(hours=i)).isoformat(), (start + timedelta(hours=i + 1)).isoformat())
        for i in range(3)
    ]
    assert [p["timestamp"] for p in shown["periods"]] == [
        "2026-03-04T06:17:23.1234560+00:00",
        "2026-03-04T07:17:23.1234560+00:00",
        "2026-03-04T08:17:23.1234560+00:00",
    ]
