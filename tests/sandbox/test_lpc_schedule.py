"""The LPC schedule (`/_sandbox/lpc/schedule`): LPC events for enrolled targets, some two days
ahead and some just in time, driven by the sandbox clock and deterministic under a seed; and
`/_sandbox/lpc/events`, which tells when each event was acknowledged and reported."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from sandbox.clock import parse_timestamp
from sandbox.lpc_schedule import (
    AHEAD,
    JUST_IN_TIME,
    MAX_CATCH_UP_RUNS,
    LpcSwitches,
    plan_run,
)
from sandbox.report_parts import parse_time_span
from tests.fixtures.sandbox import (
    AREA_1_METER,
    HTTP_TIMEOUT,
    IN_AREA_1,
    IN_AREA_2,
    OTHER_METER,
    SandboxHandle,
    WebhookReceiver,
)
from tests.spec import spec_checked_json

SECOND_AREA_1_METER = "707057500000100002"
AREA_2_METER = "707057500000200001"
HALF_PAST_NINE = "2026-03-04T09:30:00+00:00"
RUN_AT = datetime(2026, 3, 4, 10, tzinfo=UTC)
RESOURCE_TARGETS = {
    ("alice-car", "alice-home", AREA_1_METER),
    ("alice-charger", "alice-home", AREA_1_METER),
    ("bob-charger", "bob-home", AREA_2_METER),
    # A resource with a meter point of its own is targeted with it.
    ("bob-second-charger", "bob-home", "707057500000200002"),
}
LOCATION_TARGETS = {
    ("alice-home", AREA_1_METER),
    ("alice-home", SECOND_AREA_1_METER),
    ("bob-home", AREA_2_METER),
}


def _targets(sandbox: SandboxHandle) -> None:
    """Enrolled alice (two meters, a charger and a car) and bob (one meter, two chargers)
    are targets; carol (not enrolled), dave (no meter point) and erin (outside every
    neighbourhood) are not."""
    homes: list[tuple[str, dict[str, Any], bool]] = [
        ("alice", {"meterPointIds": [AREA_1_METER, SECOND_AREA_1_METER]}, True),
        ("bob", {"coordinates": IN_AREA_2, "meterPointIds": [AREA_2_METER]}, True),
        ("carol", {"meterPointIds": ["707057500000100003"]}, False),
        ("dave", {"coordinates": IN_AREA_1}, True),
        ("erin", {"meterPointIds": [OTHER_METER]}, True),
    ]
    for user_id, fields, enrolled in homes:
        sandbox.add_user(user_id)
        sandbox.add_location(user_id, f"{user_id}-home", **fields)
        sandbox.add_resource(user_id, f"{user_id}-home", f"{user_id}-charger")
        if enrolled:
            sandbox.enroll(user_id)
    sandbox.add_vehicle("alice", "alice-car")
    own_meter = {
        "resourceId": "bob-second-charger",
        "resourceType": "Charger",
        "meterPointId": "707057500000200002",
    }
    added = sandbox.api("POST", "/users/bob/locations/bob-home/resources", json=own_meter)
    assert added.status_code == 201, added.text


def _lpc_events(sandbox: SandboxHandle) -> list[dict[str, Any]]:
    """GET /events (checked against the spec): the LPC events, oldest first."""
    response = sandbox.api("GET", "/events", params={"pageSize": 1000})
    assert response.status_code == 200, response.text
    events = spec_checked_json(response)["events"]
    lpc = ("ResourceLPC", "LocationLPC")
    return [e for e in reversed(events) if e["payload"]["payloadType"] in lpc]


def _target_ids(event: dict[str, Any]) -> tuple[str, ...]:
    [target] = event["payload"]["targets"]
    if event["payload"]["payloadType"] == "ResourceLPC":
        return (target["resourceId"], target["locationId"], target["meterPointId"])
    return (target["locationId"], target["meterPointId"])


def test_it_sends_every_enrolled_target_an_event_when_the_clock_passes_a_run(
    sandbox: SandboxHandle,
) -> None:
    _targets(sandbox)
    sandbox.control.set_clock(HALF_PAST_NINE, frozen=True)
    sandbox.control.set_lpc_schedule(enabled=True, everySeconds=3600, eventsPerRun=100, seed=7)

    sandbox.control.advance_clock(1799)
    before = _lpc_events(sandbox)
    sandbox.control.advance_clock(1)
    events = _lpc_events(sandbox)

    assert before == []
    resources = {_target_ids(e) for e in events if e["payload"]["payloadType"] == "ResourceLPC"}
    locations = {_target_ids(e) for e in events if e["payload"]["payloadType"] == "LocationLPC"}
    assert (resources, locations) == (RESOURCE_TARGETS, LOCATION_TARGETS)
    assert len(events) == 7
    view = sandbox.control.lpc_schedule()
    assert view["runs"] == ["2026-03-04T10:00:00+00:00"]
    assert {e["eventId"] for e in view["events"]} == {e["id"] for e in events}
    for scheduled in view["events"]:
        first = parse_timestamp(scheduled["firstPeriodStart"])
        resolution = parse_time_span(scheduled["resolution"])
        if scheduled["timing"] == AHEAD:
            assert first == RUN_AT + timedelta(days=2)
        else:
            assert first <= RUN_AT < first + resolution


def test_it_makes_caps_in_the_targets_resolution_from_the_first_period_on() -> None:
    resources = sorted(RESOURCE_TARGETS)
    locations = sorted(LOCATION_TARGETS)
    switches = LpcSwitches(enabled=True, events_per_run=6, seed=3)
    runs = [RUN_AT + n * timedelta(minutes=30) for n in range(100)]

    planned = [(run, p) for run in runs for p in plan_run(run, switches, resources, locations)]

    seen = {(p.timing, p.payload["targets"][0]["resolution"]) for _, p in planned}
    assert seen == {
        (AHEAD, "02:00:00"),
        (AHEAD, "01:00:00"),
        (JUST_IN_TIME, "02:00:00"),
        (JUST_IN_TIME, "01:00:00"),
    }
    begun = set()
    for run, plan in planned:
        [target] = plan.payload["targets"]
        starts = [parse_timestamp(p["timestamp"]) for p in target["points"]]
        caps = [p["maxPowerInKiloWatts"] for p in target["points"]]
        resolution = parse_time_span(target["resolution"])
        assert starts == [plan.first_start + n * resolution for n in range(len(starts))]
        assert 1 <= len(starts) <= 4
        assert starts[0].minute == 0
        if plan.timing == AHEAD:
            assert starts[0] == run.replace(minute=0) + timedelta(hours=48)
        else:
            assert starts[0] <= run < starts[0] + resolution
            begun.add(starts[0] < run)
        low = 1.4 if plan.kind == "resources" else 2.0
        high = 7.4 if plan.kind == "resources" else 12.0
        assert all((cap == 0 and plan.kind == "resources") or low <= cap <= high for cap in caps)
    # Just-in-time events start at the run or have already begun; some resources are paused.
    assert begun == {True, False}
    assert any(p["maxPowerInKiloWatts"] == 0 for _, plan in planned for p in _points(plan))


def _points(plan: Any) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = plan.payload["targets"][0]["points"]
    return points


def test_it_makes_the_same_events_for_the_same_seed_time_and_targets(
    sandbox: SandboxHandle,
) -> None:
    def run(seed: int) -> list[dict[str, Any]]:
        sandbox.control.reset()
        _targets(sandbox)
        sandbox.control.set_clock(HALF_PAST_NINE, frozen=True)
        sandbox.control.set_lpc_schedule(seed=seed, eventsPerRun=4)
        return [event["payload"] for event in sandbox.control.run_lpc_schedule()]

    first, again, other = run(11), run(11), run(12)

    assert len(first) == 4
    assert first == again
    assert first != other
    switches = LpcSwitches(seed=5)
    targets = (sorted(RESOURCE_TARGETS), sorted(LOCATION_TARGETS))
    assert plan_run(RUN_AT, switches, *targets) == plan_run(RUN_AT, switches, *targets)


def test_it_runs_each_time_once_only_when_enabled_and_catches_up_a_day_at_most(
    sandbox: SandboxHandle,
) -> None:
    _targets(sandbox)
    sandbox.control.set_clock(HALF_PAST_NINE, frozen=True)
    sandbox.control.advance_clock(3600)
    assert _lpc_events(sandbox) == []  # off by default

    sandbox.control.set_lpc_schedule(enabled=True, eventsPerRun=1, kinds=["locations"])
    sandbox.control.advance_clock(3600)  # 11:30, passing 11:00
    sandbox.control.set_clock("2026-03-04T10:45:00+00:00", frozen=True)
    sandbox.control.set_clock("2026-03-04T11:30:00+00:00", frozen=True)
    once = _lpc_events(sandbox)
    sandbox.control.advance_clock(3 * 86400)
    runs = sandbox.control.lpc_schedule()["runs"]

    # 10:00 passed before the schedule was on; 11:00 is not run again after moving back.
    assert [e["payload"]["payloadType"] for e in once] == ["LocationLPC"]
    assert runs[0] == "2026-03-04T11:00:00+00:00"
    # Three days passed: only the latest MAX_CATCH_UP_RUNS hourly runs.
    assert len(runs) == 1 + MAX_CATCH_UP_RUNS == 25
    assert (runs[1], runs[-1]) == ("2026-03-06T12:00:00+00:00", "2026-03-07T11:00:00+00:00")
    assert len(_lpc_events(sandbox)) == len(runs)


def test_it_notices_the_clock_moved_in_process_within_a_second(sandbox: SandboxHandle) -> None:
    _targets(sandbox)
    sandbox.control.set_clock(HALF_PAST_NINE, frozen=True)
    sandbox.control.set_lpc_schedule(enabled=True, eventsPerRun=2)

    sandbox.clock.advance(1800)

    deadline = time.monotonic() + 3
    while not _lpc_events(sandbox) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_lpc_events(sandbox)) == 2


def test_it_refuses_switches_it_cannot_use(sandbox: SandboxHandle) -> None:
    url = sandbox.control.url + "/lpc/schedule"
    bad = [
        ({"resolutions": ["00:07:00"]}, "resolutions must be"),
        ({"resolutions": ["01:30:00"]}, "resolutions must be"),
        ({"everySeconds": 10}, "everySeconds must be a whole number from 60"),
        ({"justInTimeShare": 1.5}, "justInTimeShare must be a number from 0 to 1"),
        ({"kinds": ["meters"]}, "kinds must be"),
        ({"enabled": "yes"}, "enabled must be a boolean"),
    ]
    for body, message in bad:
        answer = requests.post(url, json=body, timeout=HTTP_TIMEOUT)
        assert answer.status_code == 400, body
        assert message in answer.json()["error"]
    assert sandbox.control.lpc_schedule()["resolutions"] == ["02:00:00", "01:00:00"]


def test_it_shows_when_each_lpc_event_was_delivered_acknowledged_and_reported(
    sandbox: SandboxHandle, webhook_receiver: WebhookReceiver
) -> None:
    _targets(sandbox)
    sandbox.register_webhook(
        webhook_receiver.url, notification_types=("LocationLPCRequested", "ResourceLPCRequested")
    )
    sandbox.control.set_clock(HALF_PAST_NINE, frozen=True)
    sandbox.control.set_lpc_schedule(eventsPerRun=1, kinds=["locations"], justInTimeShare=1)
    [event] = sandbox.control.run_lpc_schedule()
    simulated = sandbox.api(
        "POST",
        "/simulation/events/lpc/locations",
        json={"locations": [{"location": {"locationId": "x", "meterPointId": "y"}}]},
    ).json()["simulatedEvent"]
    sandbox.wait_for_deliveries()
    [target] = event["payload"]["targets"]
    ids = {"locationId": target["locationId"], "meterPointId": target["meterPointId"]}
    sandbox.control.advance_clock(30)
    acknowledgement = {
        "payloadType": "LocationLPCAcknowledgement",
        "acknowledgedTargets": [ids],
        "declinedTargets": [],
    }
    acked = sandbox.api(
        "POST", "/reports", json={"eventId": event["id"], "payloads": [acknowledgement]}
    )
    sandbox.control.advance_clock(4 * 3600)
    usage = {
        **ids,
        "points": [{"timestamp": target["points"][0]["timestamp"], "kiloWattHours": 2.5}],
        "resolution": target["resolution"],
        "payloadType": "LocationEnergyUsage",
    }
    reported = sandbox.api("POST", "/reports", json={"eventId": event["id"], "payloads": [usage]})

    assert (acked.status_code, reported.status_code) == (200, 200), reported.text
    [shown, other] = sandbox.control.lpc_events()
    assert shown["eventId"] == event["id"]
    assert (shown["source"], shown["timing"]) == ("schedule", "justInTime")
    assert shown["createdAt"] == shown["firstDeliveredAt"] == HALF_PAST_NINE
    assert shown["targets"] == [ids]
    assert shown["acknowledgedAfterSeconds"] == 30.0
    [ack] = shown["acknowledgements"]
    assert ack["receivedAt"] == "2026-03-04T09:30:30+00:00"
    assert (ack["secondsAfterEvent"], ack["secondsAfterDelivery"]) == (30.0, 30.0)
    assert (ack["acknowledged"], ack["declined"]) == ([ids], [])
    [energy] = shown["energyReports"]
    assert energy["secondsAfterEvent"] == 30.0 + 4 * 3600
    assert energy["targets"] == [ids]
    reported_at = datetime(2026, 3, 4, 13, 30, 30, tzinfo=UTC)
    assert energy["beforeEventEnd"] is (parse_timestamp(shown["end"]) > reported_at)
    assert (other["eventId"], other["source"], other["timing"]) == (
        simulated["id"],
        "simulation",
        "ahead",
    )
    assert (other["acknowledgements"], other["acknowledgedAfterSeconds"]) == ([], None)
    assert sandbox.control.lpc_events(event["id"]) == [shown]
