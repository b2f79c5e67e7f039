"""`GET /users/{userId}/compensation`: the current month's compensation per location, from
accepted reports (kWh x |delta| over negative-delta hours; see sandbox.compensation)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.sandbox import AREA_1_METER, IN_AREA_1, OUTSIDE_AREAS, SandboxHandle
from tests.spec import spec_checked_json

OTHER_AREA_1_METER = "707057500000100002"
JUNE_HOURS = [
    "2025-06-11T00:00:00+00:00",
    "2025-06-11T01:00:00+00:00",
    "2025-06-11T02:00:00+00:00",
]
JUNE_PRICES = [-0.5, -0.25, 0.4]
HOME = ("alice-charger", "alice-home")
SHED = ("alice-pump", "alice-shed")


@pytest.fixture
def alice(sandbox: SandboxHandle) -> SandboxHandle:
    """Alice, on 2025-06-12: a metered home with a charger, and a shed without a meter point
    with a heat pump, both in Area 1."""
    sandbox.control.set_clock("2025-06-12T08:00:00+00:00", frozen=True)
    sandbox.add_user("alice")
    sandbox.add_location("alice", "alice-home", coordinates=IN_AREA_1, meterPointIds=[AREA_1_METER])
    sandbox.add_resource("alice", "alice-home", "alice-charger")
    sandbox.add_location("alice", "alice-shed", coordinates=IN_AREA_1)
    sandbox.add_resource("alice", "alice-shed", "alice-pump", "HVAC")
    return sandbox


def _event(
    sandbox: SandboxHandle,
    hours: list[str] = JUNE_HOURS,
    prices: list[float] = JUNE_PRICES,
    *,
    unit: str = "kWh",
    currency: str = "SEK",
) -> str:
    points = [{"price": p, "timestamp": h} for p, h in zip(prices, hours, strict=True)]
    event = sandbox.simulate_price_curve(
        {
            "targets": [
                dict(zip(("resourceId", "locationId"), t, strict=True)) for t in (HOME, SHED)
            ],
            "priceCurveDelta": {
                "points": points,
                "energyUnit": unit,
                "currency": currency,
                "resolution": "01:00:00",
            },
            "priceArea": "NO4",
        }
    )
    event_id: str = event["id"]
    return event_id


def _report(
    sandbox: SandboxHandle,
    event_id: str,
    target: tuple[str, str],
    kwh: list[float],
    *,
    hours: list[str] = JUNE_HOURS,
    meter_point_id: str | None = None,
) -> None:
    usage = {
        "resourceId": target[0],
        "locationId": target[1],
        "meterPointId": meter_point_id,
        "points": [{"timestamp": h, "kiloWattHours": k} for h, k in zip(hours, kwh, strict=True)],
        "resolution": "01:00:00",
        "payloadType": "EnergyUsage",
    }
    response = sandbox.api("POST", "/reports", json={"eventId": event_id, "payloads": [usage]})
    assert response.status_code == 200, response.text


def _compensation(sandbox: SandboxHandle, user_id: str = "alice") -> dict[str, Any]:
    response = sandbox.api("GET", f"/users/{user_id}/compensation")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = spec_checked_json(response)
    return body


def _location(body: dict[str, Any], location_id: str) -> dict[str, Any]:
    matching: list[dict[str, Any]] = [
        c for c in body["locationCompensations"] if c["locationId"] == location_id
    ]
    (found,) = matching
    return found


def test_it_pays_kwh_times_the_delta_for_the_hours_that_invited_usage(
    alice: SandboxHandle,
) -> None:
    event_id = _event(alice)

    _report(alice, event_id, HOME, [2.0, 4.0, 10.0])

    body = _compensation(alice)
    assert body["userId"] == "alice"
    assert body["period"] == {"from": "2025-06-01", "to": "2025-06-30"}
    # 2 kWh x 0.5 + 4 kWh x 0.25; the hour with a positive delta earns nothing.
    assert _location(body, "alice-home") == {
        "locationId": "alice-home",
        "meterPointIds": [AREA_1_METER],
        "activeAmount": 2.0,
        "blockedAmount": 0.0,
        "currency": "SEK",
        "problems": [],
    }


def test_it_blocks_the_amount_of_a_location_without_a_meter_point(alice: SandboxHandle) -> None:
    event_id = _event(alice)

    _report(alice, event_id, SHED, [1.0, 1.0, 1.0])

    shed = _location(_compensation(alice), "alice-shed")
    assert (shed["activeAmount"], shed["blockedAmount"]) == (0.0, 0.75)
    assert [p["problemType"] for p in shed["problems"]] == ["MissingMpidOnLocation"]
    assert "alice-shed" in shed["problems"][0]["message"]


def test_it_refuses_a_payload_whose_meter_point_is_not_the_locations(
    alice: SandboxHandle,
) -> None:
    # Our model of Spark, not documented behaviour (sandbox.reports): refused, naming it.
    usage = {
        "resourceId": HOME[0],
        "locationId": HOME[1],
        "meterPointId": OTHER_AREA_1_METER,
        "points": [{"timestamp": JUNE_HOURS[0], "kiloWattHours": 1.0}],
        "resolution": "01:00:00",
        "payloadType": "EnergyUsage",
    }
    response = alice.api("POST", "/reports", json={"eventId": _event(alice), "payloads": [usage]})

    assert response.status_code == 400
    assert "alice-charger" in response.text
    assert OTHER_AREA_1_METER in response.text


def test_it_blocks_a_report_whose_meter_point_the_location_no_longer_has(
    alice: SandboxHandle,
) -> None:
    event_id = _event(alice)
    other_event_id = _event(alice)
    _report(alice, event_id, HOME, [2.0, 0.0, 0.0], meter_point_id=AREA_1_METER)
    _report(alice, other_event_id, HOME, [0.0, 4.0, 0.0])
    moved = alice.api(
        "PATCH", "/users/alice/locations/alice-home", json={"meterPointIds": [OTHER_AREA_1_METER]}
    )
    assert moved.status_code == 200, moved.text

    home = _location(_compensation(alice), "alice-home")
    assert (home["activeAmount"], home["blockedAmount"]) == (1.0, 1.0)
    (problem,) = home["problems"]
    assert problem["problemType"] == "CompensationMpidDoesNotMatchLocation"
    assert AREA_1_METER in problem["message"]


def test_it_converts_deltas_per_mwh_to_deltas_per_kwh(alice: SandboxHandle) -> None:
    event_id = _event(alice, prices=[-500.0, -100.0, 50.0], unit="MWh")

    _report(alice, event_id, HOME, [3.0, 10.0, 1.0])

    assert _location(_compensation(alice), "alice-home")["activeAmount"] == 2.5


def test_it_adds_up_events_and_counts_only_the_latest_report_of_each(
    alice: SandboxHandle,
) -> None:
    first, second = _event(alice), _event(alice)

    _report(alice, first, HOME, [2.0, 0.0, 0.0])
    _report(alice, first, HOME, [6.0, 0.0, 0.0])
    _report(alice, second, HOME, [0.0, 4.0, 0.0])

    assert _location(_compensation(alice), "alice-home")["activeAmount"] == 4.0


def test_it_counts_a_report_in_its_events_month(alice: SandboxHandle) -> None:
    may = ["2025-05-31T10:00:00+00:00", "2025-05-31T11:00:00+00:00", "2025-05-31T12:00:00+00:00"]
    event_id = _event(alice, hours=may)
    # Reported on June 1, within May's grace.
    alice.control.set_clock("2025-06-01T10:00:00+00:00", frozen=True)
    _report(alice, event_id, HOME, [2.0, 0.0, 0.0], hours=may)

    june = _compensation(alice)
    alice.control.set_clock("2025-05-31T20:00:00+00:00", frozen=True)
    may_body = _compensation(alice)

    assert _location(june, "alice-home")["activeAmount"] == 0.0
    assert may_body["period"] == {"from": "2025-05-01", "to": "2025-05-31"}
    assert _location(may_body, "alice-home")["activeAmount"] == 1.0


def test_it_lists_every_location_with_its_areas_currency_before_any_report(
    alice: SandboxHandle,
) -> None:
    alice.add_location("alice", "alice-flat", coordinates=OUTSIDE_AREAS)

    body = _compensation(alice)

    assert [c["locationId"] for c in body["locationCompensations"]] == [
        "alice-home",
        "alice-shed",
        "alice-flat",
    ]
    for compensation in body["locationCompensations"]:
        assert compensation["activeAmount"] == compensation["blockedAmount"] == 0
        assert compensation["currency"] == "NOK"
    assert _location(body, "alice-home")["problems"] == []


def test_it_pays_nothing_to_a_user_deleted_during_the_month(alice: SandboxHandle) -> None:
    event_id = _event(alice)
    _report(alice, event_id, HOME, [2.0, 4.0, 10.0])

    alice.api("DELETE", "/users/alice")
    body = _compensation(alice)

    assert body["period"] == {"from": "2025-06-01", "to": "2025-06-30"}
    assert body["locationCompensations"] == []


def test_it_does_not_know_a_user_deleted_in_an_earlier_month(alice: SandboxHandle) -> None:
    alice.api("DELETE", "/users/alice")
    alice.control.set_clock("2025-07-01T08:00:00+00:00", frozen=True)

    response = alice.api("GET", "/users/alice/compensation")

    assert response.status_code == 404
    assert spec_checked_json(response) is None


def test_it_does_not_know_an_unknown_user(sandbox: SandboxHandle) -> None:
    response = sandbox.api("GET", "/users/nobody/compensation")

    assert response.status_code == 404
    assert spec_checked_json(response) is None
