"""The daily `PriceCurve` events sent when the sandbox clock passes 13:00 local, and the
`/_sandbox/curves/daily` and `/_sandbox/curves/run` controls."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from sandbox.app import PRICE_AREA_CURRENCIES
from sandbox.clock import parse_timestamp
from sandbox.daily_curves import MAX_CATCH_UP_DAYS
from tests.fixtures.sandbox import (
    AREA_1_METER,
    HTTP_TIMEOUT,
    IN_AREA_1,
    IN_AREA_2,
    OUTSIDE_AREAS,
    TEST_CONFIG,
    SandboxHandle,
    WebhookReceiver,
)
from tests.spec import assert_notification_matches, assert_schema_matches

OSLO = ZoneInfo("Europe/Oslo")
# 12:59 in Oslo on a summer day (UTC+2); the curve then covers 2025-06-11.
BEFORE_13 = "2025-06-10T12:59:00+02:00"
NEXT_DAY_START = datetime(2025, 6, 10, 22, tzinfo=UTC)


def _enrolled_user(
    sandbox: SandboxHandle,
    user_id: str,
    coordinates: dict[str, float] = IN_AREA_1,
    *,
    enroll: bool = True,
    vehicle: bool = True,
) -> None:
    """A user with a home (and a charger there) at `coordinates`, maybe a vehicle, enrolled."""
    sandbox.add_user(user_id)
    sandbox.add_location(user_id, f"{user_id}-home", coordinates=coordinates)
    sandbox.add_resource(user_id, f"{user_id}-home", f"{user_id}-charger")
    if vehicle:
        sandbox.add_vehicle(user_id, f"{user_id}-car")
    if enroll:
        sandbox.enroll(user_id)


def _targets(event: dict[str, Any]) -> set[tuple[str, str]]:
    return {(t["resourceId"], t["locationId"]) for t in event["payload"]["targets"]}


def _starts(event: dict[str, Any]) -> list[datetime]:
    return [parse_timestamp(p["timestamp"]) for p in event["payload"]["priceCurveDelta"]["points"]]


def _prices(event: dict[str, Any]) -> list[float]:
    return [p["price"] for p in event["payload"]["priceCurveDelta"]["points"]]


def _pass_13(sandbox: SandboxHandle) -> list[dict[str, Any]]:
    sandbox.control.set_clock(BEFORE_13, frozen=True)
    before = sandbox.price_curve_events()
    assert before == []
    sandbox.control.advance_clock(120)
    return sandbox.price_curve_events()


def test_it_sends_enrolled_users_resources_in_eligible_areas_the_next_days_curve_at_13(
    sandbox: SandboxHandle,
) -> None:
    _enrolled_user(sandbox, "alice")
    sandbox.add_location("alice", "alice-cabin", coordinates=OUTSIDE_AREAS)
    sandbox.add_resource("alice", "alice-cabin", "alice-heater", "HVAC")
    _enrolled_user(sandbox, "bob", OUTSIDE_AREAS)
    _enrolled_user(sandbox, "carol", enroll=False)
    _enrolled_user(sandbox, "dave")
    sandbox.api("DELETE", "/users/dave")
    _enrolled_user(sandbox, "erin")
    sandbox.api("DELETE", "/users/erin/enrollment")

    (event,) = _pass_13(sandbox)

    assert_schema_matches("GetEventResponse", event)
    assert _targets(event) == {("alice-charger", "alice-home"), ("alice-car", "alice-home")}
    payload = event["payload"]
    assert payload["priceArea"] == "NO4"
    assert payload["priceCurveDelta"]["currency"] == "NOK"
    assert payload["priceCurveDelta"]["energyUnit"] == "kWh"
    assert payload["priceCurveDelta"]["resolution"] == "01:00:00"
    assert event["createdAt"] == "2025-06-10T11:01:00+00:00"
    starts = _starts(event)
    assert starts == sorted(set(starts))
    assert all(NEXT_DAY_START <= s < NEXT_DAY_START + timedelta(days=1) for s in starts)
    assert all(s.minute == 0 and s.second == 0 for s in starts)
    # A realistic subset of the day, with deltas of both signs.
    assert 3 <= len(starts) < 24
    assert min(_prices(event)) < 0 < max(_prices(event))


def test_it_sends_each_day_once_however_the_clock_moves(sandbox: SandboxHandle) -> None:
    _enrolled_user(sandbox, "alice")
    sandbox.control.set_clock("2025-06-10T10:00:00+02:00", frozen=True)

    sandbox.control.advance_clock(2 * 3600)
    at_noon = sandbox.price_curve_events()
    sandbox.control.advance_clock(2 * 3600)
    after_13 = sandbox.price_curve_events()
    sandbox.control.set_clock("2025-06-10T12:00:00+02:00", frozen=True)
    sandbox.control.set_clock("2025-06-10T14:00:00+02:00", frozen=True)
    after_going_back = sandbox.price_curve_events()
    sandbox.control.advance_clock(24 * 3600)
    next_day = sandbox.price_curve_events()

    assert at_noon == []
    assert len(after_13) == 1
    assert after_going_back == after_13
    assert len(next_day) == 2
    assert _starts(next_day[1])[0] > _starts(next_day[0])[-1]
    assert sandbox.control.daily_curves()["daysRun"] == ["2025-06-10", "2025-06-11"]


def test_it_sends_one_curve_for_each_day_the_clock_is_moved_across(
    sandbox: SandboxHandle,
) -> None:
    _enrolled_user(sandbox, "alice")
    sandbox.control.set_clock("2025-06-10T12:00:00+02:00", frozen=True)

    sandbox.control.advance_clock(3 * 24 * 3600)

    events = sandbox.price_curve_events()
    assert len(events) == 3
    covered = [_starts(e)[0].astimezone(OSLO).date().isoformat() for e in events]
    assert covered == ["2025-06-11", "2025-06-12", "2025-06-13"]


def test_it_catches_up_at_most_a_month_of_days_in_one_move(sandbox: SandboxHandle) -> None:
    _enrolled_user(sandbox, "alice", vehicle=False)
    sandbox.control.set_clock("2025-06-10T12:00:00+02:00", frozen=True)

    sandbox.control.advance_clock(40 * 24 * 3600)

    events = sandbox.price_curve_events()
    assert len(events) == MAX_CATCH_UP_DAYS
    last = _starts(events[-1])[0].astimezone(OSLO).date()
    # The last 13:00 passed is on July 19 (the move ends at noon on July 20).
    assert last.isoformat() == "2025-07-20"


def test_it_notices_the_clock_moved_in_process_within_a_second(sandbox: SandboxHandle) -> None:
    _enrolled_user(sandbox, "alice")
    sandbox.clock.set(datetime.fromisoformat(BEFORE_13), frozen=True)
    sandbox.sandbox.curves.rebase()

    sandbox.clock.advance(120)

    deadline = time.monotonic() + 3
    while not sandbox.price_curve_events() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sandbox.price_curve_events()) == 1


@pytest.mark.parametrize(
    ("before_13", "hours"),
    [
        ("2025-03-29T12:59:00+01:00", 23),  # tomorrow springs forward in Oslo
        ("2025-10-25T12:59:00+02:00", 25),  # tomorrow falls back
        ("2025-06-10T12:59:00+02:00", 24),
    ],
)
def test_it_covers_every_hour_of_a_dst_day_when_asked_for_the_full_day(
    sandbox: SandboxHandle, before_13: str, hours: int
) -> None:
    _enrolled_user(sandbox, "alice")
    sandbox.control.set_daily_curves(full_day=True)
    sandbox.control.set_clock(before_13, frozen=True)

    sandbox.control.advance_clock(120)

    (event,) = sandbox.price_curve_events()
    starts = _starts(event)
    assert len(starts) == hours
    assert starts == [starts[0] + timedelta(hours=n) for n in range(hours)]
    assert starts[0].astimezone(OSLO).hour == 0
    assert (starts[-1] + timedelta(hours=1)).astimezone(OSLO).hour == 0


def test_it_keeps_a_partial_curve_within_a_dst_day(sandbox: SandboxHandle) -> None:
    _enrolled_user(sandbox, "alice")
    sandbox.control.set_clock("2025-10-25T12:59:00+02:00", frozen=True)

    sandbox.control.advance_clock(120)

    (event,) = sandbox.price_curve_events()
    day_start = datetime(2025, 10, 25, 22, tzinfo=UTC)  # 00:00 CEST on the 26th
    assert all(day_start <= s < day_start + timedelta(hours=25) for s in _starts(event))


@pytest.mark.parametrize(
    ("area", "currency"), [("NO1", "NOK"), ("SE3", "SEK"), ("DK1", "DKK"), ("FI", "EUR")]
)
def test_it_quotes_each_neighbourhoods_curve_in_its_price_areas_currency(
    sandbox: SandboxHandle, area: str, currency: str
) -> None:
    sandbox.control.set_neighbourhoods(
        [
            {
                "id": "metered",
                "name": "Metered",
                "meterPointIds": [AREA_1_METER],
                "polygon": [[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]],
                "priceArea": area,
            }
        ]
    )
    sandbox.add_user("alice")
    sandbox.add_location("alice", "alice-home", meterPointIds=[AREA_1_METER])
    sandbox.add_resource("alice", "alice-home", "alice-charger")
    sandbox.enroll("alice")

    (event,) = _pass_13(sandbox)

    assert event["payload"]["priceArea"] == area
    assert (
        event["payload"]["priceCurveDelta"]["currency"] == currency == PRICE_AREA_CURRENCIES[area]
    )


def test_it_sends_one_event_per_neighbourhood(sandbox: SandboxHandle) -> None:
    _enrolled_user(sandbox, "alice", IN_AREA_1)
    _enrolled_user(sandbox, "bob", IN_AREA_2, vehicle=False)

    events = _pass_13(sandbox)

    assert sorted(map(_targets, events), key=len) == [
        {("bob-charger", "bob-home")},
        {("alice-charger", "alice-home"), ("alice-car", "alice-home")},
    ]
    curves = sandbox.control.daily_curves()["curves"]
    assert {c["neighbourhoodId"] for c in curves} == {"area-1", "area-2"}
    assert {c["eventId"] for c in curves} == {e["id"] for e in events}


def test_it_sends_nothing_to_a_neighbourhood_without_targets(sandbox: SandboxHandle) -> None:
    _enrolled_user(sandbox, "carol", enroll=False)
    sandbox.control.set_clock(BEFORE_13, frozen=True)

    sandbox.control.advance_clock(120)

    assert sandbox.price_curve_events() == []
    assert sandbox.control.daily_curves()["daysRun"] == ["2025-06-10"]


def test_it_sends_a_changed_curve_for_half_the_targets_at_15(sandbox: SandboxHandle) -> None:
    for name in ("alice", "bob", "carol"):
        _enrolled_user(sandbox, name)
    sandbox.control.set_daily_curves(changed_curve_probability=1)
    (first,) = _pass_13(sandbox)

    sandbox.control.set_clock("2025-06-10T14:59:00+02:00", frozen=True)
    before_15 = sandbox.price_curve_events()
    sandbox.control.advance_clock(120)
    after_15 = sandbox.price_curve_events()

    assert before_15 == [first]
    changed = after_15[1]
    assert changed["id"] != first["id"]
    assert changed["createdAt"] == "2025-06-10T13:01:00+00:00"
    assert len(_targets(changed)) == 3
    assert _targets(changed) < _targets(first)
    assert _starts(changed) == _starts(first)
    differing = [(a, b) for a, b in zip(_prices(first), _prices(changed), strict=True) if a != b]
    assert differing
    assert all((a < 0) == (b < 0) for a, b in differing)
    assert changed["payload"]["priceArea"] == first["payload"]["priceArea"]
    (curve,) = sandbox.control.daily_curves()["curves"]
    assert (curve["eventId"], curve["changedEventId"]) == (first["id"], changed["id"])
    assert curve["changeDue"] == "2025-06-10T13:00:00+00:00"


def test_it_sends_no_changed_curve_when_the_probability_is_zero(sandbox: SandboxHandle) -> None:
    _enrolled_user(sandbox, "alice")
    sandbox.control.set_daily_curves(changed_curve_probability=0)
    _pass_13(sandbox)

    sandbox.control.advance_clock(6 * 3600)

    assert len(sandbox.price_curve_events()) == 1
    (curve,) = sandbox.control.daily_curves()["curves"]
    assert curve["changedEventId"] is None


def test_it_delivers_daily_curves_to_subscribed_webhooks(
    sandbox: SandboxHandle, webhook_receiver: WebhookReceiver
) -> None:
    sandbox.register_webhook(webhook_receiver.url, notification_types=("PriceCurveCreated",))
    _enrolled_user(sandbox, "alice")

    (event,) = _pass_13(sandbox)

    (received,) = webhook_receiver.wait_for(1)
    assert_notification_matches(received.body)
    notification = json.loads(received.body)
    assert notification["eventId"] == event["id"]
    assert notification["notificationType"] == "PriceCurveCreated"
    assert notification["payload"] == event["payload"]


def test_it_runs_the_current_day_on_request_once(sandbox: SandboxHandle) -> None:
    _enrolled_user(sandbox, "alice")
    sandbox.control.set_clock("2025-06-10T09:00:00+02:00", frozen=True)

    sent = sandbox.control.run_daily_curves()
    again = sandbox.control.run_daily_curves()
    sandbox.control.advance_clock(5 * 3600)

    assert len(sent) == 1
    assert again == []
    assert sandbox.price_curve_events() == sent
    assert _starts(sent[0])[0] >= NEXT_DAY_START


def test_it_sends_a_late_runs_changed_curve_at_once(sandbox: SandboxHandle) -> None:
    _enrolled_user(sandbox, "alice")
    sandbox.control.set_daily_curves(changed_curve_probability=1)
    sandbox.control.set_clock("2025-06-10T16:00:00+02:00", frozen=True)

    sent = sandbox.control.run_daily_curves()

    assert len(sent) == 2
    assert sent[0]["id"] != sent[1]["id"]


def test_it_sends_nothing_when_switched_off(sandbox: SandboxHandle) -> None:
    _enrolled_user(sandbox, "alice")
    view = sandbox.control.set_daily_curves(enabled=False)

    events = _pass_13(sandbox)

    assert view["enabled"] is False
    assert events == []


def test_it_sends_nothing_for_the_days_skipped_back_to_real_time(sandbox: SandboxHandle) -> None:
    _enrolled_user(sandbox, "alice")
    sandbox.control.set_clock("2025-06-10T12:00:00+02:00", frozen=True)

    sandbox.control.real_clock()

    assert sandbox.price_curve_events() == []


def test_it_restores_the_configured_switches_on_reset(sandbox: SandboxHandle) -> None:
    defaults = sandbox.control.daily_curves()
    sandbox.control.set_daily_curves(
        enabled=False, changed_curve_probability=1, hour=7, full_day=True
    )

    sandbox.control.reset()

    assert defaults == {
        "enabled": True,
        "changedCurveProbability": TEST_CONFIG.changed_curve_probability,
        "hour": 13,
        "fullDay": False,
        "daysRun": [],
        "curves": [],
    }
    assert sandbox.control.daily_curves() == defaults


def test_it_runs_at_the_configured_hour(sandbox: SandboxHandle) -> None:
    _enrolled_user(sandbox, "alice")
    sandbox.control.set_daily_curves(hour=7)
    sandbox.control.set_clock("2025-06-10T06:59:00+02:00", frozen=True)

    sandbox.control.advance_clock(120)

    assert len(sandbox.price_curve_events()) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"enabled": "yes"},
        {"fullDay": 1},
        {"changedCurveProbability": 1.5},
        {"changedCurveProbability": "often"},
        {"hour": 24},
        {"hour": 12.5},
    ],
)
def test_it_rejects_bad_switches(sandbox: SandboxHandle, body: dict[str, Any]) -> None:
    response = requests.post(sandbox.control.url + "/curves/daily", json=body, timeout=HTTP_TIMEOUT)

    assert response.status_code == 400
    assert response.json()["error"]
