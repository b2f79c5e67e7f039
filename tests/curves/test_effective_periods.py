"""Supersession: `effective_periods_for_event` (the reports' query) and `iter_target_plans`
(what dispatchers get) agree on what each curve still asks of each target."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from shared.db import Connection
from tests.curves.support import (
    Target,
    curve_event,
    curve_payload,
    effective,
    local_hours,
    points,
    store,
    targets,
)
from worker.curves.plans import TargetPlan, iter_target_plans
from worker.reports.builder import has_newer_curve

DAY = date(2026, 3, 4)
HOURS = local_hours(DAY)
EARLY = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
LATE = datetime(2026, 3, 3, 15, 30, tzinfo=UTC)
HOUR = timedelta(hours=1)


def plans(conn: Connection, event_id: str, page_size: int = 1000) -> dict[Target, TargetPlan]:
    found = {
        (plan.resource_id, plan.location_id): plan
        for plan in iter_target_plans(conn, event_id, page_size=page_size)
    }
    conn.commit()
    return found


def in_force(plan: TargetPlan) -> dict[datetime, float]:
    return {period.start: period.price for period in plan.periods}


@pytest.mark.parametrize("changed_first", [False, True], ids=["in-order", "changed-first"])
def test_it_lets_a_changed_curve_take_over_its_periods_for_its_targets_only(
    db: Connection, changed_first: bool
) -> None:
    everyone = targets(40)
    half = everyone[::2]
    original = curve_event(
        curve_payload(points(HOURS, [-0.1 * (i + 1) for i in range(24)]), everyone), EARLY
    )
    # The changed curve carries only the periods that change: 10:00 to 16:00 UTC.
    changed_hours = HOURS[11:17]
    changed = curve_event(curve_payload(points(changed_hours, [0.9] * 6), half), LATE)
    for document in [changed, original] if changed_first else [original, changed]:
        store(db, document)

    original_view = effective(db, original["eventId"])
    changed_view = effective(db, changed["eventId"])

    own = dict(zip(HOURS, [-0.1 * (i + 1) for i in range(24)], strict=True))
    for target in everyone:
        if target in half:
            assert original_view[target] == {h: p for h, p in own.items() if h not in changed_hours}
            assert changed_view[target] == dict.fromkeys(changed_hours, 0.9)
        else:
            assert original_view[target] == own
            assert target not in changed_view
    # The Python plans say the same, and name who took over.
    original_plans = plans(db, original["eventId"], page_size=7)
    assert {t: in_force(plan) for t, plan in original_plans.items()} == original_view
    for target in half:
        taken = original_plans[target].superseded
        assert [p.start for p in taken] == changed_hours
        assert {p.superseded_by for p in taken} == {changed["eventId"]}
        assert {p.superseding_price for p in taken} == {0.9}
    assert all(not original_plans[t].superseded for t in everyone if t not in half)


def test_it_hands_each_period_to_the_latest_curve_that_covers_it(db: Connection) -> None:
    target = targets(1)
    first = curve_event(curve_payload(points(HOURS, [0.1] * 24), target), EARLY)
    second = curve_event(
        curve_payload(points(HOURS[:12], [0.2] * 12), target), EARLY + timedelta(hours=1)
    )
    third = curve_event(curve_payload(points(HOURS[6:8], [0.3] * 2), target), LATE)
    # Arrival order is not creation order.
    for document in (third, first, second):
        store(db, document)

    assert effective(db, first["eventId"])[target[0]] == dict.fromkeys(HOURS[12:], 0.1)
    second_hours = HOURS[:6] + HOURS[8:12]
    assert effective(db, second["eventId"])[target[0]] == dict.fromkeys(second_hours, 0.2)
    assert effective(db, third["eventId"])[target[0]] == dict.fromkeys(HOURS[6:8], 0.3)
    taken = {
        p.start: (p.superseded_by, p.superseding_price)
        for p in plans(db, first["eventId"])[target[0]].superseded
    }
    assert taken[HOURS[0]] == (second["eventId"], 0.2)
    assert taken[HOURS[6]] == (third["eventId"], 0.3)
    assert len(taken) == 12


def test_it_supersedes_a_period_only_where_a_newer_curve_covers_all_of_it(
    db: Connection,
) -> None:
    target = targets(1)
    start = datetime(2026, 3, 4, 6, 17, 23, tzinfo=UTC)
    older = curve_event(
        curve_payload(points([start + timedelta(hours=i) for i in range(4)], [0.1] * 4), target),
        EARLY,
    )
    # 07:00-09:00 overlaps the older curve's 06:17-07:17 and 08:17-09:17 in part, and
    # covers its 07:17-08:17 whole (with two of its periods): only that one moves, so the
    # minutes the newer curve does not cover are still reported by the older one.
    newer = curve_event(
        curve_payload(
            points([datetime(2026, 3, 4, h, 0, tzinfo=UTC) for h in (7, 8)], [0.5] * 2), target
        ),
        LATE,
    )
    store(db, older)
    store(db, newer)

    view = effective(db, older["eventId"])[target[0]]
    assert sorted(view) == [start, start + timedelta(hours=2), start + timedelta(hours=3)]


def test_it_leaves_periods_a_newer_curve_does_not_touch(db: Connection) -> None:
    target = targets(1)
    today = curve_event(curve_payload(points(HOURS, [0.1] * 24), target), EARLY)
    tomorrow_hours = local_hours(DAY + timedelta(days=1))
    tomorrow = curve_event(curve_payload(points(tomorrow_hours, [0.4] * 24), target), LATE)
    # Same target, another day: no overlap, nothing superseded.
    store(db, tomorrow)
    store(db, today)

    assert effective(db, today["eventId"])[target[0]] == dict.fromkeys(HOURS, 0.1)


def test_it_orders_curves_created_at_the_same_instant_by_event_id(db: Connection) -> None:
    target = targets(1)
    low = curve_event(curve_payload(points(HOURS, [0.1] * 24), target), EARLY, event_id="a-curve")
    high = curve_event(curve_payload(points(HOURS, [0.2] * 24), target), EARLY, event_id="b-curve")
    store(db, high)
    store(db, low)

    assert effective(db, "a-curve") == {}
    assert effective(db, "b-curve")[target[0]] == dict.fromkeys(HOURS, 0.2)


@pytest.mark.parametrize(
    ("own", "later"),
    [(1_000, 1), (1, 1_000)],
    ids=["large curve, small later one", "small curve, large later one"],
)
def test_it_finds_a_newer_curve_only_where_one_shares_a_target_and_overlaps(
    db: Connection, own: int, later: int
) -> None:
    # has_newer_curve decides whether a report build needs the supersession query; it looks
    # from a curve's targets below 1,000 of them, else from the later curves', so each case
    # runs both ways round.
    everyone = targets(max(own, later))
    mine, theirs = everyone[:own], everyone[:later]
    strangers = targets(later, prefix="other")
    original = curve_event(curve_payload(points(HOURS, [0.1] * 24), mine), EARLY)
    store(db, original)
    next_day = local_hours(DAY + timedelta(days=1))

    def newer(event: dict[str, Any]) -> bool:
        found = has_newer_curve(db, event["eventId"])
        db.commit()
        return found

    # Same hours, no shared target; a shared target the next day: neither supersedes.
    store(db, curve_event(curve_payload(points(HOURS[3:5], [0.2] * 2), strangers), LATE))
    store(db, curve_event(curve_payload(points(next_day, [0.2] * 24), theirs), LATE))
    assert newer(original) is False
    # An older curve for the same target and hours does not either.
    store(db, curve_event(curve_payload(points(HOURS, [0.3] * 24), theirs), EARLY - HOUR))
    assert newer(original) is False

    changed = curve_event(curve_payload(points(HOURS[3:5], [0.4] * 2), theirs), LATE)
    store(db, changed)
    assert newer(original) is True
    assert newer(changed) is False
