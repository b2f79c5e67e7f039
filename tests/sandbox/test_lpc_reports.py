"""`POST /reports` on an LPC event: energy reports (`LocationEnergyUsage` for a location event,
`EnergyUsage` for a resource event) checked against the event's targets, periods and
resolution, and when each report came relative to the event."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.sandbox import SandboxHandle
from tests.spec import assert_request_matches, spec_checked_json

# Three two-hour caps; the sandbox clock stands after them.
PERIODS = ["2026-03-04T10:00:00+00:00", "2026-03-04T12:00:00+00:00", "2026-03-04T14:00:00+00:00"]
AFTER = "2026-03-05T08:00:00+00:00"
CAPS = [
    {"maxPowerInKiloWatts": kw, "timestamp": t} for kw, t in zip((4, 3.5, 0), PERIODS, strict=True)
]


def _location_event(sandbox: SandboxHandle) -> str:
    locations = [
        {"location": {"locationId": "home-1", "meterPointId": "7070-a"}, "points": CAPS},
        {"location": {"locationId": "home-1", "meterPointId": "7070-b"}, "points": CAPS[:2]},
        {"location": {"locationId": "home-2", "meterPointId": "7070-c"}, "points": CAPS},
    ]
    answer = sandbox.api("POST", "/simulation/events/lpc/locations", json={"locations": locations})
    assert answer.status_code == 200, answer.text
    return str(spec_checked_json(answer)["simulatedEvent"]["id"])


def _resource_event(sandbox: SandboxHandle) -> str:
    resources = [
        {
            "resource": {"locationId": "home-1", "resourceId": "charger-1", "meterPointId": "m-1"},
            "points": CAPS,
        },
        {
            "resource": {"locationId": "home-2", "resourceId": "charger-2", "meterPointId": "m-2"},
            "points": CAPS[1:],
        },
    ]
    answer = sandbox.api("POST", "/simulation/events/lpc/resources", json={"resources": resources})
    assert answer.status_code == 200, answer.text
    return str(spec_checked_json(answer)["simulatedEvent"]["id"])


def _location_usage(
    location_id: str = "home-1",
    meter_point_id: str = "7070-a",
    periods: list[str] = PERIODS,
    resolution: str = "02:00:00",
) -> dict[str, Any]:
    return {
        "locationId": location_id,
        "meterPointId": meter_point_id,
        "points": [{"timestamp": t, "kiloWattHours": 7.5} for t in periods],
        "resolution": resolution,
        "payloadType": "LocationEnergyUsage",
    }


def _resource_usage(
    resource_id: str = "charger-1",
    location_id: str | None = "home-1",
    meter_point_id: str | None = "m-1",
    periods: list[str] = PERIODS,
) -> dict[str, Any]:
    return {
        "resourceId": resource_id,
        "locationId": location_id,
        "meterPointId": meter_point_id,
        "points": [{"timestamp": t, "kiloWattHours": 3.0} for t in periods],
        "resolution": "02:00:00",
        "curvePoints": None,
        "payloadType": "EnergyUsage",
    }


def _refusal(sandbox: SandboxHandle, event_id: str, *payloads: dict[str, Any]) -> str:
    answer = sandbox.api("POST", "/reports", json={"eventId": event_id, "payloads": payloads})
    assert answer.status_code == 400, answer.text
    return str(answer.json())


@pytest.fixture(autouse=True)
def _after_the_event(sandbox: SandboxHandle) -> None:
    sandbox.control.set_clock(AFTER, frozen=True)


def test_it_accepts_a_location_energy_report_in_the_events_periods_and_resolution(
    sandbox: SandboxHandle,
) -> None:
    event_id = _location_event(sandbox)
    body = {
        "eventId": event_id,
        # Not every target or period has to be reported; timestamps compare as instants.
        "payloads": [
            _location_usage(periods=["2026-03-04T10:00:00Z", PERIODS[2]]),
            _location_usage("home-1", "7070-b", PERIODS[:2], resolution="2:00:00"),
        ],
    }
    assert_request_matches("POST", "/reports", body)

    answer = sandbox.api("POST", "/reports", json=body)

    assert answer.status_code == 200, answer.text
    assert spec_checked_json(answer)["eventId"] == event_id
    [report] = sandbox.control.reports(event_id)["reports"]
    assert report["kind"] == "energy"
    assert report["body"] == body


def test_it_refuses_a_location_or_meter_point_the_event_does_not_name(
    sandbox: SandboxHandle,
) -> None:
    event_id = _location_event(sandbox)

    unknown_location = _refusal(sandbox, event_id, _location_usage("home-9", "7070-a"))
    other_meter = _refusal(sandbox, event_id, _location_usage("home-2", "7070-a"))
    no_meter = _refusal(sandbox, event_id, {**_location_usage(), "meterPointId": None})

    assert "location home-9 is not a target of event" in unknown_location
    assert "meterPointId 7070-a is not a meter point of location home-2" in other_meter
    assert "(it has 7070-c)" in other_meter
    assert "payloads[0].meterPointId is required" in no_meter
    assert sandbox.control.reports(event_id)["reports"] == []


def test_it_refuses_location_energy_outside_the_targets_periods_or_resolution(
    sandbox: SandboxHandle,
) -> None:
    event_id = _location_event(sandbox)

    hourly = _refusal(sandbox, event_id, _location_usage(resolution="01:00:00"))
    # Inside the first two-hour period, but not the start of one.
    mid_period = _refusal(sandbox, event_id, _location_usage(periods=["2026-03-04T11:00:00Z"]))
    # 14:00 is a period of meter 7070-a, not of 7070-b.
    other_target = _refusal(sandbox, event_id, _location_usage("home-1", "7070-b", PERIODS[2:]))
    twice = _refusal(sandbox, event_id, _location_usage(), _location_usage(periods=PERIODS[:1]))
    negative = _refusal(
        sandbox,
        event_id,
        {**_location_usage(), "points": [{"timestamp": PERIODS[0], "kiloWattHours": -1}]},
    )

    assert "resolution 01:00:00 does not match the event's resolution 02:00:00" in hourly
    assert "2026-03-04T11:00:00Z is not one of the periods of location home-1" in mid_period
    assert "is not one of the periods of location home-1, meter point 7070-b" in other_target
    assert "reported more than once: locationId=home-1, meterPointId=7070-a" in twice
    assert "kiloWattHours must be 0 or more" in negative


def test_it_checks_energy_usage_on_a_resource_lpc_event_against_its_targets_and_periods(
    sandbox: SandboxHandle,
) -> None:
    event_id = _resource_event(sandbox)

    unknown = _refusal(sandbox, event_id, _resource_usage("charger-9"))
    elsewhere = _refusal(sandbox, event_id, _resource_usage(location_id="home-2"))
    other_meter = _refusal(sandbox, event_id, _resource_usage(meter_point_id="m-2"))
    # charger-2's caps start at 12:00.
    outside = _refusal(sandbox, event_id, _resource_usage("charger-2", "home-2", "m-2"))
    location_payload = _refusal(sandbox, event_id, _location_usage())
    body = {
        "eventId": event_id,
        "payloads": [
            _resource_usage(),
            # The location and meter point may be left out: the event names them.
            _resource_usage("charger-2", None, None, PERIODS[1:]),
        ],
    }
    assert_request_matches("POST", "/reports", body)
    accepted = sandbox.api("POST", "/reports", json=body)

    assert "resource charger-9 is not a target of event" in unknown
    assert "resource charger-1 at location home-2 is not a target" in elsewhere
    assert "meterPointId m-2 is not the meter point of resource charger-1" in other_meter
    assert "2026-03-04T10:00:00+00:00 is not one of the periods of resource charger-2" in outside
    assert "must be ResourceLPCAcknowledgement or EnergyUsage" in location_payload
    assert accepted.status_code == 200, accepted.text


def test_it_refuses_a_report_mixing_acknowledgement_and_energy_and_one_after_the_deadline(
    sandbox: SandboxHandle,
) -> None:
    event_id = _location_event(sandbox)
    acknowledgement = {
        "payloadType": "LocationLPCAcknowledgement",
        "acknowledgedTargets": [
            {"locationId": "home-1", "meterPointId": "7070-a"},
            {"locationId": "home-1", "meterPointId": "7070-b"},
            {"locationId": "home-2", "meterPointId": "7070-c"},
        ],
        "declinedTargets": [],
    }

    mixed = _refusal(sandbox, event_id, acknowledgement, _location_usage())
    # The event's month (March) ends at midnight Oslo time; a day of grace follows.
    sandbox.control.set_clock("2026-04-01T22:00:00+00:00", frozen=True)
    late = _refusal(sandbox, event_id, _location_usage())
    late_ack = sandbox.api(
        "POST", "/reports", json={"eventId": event_id, "payloads": [acknowledgement]}
    )

    assert "not both: send them as two reports" in mixed
    assert "were due by 2026-04-01T22:00:00+00:00" in late
    assert late_ack.status_code == 200, late_ack.text


def test_it_shows_how_long_after_the_event_each_report_came(sandbox: SandboxHandle) -> None:
    event_id = _location_event(sandbox)
    acknowledgement = {
        "payloadType": "LocationLPCAcknowledgement",
        "acknowledgedTargets": [{"locationId": "home-1", "meterPointId": "7070-a"}],
        "declinedTargets": [
            {"locationId": "home-1", "meterPointId": "7070-b"},
            {"locationId": "home-2", "meterPointId": "7070-c"},
        ],
    }
    sandbox.control.advance_clock(42)

    sent = sandbox.api(
        "POST", "/reports", json={"eventId": event_id, "payloads": [acknowledgement]}
    )

    assert sent.status_code == 200, sent.text
    [report] = sandbox.control.reports(event_id)["reports"]
    assert report["kind"] == "acknowledgement"
    assert report["eventCreatedAt"] == AFTER
    assert report["createdAt"] == "2026-03-05T08:00:42+00:00"
    assert report["secondsAfterEvent"] == 42.0
