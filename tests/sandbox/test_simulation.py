"""`/simulation/events/pricecurve` and `/simulation/events/usereligibility`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sandbox.app import PRICE_AREA_CURRENCIES
from sandbox.clock import parse_timestamp
from tests.fixtures.sandbox import SPARK_TIMESTAMP, SandboxHandle
from tests.spec import assert_request_matches, spec_checked_json

PRICE_CURVE = "/simulation/events/pricecurve"
USER_ELIGIBILITY = "/simulation/events/usereligibility"


def _price_curve(sandbox: SandboxHandle, body: Any) -> dict[str, Any]:
    assert_request_matches("POST", PRICE_CURVE, body)
    response = sandbox.api("POST", PRICE_CURVE, json=body)
    assert response.status_code == 200, response.text
    event: dict[str, Any] = spec_checked_json(response)["simulatedEvent"]
    return event


def _hours(payload: dict[str, Any]) -> list[datetime]:
    return [parse_timestamp(p["timestamp"]) for p in payload["priceCurveDelta"]["points"]]


def test_it_simulates_a_random_price_curve_for_the_next_local_day(sandbox: SandboxHandle) -> None:
    # 12:00 UTC on a summer day is 14:00 in Oslo; tomorrow starts at 22:00 UTC today.
    sandbox.control.set_clock("2025-06-10T12:00:00+00:00", frozen=True)

    event = _price_curve(sandbox, {})

    payload = event["payload"]
    curve = payload["priceCurveDelta"]
    assert list(payload) == ["targets", "priceCurveDelta", "priceArea", "payloadType"]
    assert payload["payloadType"] == "PriceCurve"
    assert curve["currency"] == PRICE_AREA_CURRENCIES[payload["priceArea"]]
    assert curve["energyUnit"] == "kWh"
    assert curve["resolution"] == "01:00:00"
    hours = _hours(payload)
    assert hours[0] == datetime(2025, 6, 10, 22, tzinfo=UTC)
    assert hours == [hours[0] + timedelta(hours=n) for n in range(24)]
    prices = [p["price"] for p in curve["points"]]
    assert min(prices) < 0 < max(prices)
    assert payload["targets"]
    for target in payload["targets"]:
        assert set(target) == {"resourceId", "locationId"}
    assert event["createdAt"] == "2025-06-10T12:00:00+00:00"


@pytest.mark.parametrize(
    ("today", "hours"),
    [
        ("2025-03-29T12:00:00+00:00", 23),  # tomorrow is the spring-forward day in Oslo
        ("2025-10-25T12:00:00+00:00", 25),  # tomorrow is the fall-back day
    ],
)
def test_it_covers_the_whole_local_day_on_dst_changes(
    sandbox: SandboxHandle, today: str, hours: int
) -> None:
    sandbox.control.set_clock(today, frozen=True)

    event = _price_curve(sandbox, {})

    points = _hours(event["payload"])
    assert len(points) == hours
    assert points[-1] - points[0] == timedelta(hours=hours - 1)


@pytest.mark.parametrize(
    ("area", "currency"), [("NO1", "NOK"), ("SE4", "SEK"), ("DK2", "DKK"), ("FI", "EUR")]
)
def test_it_quotes_the_curve_in_the_price_areas_currency(
    sandbox: SandboxHandle, area: str, currency: str
) -> None:
    event = _price_curve(sandbox, {"priceArea": area})

    assert event["payload"]["priceArea"] == area
    assert event["payload"]["priceCurveDelta"]["currency"] == currency


def test_it_honours_explicit_targets_and_curve(sandbox: SandboxHandle) -> None:
    targets = [{"resourceId": "resource-1", "locationId": "location-1"}]
    curve = {
        "points": [
            {"price": 0.5, "timestamp": "2025-01-02T00:00:00+01:00"},
            {"price": -0.25, "timestamp": "2025-01-02T00:00:00Z"},
        ],
        "energyUnit": "MWh",
        "currency": "EUR",
        "resolution": "01:00:00",
    }

    event = _price_curve(
        sandbox, {"targets": targets, "priceCurveDelta": curve, "priceArea": "NO2"}
    )

    payload = event["payload"]
    assert payload["targets"] == targets
    assert payload["priceArea"] == "NO2"
    assert payload["priceCurveDelta"] == {
        "points": [
            {"price": 0.5, "timestamp": "2025-01-01T23:00:00+00:00"},
            {"price": -0.25, "timestamp": "2025-01-02T00:00:00+00:00"},
        ],
        "energyUnit": "MWh",
        "currency": "EUR",
        "resolution": "01:00:00",
    }


def test_it_keeps_points_that_are_not_on_the_hour(sandbox: SandboxHandle) -> None:
    points = [
        {"price": -0.1, "timestamp": "2025-01-02T00:15:30.5+01:00"},
        {"price": 0.2, "timestamp": "2025-01-02T07:45:00Z"},
    ]

    event = _price_curve(sandbox, {"priceCurveDelta": {"points": points}, "priceArea": "SE3"})

    curve = event["payload"]["priceCurveDelta"]
    assert curve["points"] == [
        {"price": -0.1, "timestamp": "2025-01-01T23:15:30.5000000+00:00"},
        {"price": 0.2, "timestamp": "2025-01-02T07:45:00+00:00"},
    ]
    assert curve["currency"] == "SEK"


def test_it_keeps_an_explicitly_empty_target_list(sandbox: SandboxHandle) -> None:
    event = _price_curve(sandbox, {"targets": []})

    assert event["payload"]["targets"] == []


def test_it_stores_the_simulated_event(sandbox: SandboxHandle) -> None:
    event = _price_curve(sandbox, {})

    stored = sandbox.api("GET", f"/events/{event['id']}")

    assert stored.json() == event


@pytest.mark.parametrize(
    "body",
    [
        {"priceArea": "XX"},
        {"priceArea": "Unknown"},
        {"targets": "everyone"},
        {"targets": [{"resourceId": "only-a-resource"}]},
        {"priceCurveDelta": {"points": [{"price": "high", "timestamp": "2025-01-01T00:00:00Z"}]}},
        {"priceCurveDelta": {"points": [{"price": 1, "timestamp": "2025-01-01T00:00:00"}]}},
        {"priceCurveDelta": {"currency": "USD"}},
        {"priceCurveDelta": {"resolution": "PT1H"}},
        [],
    ],
)
def test_it_rejects_invalid_requests_with_a_string(sandbox: SandboxHandle, body: Any) -> None:
    response = sandbox.api("POST", PRICE_CURVE, json=body)

    assert response.status_code == 400
    assert isinstance(spec_checked_json(response), str)
    assert sandbox.state.events_newest_first(0, 10) == ([], 0)


def test_it_requires_a_request_body_for_a_price_curve(sandbox: SandboxHandle) -> None:
    response = sandbox.api("POST", PRICE_CURVE)

    assert response.status_code == 400
    assert isinstance(spec_checked_json(response), str)


def test_it_simulates_a_user_eligibility_event(sandbox: SandboxHandle) -> None:
    sandbox.control.set_clock("2025-06-10T12:00:00.25+00:00", frozen=True)
    assert_request_matches("POST", USER_ELIGIBILITY)

    response = sandbox.api("POST", USER_ELIGIBILITY)

    assert response.status_code == 200
    event = spec_checked_json(response)["simulatedEvent"]
    payload = event["payload"]
    assert list(payload) == ["lastUpdated", "addedUsers", "removedUsers", "payloadType"]
    assert payload["payloadType"] == "UserEligibility"
    assert payload["addedUsers"]
    for user_id in payload["addedUsers"] + payload["removedUsers"]:
        assert str(uuid.UUID(user_id)) == user_id
    assert payload["lastUpdated"] == "2025-06-10T12:00:00.2500000+00:00"
    assert SPARK_TIMESTAMP.match(event["createdAt"])
    assert sandbox.api("GET", f"/events/{event['id']}").json() == event
