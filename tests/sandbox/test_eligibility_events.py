"""`UserEligibilityUpdated` events: eligibility changes collected over a window and sent as one
event, and the `/_sandbox/eligibility` switches and flush that control them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import requests

from tests.fixtures.sandbox import (
    HTTP_TIMEOUT,
    IN_AREA_1,
    OUTSIDE_AREAS,
    SandboxHandle,
    WebhookReceiver,
)
from tests.spec import assert_notification_matches, assert_schema_matches, spec_checked_json
from tests.waiting import wait_for


def _eligible_user(sandbox: SandboxHandle, user_id: str) -> None:
    sandbox.add_user(user_id)
    sandbox.add_location(user_id, f"{user_id}-home", coordinates=IN_AREA_1)


def _move(sandbox: SandboxHandle, user_id: str, coordinates: dict[str, float]) -> None:
    response = sandbox.api(
        "PATCH", f"/users/{user_id}/locations/{user_id}-home", json={"coordinates": coordinates}
    )
    assert response.status_code == 200, response.text


def _eligibility_events(sandbox: SandboxHandle) -> list[dict[str, Any]]:
    listed = spec_checked_json(sandbox.api("GET", "/events", params={"pageSize": 1000}))
    return [e for e in listed["events"] if e["payload"]["payloadType"] == "UserEligibility"]


def _wait_for_events(sandbox: SandboxHandle, count: int, timeout: float) -> list[dict[str, Any]]:
    wait_for(
        lambda: len(_eligibility_events(sandbox)) >= count,
        timeout,
        f"{count} eligibility events",
    )
    return _eligibility_events(sandbox)


def test_it_announces_a_new_eligible_user_when_the_window_closes(
    sandbox: SandboxHandle,
) -> None:
    sandbox.control.set_clock("2025-04-02T10:00:00+00:00", frozen=True)
    _eligible_user(sandbox, "user-1")
    before = _eligibility_events(sandbox)

    event = sandbox.control.flush_eligibility()

    assert before == []
    assert event is not None
    assert event["payload"] == {
        "lastUpdated": "2025-04-02T10:00:00+00:00",
        "addedUsers": ["user-1"],
        "removedUsers": [],
        "payloadType": "UserEligibility",
    }
    assert_schema_matches("GetEventResponse", event)
    assert _eligibility_events(sandbox) == [event]


def test_it_delivers_the_event_to_subscribed_webhooks(
    sandbox: SandboxHandle, webhook_receiver: WebhookReceiver
) -> None:
    sandbox.register_webhook(webhook_receiver.url, notification_types=("UserEligibilityUpdated",))
    _eligible_user(sandbox, "user-1")

    event = sandbox.control.flush_eligibility()

    (received,) = webhook_receiver.wait_for(1)
    assert_notification_matches(received.body)
    notification = json.loads(received.body)
    assert event is not None
    assert notification["eventId"] == event["id"]
    assert notification["notificationType"] == "UserEligibilityUpdated"
    assert notification["payload"]["addedUsers"] == ["user-1"]


def test_it_announces_a_location_moving_out_in_the_next_window(sandbox: SandboxHandle) -> None:
    _eligible_user(sandbox, "user-1")
    sandbox.control.flush_eligibility()

    _move(sandbox, "user-1", OUTSIDE_AREAS)
    event = sandbox.control.flush_eligibility()

    assert event is not None
    assert event["payload"]["addedUsers"] == []
    assert event["payload"]["removedUsers"] == ["user-1"]


def test_it_announces_a_deleted_eligible_user_as_removed(sandbox: SandboxHandle) -> None:
    _eligible_user(sandbox, "user-1")
    sandbox.control.flush_eligibility()

    sandbox.api("DELETE", "/users/user-1")
    event = sandbox.control.flush_eligibility()

    assert event is not None
    assert event["payload"]["removedUsers"] == ["user-1"]


def test_it_leaves_out_a_user_that_flips_and_flips_back_in_one_window(
    sandbox: SandboxHandle,
) -> None:
    _eligible_user(sandbox, "steady")
    sandbox.control.flush_eligibility()

    _move(sandbox, "steady", OUTSIDE_AREAS)
    _move(sandbox, "steady", IN_AREA_1)
    _eligible_user(sandbox, "brief")
    _move(sandbox, "brief", OUTSIDE_AREAS)
    event = sandbox.control.flush_eligibility()

    assert event is None
    assert len(_eligibility_events(sandbox)) == 1


def test_it_sends_one_event_for_all_changes_in_a_window(sandbox: SandboxHandle) -> None:
    for user_id in ("leaving-1", "leaving-2"):
        _eligible_user(sandbox, user_id)
    sandbox.control.flush_eligibility()

    for user_id in ("new-3", "new-1", "new-2"):
        _eligible_user(sandbox, user_id)
    _move(sandbox, "leaving-1", OUTSIDE_AREAS)
    sandbox.api("DELETE", "/users/leaving-2")
    event = sandbox.control.flush_eligibility()

    assert event is not None
    assert event["payload"]["addedUsers"] == ["new-1", "new-2", "new-3"]
    assert event["payload"]["removedUsers"] == ["leaving-1", "leaving-2"]
    assert len(_eligibility_events(sandbox)) == 2


def test_it_closes_a_window_by_itself_once_it_has_passed(
    start_sandbox: Callable[..., SandboxHandle],
) -> None:
    sandbox = start_sandbox(eligibility_window=0.3)
    started = time.monotonic()
    for n in range(5):
        _eligible_user(sandbox, f"user-{n}")

    (event,) = _wait_for_events(sandbox, 1, timeout=5)
    closed = sandbox.control.eligibility()["windowOpenedAt"]
    _eligible_user(sandbox, "later")

    # The next window holds only what changed after the first one closed.
    later, first = _wait_for_events(sandbox, 2, timeout=5)
    assert time.monotonic() - started >= 0.3
    assert first == event
    assert event["payload"]["addedUsers"] == [f"user-{n}" for n in range(5)]
    assert closed is None
    assert later["payload"]["addedUsers"] == ["later"]
    assert len(_eligibility_events(sandbox)) == 2


def test_it_times_windows_on_the_sandbox_clock(sandbox: SandboxHandle) -> None:
    sandbox.control.set_clock("2025-04-02T10:00:00+00:00", frozen=True)
    _eligible_user(sandbox, "user-1")
    # A second short of the window: not due, so the window is still open, whatever the
    # real time that passes.
    sandbox.control.advance_clock(599)
    due_at_599 = sandbox.sandbox.eligibility.window_is_due()
    opened = sandbox.control.eligibility()["windowOpenedAt"]
    while_open = _eligibility_events(sandbox)

    sandbox.control.advance_clock(1)

    (event,) = _wait_for_events(sandbox, 1, timeout=5)
    assert due_at_599 is False
    assert opened == "2025-04-02T10:00:00+00:00"
    assert while_open == []
    assert event["payload"]["lastUpdated"] == "2025-04-02T10:10:00+00:00"
    assert sandbox.control.eligibility()["windowOpenedAt"] is None


def test_it_can_leave_removals_out_of_the_events(sandbox: SandboxHandle) -> None:
    _eligible_user(sandbox, "leaving")
    sandbox.control.flush_eligibility()
    switches = sandbox.control.set_eligibility(announce_removals=False)

    _move(sandbox, "leaving", OUTSIDE_AREAS)
    only_removals = sandbox.control.flush_eligibility()
    _eligible_user(sandbox, "joining")
    sandbox.api("DELETE", "/users/leaving")
    mixed = sandbox.control.flush_eligibility()

    assert switches["announceRemovals"] is False
    assert only_removals is None
    assert mixed is not None
    assert mixed["payload"]["addedUsers"] == ["joining"]
    assert mixed["payload"]["removedUsers"] == []
    # The removal is real all the same: a full reconcile finds it.
    assert sandbox.is_eligible("joining") is True
    eligible = spec_checked_json(sandbox.api("GET", "/users/eligible"))["users"]
    assert eligible == [{"userId": "joining"}]


def test_it_restores_the_switches_on_reset(sandbox: SandboxHandle) -> None:
    sandbox.control.set_eligibility(announce_removals=False, window_seconds=5)

    sandbox.control.reset()

    assert sandbox.control.eligibility() == {
        "windowSeconds": 600.0,
        "announceRemovals": True,
        "windowOpenedAt": None,
    }


def test_it_rejects_malformed_switches(sandbox: SandboxHandle) -> None:
    url = sandbox.control.url + "/eligibility"
    bodies = [{"announceRemovals": "no"}, {"windowSeconds": 0}, {"windowSeconds": "10"}, []]

    statuses = [requests.post(url, json=b, timeout=HTTP_TIMEOUT).status_code for b in bodies]

    assert statuses == [400] * len(bodies)
    assert sandbox.control.eligibility()["announceRemovals"] is True


def test_it_does_not_change_eligibility_for_a_simulated_event(sandbox: SandboxHandle) -> None:
    _eligible_user(sandbox, "user-1")
    sandbox.control.flush_eligibility()

    response = sandbox.api("POST", "/simulation/events/usereligibility")

    payload = spec_checked_json(response)["simulatedEvent"]["payload"]
    assert "user-1" not in payload["addedUsers"] + payload["removedUsers"]
    assert sandbox.is_eligible("user-1") is True
    assert sandbox.control.flush_eligibility() is None
