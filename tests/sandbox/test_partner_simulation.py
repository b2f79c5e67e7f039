"""`POST /simulation/partner` and `DELETE /simulation/partner`: users created in Spark by other
means, some of them in a neighbourhood."""

from __future__ import annotations

from typing import Any

from tests.fixtures.sandbox import SandboxHandle
from tests.spec import assert_request_matches, spec_checked_json


def _all_users(sandbox: SandboxHandle) -> list[str]:
    listed = spec_checked_json(sandbox.api("GET", "/users", params={"pageSize": 1000}))
    return [user["userId"] for user in listed["users"]]


def _resources(sandbox: SandboxHandle, user_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = spec_checked_json(
        sandbox.api("GET", f"/users/{user_id}/resources")
    )["resources"]
    return found


def test_it_simulates_users_with_locations_and_resources(sandbox: SandboxHandle) -> None:
    assert_request_matches("POST", "/simulation/partner")

    response = sandbox.api("POST", "/simulation/partner")

    assert response.status_code == 201
    spec_checked_json(response)
    user_ids = _all_users(sandbox)
    assert len(user_ids) == 10
    eligibility = {user_id: sandbox.is_eligible(user_id) for user_id in user_ids}
    assert True in eligibility.values()
    assert False in eligibility.values()
    for user_id in user_ids:
        locations = spec_checked_json(sandbox.api("GET", f"/users/{user_id}/locations"))
        assert locations
        assert all(location["meterPointIds"] for location in locations)
    resources = [r for user_id in user_ids for r in _resources(sandbox, user_id)]
    assert {r["resourceType"] == "Vehicle" for r in resources} == {True, False}


def test_it_announces_the_simulated_users_that_are_eligible(sandbox: SandboxHandle) -> None:
    sandbox.api("POST", "/simulation/partner")

    event = sandbox.control.flush_eligibility()

    eligible = spec_checked_json(sandbox.api("GET", "/users/eligible"))["users"]
    assert event is not None
    assert event["payload"]["addedUsers"] == [user["userId"] for user in eligible]


def test_it_deletes_only_simulated_users(sandbox: SandboxHandle) -> None:
    sandbox.add_user("partners-own")
    sandbox.api("POST", "/simulation/partner")
    sandbox.api("POST", "/simulation/partner")
    assert len(_all_users(sandbox)) == 21
    assert_request_matches("DELETE", "/simulation/partner")

    response = sandbox.api("DELETE", "/simulation/partner")

    assert response.status_code == 200
    spec_checked_json(response)
    assert _all_users(sandbox) == ["partners-own"]
    assert spec_checked_json(sandbox.api("GET", "/users/eligible"))["users"] == []
