"""`POST /reports`: Spark's rules for energy-usage reports, and `GET /_sandbox/reports`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.fixtures.sandbox import SandboxHandle
from tests.spec import assert_request_matches, spec_checked_json

TARGETS = [
    {"resourceId": "charger-1", "locationId": "home-1"},
    {"resourceId": "car-1", "locationId": "home-1"},
    {"resourceId": "charger-2", "locationId": "home-2"},
]
HOURS = [
    "2025-06-11T00:00:00+00:00",
    "2025-06-11T01:00:00+00:00",
    "2025-06-11T02:00:00+00:00",
]
NOW = "2025-06-12T08:00:00+00:00"


def _event(
    sandbox: SandboxHandle,
    hours: list[str] = HOURS,
    targets: list[dict[str, str]] = TARGETS,
    resolution: str = "01:00:00",
) -> dict[str, Any]:
    points = [{"price": -0.5 + n, "timestamp": hour} for n, hour in enumerate(hours)]
    curve = {"points": points, "energyUnit": "kWh", "currency": "NOK", "resolution": resolution}
    return sandbox.simulate_price_curve(
        {"targets": targets, "priceCurveDelta": curve, "priceArea": "NO4"}
    )


def _usage(
    resource_id: str = "charger-1",
    location_id: str | None = "home-1",
    hours: list[str] = HOURS,
    kwh: Any = 1.5,
) -> dict[str, Any]:
    return {
        "resourceId": resource_id,
        "locationId": location_id,
        "meterPointId": None,
        "points": [{"timestamp": hour, "kiloWattHours": kwh} for hour in hours],
        "resolution": "01:00:00",
        "curvePoints": None,
        "payloadType": "EnergyUsage",
    }


def _report(event_id: str, *usages: dict[str, Any]) -> dict[str, Any]:
    return {"eventId": event_id, "payloads": list(usages) or [_usage()]}


def _post(sandbox: SandboxHandle, body: Any) -> requests.Response:
    return sandbox.api("POST", "/reports", json=body)


@pytest.fixture
def event(sandbox: SandboxHandle) -> dict[str, Any]:
    sandbox.control.set_clock(NOW, frozen=True)
    return _event(sandbox)


def test_it_accepts_a_report_on_an_events_targets_and_hours(
    sandbox: SandboxHandle, event: dict[str, Any]
) -> None:
    body = _report(event["id"], _usage(), _usage("car-1", "home-1", HOURS[:1], 0))
    assert_request_matches("POST", "/reports", body)

    response = _post(sandbox, body)

    assert response.status_code == 200, response.text
    answer = spec_checked_json(response)
    assert answer["eventId"] == event["id"]
    assert answer["createdAt"] == NOW
    assert answer["id"]


def test_it_lists_accepted_reports_with_their_exact_bodies(
    sandbox: SandboxHandle, event: dict[str, Any]
) -> None:
    raw = json.dumps(_report(event["id"]), indent=2)

    answer = sandbox.api(
        "POST", "/reports", data=raw, headers={"Content-Type": "application/json"}
    ).json()

    listed = sandbox.control.reports()
    (report,) = listed["reports"]
    assert report == {
        "id": answer["id"],
        "eventId": event["id"],
        "createdAt": NOW,
        "kind": "energy",
        "eventCreatedAt": NOW,
        "secondsAfterEvent": 0.0,
        "answerLost": False,
        "body": json.loads(raw),
        "rawBody": raw,
    }
    assert listed["countsByEventId"] == {event["id"]: 1}
    assert listed["lostAnswers"] == 0


def test_it_keeps_and_counts_a_second_report_for_the_same_event(
    sandbox: SandboxHandle, event: dict[str, Any]
) -> None:
    other = _event(sandbox)

    first = _post(sandbox, _report(event["id"]))
    second = _post(sandbox, _report(event["id"]))
    _post(sandbox, _report(other["id"]))

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["id"] != second.json()["id"]
    listed = sandbox.control.reports()
    assert listed["countsByEventId"] == {event["id"]: 2, other["id"]: 1}
    assert len(sandbox.control.reports(event["id"])["reports"]) == 2


@pytest.mark.parametrize(
    "timestamps",
    [
        ["2025-06-11T00:00:00Z", "2025-06-11T01:00:00Z"],
        ["2025-06-11T00:00:00.0000000+00:00"],
        ["2025-06-11T02:00:00+02:00", "2025-06-11T03:00:00.000+02:00"],
    ],
)
def test_it_compares_timestamps_as_instants(
    sandbox: SandboxHandle, event: dict[str, Any], timestamps: list[str]
) -> None:
    response = _post(sandbox, _report(event["id"], _usage(hours=timestamps)))

    assert response.status_code == 200, response.text


def test_it_accepts_the_deprecated_curve_points_alone(
    sandbox: SandboxHandle, event: dict[str, Any]
) -> None:
    usage = _usage()
    # The spec lets curvePoints be null but not points: an old client leaves points out.
    usage["curvePoints"] = usage.pop("points")
    body = _report(event["id"], usage)
    assert_request_matches("POST", "/reports", body)

    response = _post(sandbox, body)

    assert response.status_code == 200, response.text


def test_it_takes_the_only_targeted_location_when_the_location_is_left_out(
    sandbox: SandboxHandle, event: dict[str, Any]
) -> None:
    response = _post(sandbox, _report(event["id"], _usage("charger-2", None)))

    assert response.status_code == 200, response.text


def test_it_accepts_timestamps_that_are_not_on_the_hour(sandbox: SandboxHandle) -> None:
    sandbox.control.set_clock(NOW, frozen=True)
    odd = ["2025-06-11T00:15:00+00:00", "2025-06-11T01:15:00+00:00"]
    event = _event(sandbox, hours=odd)

    accepted = _post(sandbox, _report(event["id"], _usage(hours=odd)))
    rejected = _post(sandbox, _report(event["id"], _usage(hours=HOURS[:1])))

    assert accepted.status_code == 200, accepted.text
    assert rejected.status_code == 400


Change = Callable[[dict[str, Any]], Any]


def _set(path: str, value: Any) -> Change:
    """A change of `body` at a dotted path such as "payloads.0.resolution"."""

    def change(body: dict[str, Any]) -> Any:
        *parents, last = path.split(".")
        node: Any = body
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
        return body

    return change


def _both_point_lists(body: dict[str, Any]) -> Any:
    body["payloads"][0]["curvePoints"] = body["payloads"][0]["points"]
    return body


def _same_target_twice(body: dict[str, Any]) -> Any:
    body["payloads"].append(dict(body["payloads"][0]))
    return body


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("eventId", "7a1d6f4e-0000-4000-8000-000000000000"), "was not found"),
        (_set("eventId", None), "eventId is required"),
        (_set("payloads", []), "payloads must be a non-empty array"),
        (_set("payloads.0.resourceId", "charger-9"), "not among the targets"),
        (_set("payloads.0.locationId", "home-2"), "not among the targets"),
        (_set("payloads.0.points.0.timestamp", "2025-06-11T03:00:00+00:00"), "not one of"),
        (_set("payloads.0.points.0.timestamp", "2025-06-11T00:30:00+00:00"), "not one of"),
        (_set("payloads.0.points.0.timestamp", "2025-06-11T00:00:00"), "with an offset"),
        (_set("payloads.0.points.1.timestamp", HOURS[0]), "reported twice"),
        (_set("payloads.0.resolution", "00:15:00"), "does not match"),
        (_set("payloads.0.resolution", "PT1H"), "time span"),
        (_set("payloads.0.resolution", None), "resolution is required"),
        (_set("payloads.0.points.0.kiloWattHours", -0.1), "0 or more"),
        (_set("payloads.0.points.0.kiloWattHours", "1.5"), "must be a number"),
        (_set("payloads.0.points", None), "points is required"),
        (_both_point_lists, "not both"),
        (_set("payloads.0.payloadType", "LocationEnergyUsage"), "EnergyUsage"),
        (_same_target_twice, "reported twice"),
        (lambda body: [body], "JSON object"),
    ],
)
def test_it_rejects_a_report_that_breaks_a_rule_with_a_message(
    sandbox: SandboxHandle, event: dict[str, Any], change: Change, message: str
) -> None:
    body = change(_report(event["id"]))

    response = _post(sandbox, body)

    assert response.status_code == 400
    answer = spec_checked_json(response)
    assert isinstance(answer, str)
    assert message in answer
    assert sandbox.control.reports()["reports"] == []


def test_it_rejects_a_report_on_an_event_that_is_not_a_price_curve(
    sandbox: SandboxHandle,
) -> None:
    eligibility = spec_checked_json(sandbox.api("POST", "/simulation/events/usereligibility"))

    response = _post(sandbox, _report(eligibility["simulatedEvent"]["id"]))

    assert response.status_code == 400
    assert "UserEligibility" in spec_checked_json(response)


def test_it_asks_for_the_location_when_a_resource_is_targeted_at_several(
    sandbox: SandboxHandle,
) -> None:
    targets = [
        {"resourceId": "car-1", "locationId": "home-1"},
        {"resourceId": "car-1", "locationId": "cabin-1"},
    ]
    sandbox.control.set_clock(NOW, frozen=True)
    event = _event(sandbox, targets=targets)

    response = _post(sandbox, _report(event["id"], _usage("car-1", None)))

    assert response.status_code == 400
    assert "locationId is required" in spec_checked_json(response)


def test_it_requires_the_events_resolution(sandbox: SandboxHandle) -> None:
    sandbox.control.set_clock(NOW, frozen=True)
    event = _event(sandbox, resolution="00:15:00")

    hourly = _post(sandbox, _report(event["id"]))
    quarterly = _post(sandbox, _report(event["id"], {**_usage(), "resolution": "00:15:00"}))

    assert hourly.status_code == 400
    assert "00:15:00" in hourly.json()
    assert quarterly.status_code == 200


def test_it_requires_a_body(sandbox: SandboxHandle) -> None:
    response = sandbox.api("POST", "/reports")

    assert response.status_code == 400
    assert isinstance(spec_checked_json(response), str)


def test_it_requires_a_token(sandbox: SandboxHandle, event: dict[str, Any]) -> None:
    response = sandbox.http.post(
        sandbox.base_url + "/reports", json=_report(event["id"]), timeout=5
    )

    assert response.status_code == 401
    assert sandbox.control.reports()["reports"] == []


# The deadline: the end of the event's local month plus the grace (24 h by default).

JUNE_30 = ["2025-06-30T08:00:00+00:00"]  # 10:00 in Oslo
# June ends at 2025-06-30T22:00Z in Oslo; a day's grace runs to 2025-07-01T22:00Z.


@pytest.mark.parametrize(
    ("now", "status"),
    [
        ("2025-06-30T21:59:59+00:00", 200),
        ("2025-07-01T21:59:59+00:00", 200),
        ("2025-07-01T22:00:00+00:00", 400),
        ("2025-08-15T12:00:00+00:00", 400),
    ],
)
def test_it_takes_reports_until_the_end_of_the_events_month_plus_the_grace(
    sandbox: SandboxHandle, now: str, status: int
) -> None:
    sandbox.control.set_clock("2025-06-29T11:00:00+00:00", frozen=True)
    event = _event(sandbox, hours=JUNE_30)
    sandbox.control.set_clock(now, frozen=True)

    response = _post(sandbox, _report(event["id"], _usage(hours=JUNE_30)))

    assert response.status_code == status, response.text
    if status == 400:
        assert "due by 2025-07-01T22:00:00+00:00" in spec_checked_json(response)


def test_it_takes_the_events_month_in_local_time(sandbox: SandboxHandle) -> None:
    # 22:30 UTC on June 30 is 00:30 on July 1 in Oslo: a July event.
    july_first = ["2025-06-30T22:30:00+00:00"]
    sandbox.control.set_clock("2025-06-30T12:00:00+00:00", frozen=True)
    event = _event(sandbox, hours=july_first)
    sandbox.control.set_clock("2025-07-20T12:00:00+00:00", frozen=True)

    response = _post(sandbox, _report(event["id"], _usage(hours=july_first)))

    assert response.status_code == 200, response.text


def test_it_uses_the_configured_grace(start_sandbox: Callable[..., SandboxHandle]) -> None:
    sandbox = start_sandbox(report_grace_seconds=3600)
    event = _event(sandbox, hours=JUNE_30)

    sandbox.control.set_clock("2025-06-30T22:59:59+00:00", frozen=True)
    in_time = _post(sandbox, _report(event["id"], _usage(hours=JUNE_30)))
    sandbox.control.set_clock("2025-06-30T23:00:00+00:00", frozen=True)
    too_late = _post(sandbox, _report(event["id"], _usage(hours=JUNE_30)))

    assert in_time.status_code == 200, in_time.text
    assert too_late.status_code == 400


def test_it_forgets_reports_on_request(sandbox: SandboxHandle, event: dict[str, Any]) -> None:
    _post(sandbox, _report(event["id"]))

    sandbox.control.clear_reports()

    assert sandbox.control.reports() == {"reports": [], "countsByEventId": {}, "lostAnswers": 0}
