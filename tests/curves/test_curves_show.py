"""`spark-partner curves show EVENT_ID --json`: periods, targets, what is in force after
newer curves, and the dispatch decisions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from shared.db import Connection
from tests.curves.support import (
    curve_event,
    curve_payload,
    local_hours,
    points,
    store,
    targets,
)
from tests.fixtures.sandbox import SandboxHandle
from tests.fixtures.services import WorkerProcess
from tests.waiting import wait_for
from tests.worker.cli import run, run_json

DAY = date(2026, 3, 4)
HOURS = local_hours(DAY)


def by_target(shown: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(t["resourceId"], t["locationId"]): t for t in shown["targets"]}


def in_force(target: dict[str, Any]) -> dict[datetime, tuple[str, float]]:
    """Period start → (curve in force, its delta)."""
    return {
        datetime.fromisoformat(p["start"]): (p["effectiveEventId"], p["effectivePrice"])
        for p in target["periods"]
    }


@pytest.mark.slow
@pytest.mark.parametrize("changed_first", [False, True], ids=["in-order", "changed-first"])
def test_it_shows_the_deltas_in_force_per_target_and_period_end_to_end(
    sandbox: SandboxHandle,
    pipeline: Callable[..., WorkerProcess],
    database_url: str,
    changed_first: bool,
) -> None:
    pipeline()
    everyone = [{"resourceId": r, "locationId": loc} for r, loc in targets(10)]
    half = everyone[:5]
    prices = [round(-1 + i / 12, 4) for i in range(24)]
    changed_hours = HOURS[7:10]
    morning = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
    sends = [
        (morning, {"targets": everyone, "priceCurveDelta": {"points": points(HOURS, prices)}}),
        (
            morning + timedelta(hours=2),
            {"targets": half, "priceCurveDelta": {"points": points(changed_hours, [0.75] * 3)}},
        ),
    ]
    # Spark's clock decides which curve is newer; the order of sending, which comes first.
    ids: dict[int, str] = {}
    for index in [1, 0] if changed_first else [0, 1]:
        at, body = sends[index]
        sandbox.control.set_clock(at, frozen=True)
        ids[index] = sandbox.simulate_price_curve({**body, "priceArea": "NO1"})["id"]
        wait_for(lambda: stored_curves(database_url) == len(ids), 20, "the curve stored")
    original, changed = ids[0], ids[1]
    wait_for(lambda: all_sent(database_url), 20, "every plan sent")

    shown = run_json(database_url, "curves", "show", original)

    assert shown["targetCount"] == 10
    assert len(shown["periods"]) == 24
    assert [curve["eventId"] for curve in shown["newerCurves"]] == [changed]
    rows = by_target(shown)
    for target in everyone:
        row = rows[(target["resourceId"], target["locationId"])]
        expected = {hour: (original, price) for hour, price in zip(HOURS, prices, strict=True)}
        if target in half:
            expected.update(dict.fromkeys(changed_hours, (changed, 0.75)))
        assert in_force(row) == expected
        assert row["dispatch"]["status"] == "sent"
        assert row["dispatch"]["sentRevision"] == row["dispatch"]["revision"]
        superseded = [p["supersededBy"] for p in row["periods"] if p["superseded"]]
        assert superseded == ([changed] * 3 if target in half else [])

    shown_changed = run_json(database_url, "curves", "show", changed)
    assert [curve["eventId"] for curve in shown_changed["olderCurves"]] == [original]
    for target in half:
        row = by_target(shown_changed)[(target["resourceId"], target["locationId"])]
        assert in_force(row) == dict.fromkeys(changed_hours, (changed, 0.75))


def stored_curves(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM price_curves").fetchone()
    return int(row[0]) if row else 0


def all_sent(database_url: str) -> bool:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT DISTINCT status FROM curve_dispatches").fetchall()
    return [row[0] for row in rows] == ["sent"]


def test_it_shows_a_curve_with_its_periods_targets_and_decisions(
    db: Connection, database_url: str
) -> None:
    named = targets(3)
    document = curve_event(
        curve_payload(points(HOURS, [0.25] * 24), named, area="SE2", currency="SEK"),
        datetime(2026, 3, 3, 12, tzinfo=UTC),
    )
    store(db, document)

    shown = run_json(database_url, "curves", "show", document["eventId"])

    assert shown["eventId"] == document["eventId"]
    assert (shown["priceArea"], shown["currency"], shown["energyUnit"]) == ("SE2", "SEK", "kWh")
    assert shown["resolution"] == "01:00:00"
    assert shown["localDate"] == "2026-03-04"
    assert [p["timestamp"] for p in shown["periods"]] == [
        p["timestamp"] for p in document["payload"]["priceCurveDelta"]["points"]
    ]
    assert shown["dispatch"] == {"pending": 3}
    assert {(t["resourceId"], t["locationId"]) for t in shown["targets"]} == set(named)
    for target in shown["targets"]:
        assert target["dispatch"]["status"] == "pending"
        assert len(target["periods"]) == 24
        assert not any(p["superseded"] for p in target["periods"])


def test_it_shows_only_as_many_targets_as_asked(db: Connection, database_url: str) -> None:
    document = curve_event(
        curve_payload(points(HOURS, [0.25] * 24), targets(5)), datetime(2026, 3, 3, tzinfo=UTC)
    )
    store(db, document)

    shown = run_json(database_url, "curves", "show", document["eventId"], "--targets", "2")

    assert (shown["targetCount"], shown["targetsShown"], len(shown["targets"])) == (5, 2, 2)


def test_it_refuses_an_unknown_curve(database_url: str) -> None:
    result = run(database_url, "curves", "show", "no-such-curve", "--json")

    assert result.exit_code != 0
    assert "no price curve no-such-curve" in result.output
