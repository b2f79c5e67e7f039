"""The PriceCurveCreated handler: what it stores, and what it refuses."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from celery import Celery

from shared.db import Connection
from tests.curves.support import (
    SETTINGS,
    curve_event,
    curve_payload,
    decisions,
    local_hours,
    points,
    store,
    targets,
)
from worker.curves.handler import handle_price_curve_created
from worker.events.handling import FollowUp, StoredEvent
from worker.events.inbox import ingest

CREATED = datetime(2026, 3, 3, 12, 0, 5, tzinfo=UTC)


def curve_row(conn: Connection, event_id: str) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM price_curves WHERE event_id = %s", (event_id,)).fetchone()
    assert row is not None
    return dict(row)


def period_rows(conn: Connection, event_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT * FROM price_curve_periods WHERE event_id = %s ORDER BY period_start",
        (event_id,),
    ).fetchall()
    return [dict(row) for row in rows]


def target_set(conn: Connection, event_id: str) -> set[tuple[str, str]]:
    rows = conn.execute(
        "SELECT resource_id, location_id FROM price_curve_targets WHERE event_id = %s",
        (event_id,),
    ).fetchall()
    return {(row["resource_id"], row["location_id"]) for row in rows}


def test_it_stores_the_curve_its_periods_and_its_targets(db: Connection) -> None:
    hours = local_hours(date(2026, 3, 4))
    prices = [round(-0.5 + index * 0.05, 2) for index in range(24)]
    curve_points = points(hours, prices)
    # Spark's own forms: seven fraction digits, none, and the `Z` others write.
    curve_points[0]["timestamp"] = "2026-03-03T23:00:00.0000000+00:00"
    curve_points[1]["timestamp"] = "2026-03-04T00:00:00Z"
    named = targets(3)
    document = curve_event(
        curve_payload(curve_points, named, area="SE3", unit="MWh", currency="SEK"), CREATED
    )

    follow_ups = store(db, document)

    event_id = document["eventId"]
    curve = curve_row(db, event_id)
    assert curve["price_area"] == "SE3"
    assert curve["currency"] == "SEK"
    assert curve["energy_unit"] == "MWh"
    assert curve["resolution"] == timedelta(hours=1)
    assert curve["event_created_at"] == CREATED
    assert curve["local_date"] == date(2026, 3, 4)
    assert curve["first_period_start"] == hours[0]
    assert curve["last_period_end"] == hours[-1] + timedelta(hours=1)
    assert curve["target_count"] == 3
    periods = period_rows(db, event_id)
    assert [p["period_start"] for p in periods] == hours
    assert all(p["period_end"] - p["period_start"] == timedelta(hours=1) for p in periods)
    assert [p["price"] for p in periods] == prices
    assert [p["spark_timestamp"] for p in periods] == [p["timestamp"] for p in curve_points]
    assert target_set(db, event_id) == set(named)
    assert {d["status"] for d in decisions(db, event_id).values()} == {"pending"}
    assert set(decisions(db, event_id)) == set(named)
    assert len(follow_ups) == 1


@pytest.mark.parametrize(
    ("day", "count"),
    [(date(2026, 3, 29), 23), (date(2026, 10, 25), 25), (date(2026, 6, 1), 24)],
)
def test_it_gives_each_local_day_its_own_number_of_periods(
    db: Connection, day: date, count: int
) -> None:
    hours = local_hours(day)
    document = curve_event(curve_payload(points(hours, [0.1] * len(hours)), targets(1)), CREATED)

    store(db, document)

    curve = curve_row(db, document["eventId"])
    periods = period_rows(db, document["eventId"])
    assert len(periods) == count
    assert curve["local_date"] == day
    # The day ends at the next local midnight, whatever its length.
    next_midnight = local_hours(day + timedelta(days=1))[0]
    assert curve["last_period_end"] == next_midnight
    assert periods[-1]["period_end"] == next_midnight


def test_it_keeps_points_that_are_not_on_the_hour_as_their_own_periods(db: Connection) -> None:
    curve_points = [
        {"price": -0.25, "timestamp": "2026-03-04T06:17:23.1234567+00:00"},
        {"price": 0.5, "timestamp": "2026-03-04T07:17:23.1234567+00:00"},
        {"price": 0.75, "timestamp": "2026-03-04T11:45:00+00:00"},
    ]
    document = curve_event(curve_payload(curve_points, targets(1)), CREATED)

    store(db, document)

    periods = period_rows(db, document["eventId"])
    first = datetime(2026, 3, 4, 6, 17, 23, 123456, tzinfo=UTC)
    assert [(p["period_start"], p["period_end"]) for p in periods] == [
        (first, first + timedelta(hours=1)),
        (first + timedelta(hours=1), first + timedelta(hours=2)),
        (datetime(2026, 3, 4, 11, 45, tzinfo=UTC), datetime(2026, 3, 4, 12, 45, tzinfo=UTC)),
    ]
    assert [p["spark_timestamp"] for p in periods] == [p["timestamp"] for p in curve_points]


def test_it_takes_the_period_length_from_the_resolution(db: Connection) -> None:
    starts = [datetime(2026, 3, 4, 10, 0, tzinfo=UTC) + timedelta(minutes=15 * i) for i in range(4)]
    document = curve_event(
        curve_payload(points(starts, [1, 2, 3, 4]), targets(1), resolution="00:15:00"), CREATED
    )

    store(db, document)

    periods = period_rows(db, document["eventId"])
    assert [p["period_end"] for p in periods] == [s + timedelta(minutes=15) for s in starts]


def test_it_stores_an_empty_target_list_and_asks_for_nothing_more(db: Connection) -> None:
    hours = local_hours(date(2026, 3, 4))
    document = curve_event(curve_payload(points(hours, [0.1] * 24), []), CREATED)

    follow_ups = store(db, document)

    assert curve_row(db, document["eventId"])["target_count"] == 0
    assert len(period_rows(db, document["eventId"])) == 24
    assert decisions(db, document["eventId"]) == {}
    assert follow_ups == []


def test_it_stores_a_target_named_twice_once(db: Connection) -> None:
    named = targets(2)
    document = curve_event(
        curve_payload(points(local_hours(date(2026, 3, 4)), [0.1] * 24), [*named, named[0]]),
        CREATED,
    )

    store(db, document)

    assert target_set(db, document["eventId"]) == set(named)
    assert curve_row(db, document["eventId"])["target_count"] == 2


def test_it_stores_a_curve_handled_again_once(db: Connection) -> None:
    document = curve_event(
        curve_payload(points(local_hours(date(2026, 3, 4)), [0.1] * 24), targets(5)), CREATED
    )
    store(db, document)
    event = StoredEvent(
        event_id=document["eventId"],
        notification_type="PriceCurveCreated",
        payload_type="PriceCurve",
        created_at=CREATED,
        payload=document["payload"],
    )

    # What `events replay` does for a processed event.
    with db.transaction():
        follow_ups = handle_price_curve_created(db, event, SETTINGS)

    assert len(period_rows(db, document["eventId"])) == 24
    assert len(target_set(db, document["eventId"])) == 5
    assert len(decisions(db, document["eventId"])) == 5
    # Pending plans are still pushed on.
    assert follow_ups == [
        FollowUp("curves.dispatch_curve", "dispatch", {"event_id": document["eventId"]})
    ]


def bad(change: Any) -> dict[str, Any]:
    payload = curve_payload(points(local_hours(date(2026, 3, 4)), [0.1] * 24), targets(2))
    change(payload)
    return payload


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (bad(lambda p: p["priceCurveDelta"].update(resolution="1h")), "resolution must be"),
        (bad(lambda p: p["priceCurveDelta"].update(resolution="00:00:00")), "longer than zero"),
        (bad(lambda p: p["priceCurveDelta"].update(resolution=None)), "resolution must be"),
        (bad(lambda p: p.pop("priceCurveDelta")), "priceCurveDelta must be an object"),
        (bad(lambda p: p.update(priceArea="")), "priceArea"),
        (bad(lambda p: p["priceCurveDelta"].update(energyUnit="GWh")), "energyUnit"),
        (bad(lambda p: p["priceCurveDelta"]["points"][3].update(price="cheap")), "point 3"),
        (bad(lambda p: p["priceCurveDelta"]["points"][4].update(price=True)), "point 4"),
        (
            bad(lambda p: p["priceCurveDelta"]["points"][5].update(timestamp="2026-03-04T05:00")),
            "without a UTC offset",
        ),
        (
            bad(
                lambda p: p["priceCurveDelta"]["points"][6].update(
                    timestamp="2026-03-04T04:30:00+00:00"
                )
            ),
            "overlap",
        ),
        (bad(lambda p: p["targets"][1].pop("locationId")), "target 1: locationId"),
        (bad(lambda p: p.update(targets={"resourceId": "x"})), "targets must be an array"),
    ],
)
def test_it_keeps_an_unusable_curve_as_a_failed_event_with_the_reason(
    db: Connection, worker_app: Celery, payload: dict[str, Any], reason: str
) -> None:
    document = curve_event(payload, CREATED)
    raw = json.dumps(document).encode()

    result = ingest(
        db,
        delivery_id=str(uuid.uuid4()),
        raw=raw,
        received_at=CREATED,
        source="webhook",
        settings=SETTINGS,
        sender=worker_app,
    )

    assert result.outcome == "new"
    assert result.status == "failed"
    event = db.execute(
        "SELECT status, error FROM events WHERE event_id = %s", (document["eventId"],)
    ).fetchone()
    assert event is not None
    assert event["status"] == "failed"
    assert reason in event["error"]
    assert event["error"].startswith("CurveError")
    stored = db.execute("SELECT count(*) AS n FROM price_curves").fetchone()
    assert stored is not None
    assert stored["n"] == 0


def test_it_stores_a_curve_without_points_and_skips_its_targets(db: Connection) -> None:
    named = targets(2)
    document = curve_event(curve_payload([], named), CREATED)

    follow_ups = store(db, document)

    curve = curve_row(db, document["eventId"])
    assert (curve["local_date"], curve["first_period_start"], curve["target_count"]) == (
        None,
        None,
        2,
    )
    rows = decisions(db, document["eventId"])
    assert {(r["status"], r["reason"]) for r in rows.values()} == {
        ("skipped", "the curve has no periods")
    }
    assert follow_ups == []
