"""Resources: `/users/{userId}/vehicles`, `/users/{userId}/resources`,
`/users/{userId}/locations/{locationId}/resources` and `/resources/{resourceId}`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.sandbox import SandboxHandle
from tests.spec import assert_request_matches, spec_checked_json

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "spark"
BOUND = "/users/user-1/locations/loc-1/resources"


def _example(name: str) -> dict[str, Any]:
    example: dict[str, Any] = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    return example


@pytest.fixture
def user_with_location(sandbox: SandboxHandle) -> SandboxHandle:
    sandbox.add_user("user-1")
    sandbox.add_location("user-1", "loc-1", meterPointIds=["707057500000000001"])
    return sandbox


def test_it_registers_a_vehicle(user_with_location: SandboxHandle) -> None:
    sandbox = user_with_location
    body = _example("openapi-example.vehicle-create-request.json")
    assert_request_matches("POST", "/users/user-1/vehicles", body)

    response = sandbox.api("POST", "/users/user-1/vehicles", json=body)

    assert response.status_code == 201
    assert spec_checked_json(response) == {
        "resourceId": body["resourceId"],
        "resourceType": "Vehicle",
        "userId": "user-1",
        "locationId": None,
        "meterPointId": None,
    }


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/users/user-1/vehicles",
            {"resourceId": "car", "resourceType": "Charger"},
            "resourceType",
        ),
        ("/users/user-1/vehicles", {"resourceType": "Vehicle"}, "resourceId"),
        ("/users/nobody/vehicles", {"resourceId": "car", "resourceType": "Vehicle"}, "userId"),
        (
            "/users/user-1/vehicles",
            {"resourceId": "taken", "resourceType": "Vehicle"},
            "resourceId",
        ),
    ],
)
def test_it_rejects_a_bad_vehicle_as_a_problem(
    user_with_location: SandboxHandle, path: str, body: dict[str, Any], field: str
) -> None:
    sandbox = user_with_location
    sandbox.api("POST", BOUND, json={"resourceId": "taken", "resourceType": "HVAC"})

    response = sandbox.api("POST", path, json=body)

    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert field in spec_checked_json(response)["errors"]


def test_it_registers_a_resource_at_a_location(user_with_location: SandboxHandle) -> None:
    sandbox = user_with_location
    body = _example("openapi-example.location-bound-resource-create-request.json")
    assert_request_matches("POST", BOUND, body)

    response = sandbox.api("POST", BOUND, json=body)

    assert response.status_code == 201
    assert spec_checked_json(response) == {
        "resourceId": body["resourceId"],
        "resourceType": body["resourceType"],
        "locationId": "loc-1",
        "userId": "user-1",
        "meterPointId": body["meterPointId"],
    }


@pytest.mark.parametrize(
    "body",
    [
        {"resourceId": "ev", "resourceType": "Vehicle"},
        {"resourceId": "x", "resourceType": "Toaster"},
        {"resourceType": "HVAC"},
        {"resourceId": "x", "resourceType": "HVAC", "meterPointId": 7},
        {"resourceId": "taken", "resourceType": "HVAC"},
    ],
)
def test_it_rejects_a_bad_location_resource_with_a_string(
    user_with_location: SandboxHandle, body: dict[str, Any]
) -> None:
    sandbox = user_with_location
    sandbox.api(
        "POST", "/users/user-1/vehicles", json={"resourceId": "taken", "resourceType": "Vehicle"}
    )

    response = sandbox.api("POST", BOUND, json=body)

    assert response.status_code == 400
    assert isinstance(spec_checked_json(response), str)


@pytest.mark.parametrize(
    "path", ["/users/nobody/locations/loc-1/resources", "/users/user-1/locations/nowhere/resources"]
)
def test_it_answers_404_with_a_string_for_a_resource_at_an_unknown_place(
    user_with_location: SandboxHandle, path: str
) -> None:
    response = user_with_location.api(
        "POST", path, json={"resourceId": "r", "resourceType": "HVAC"}
    )

    assert response.status_code == 404
    assert isinstance(spec_checked_json(response), str)


def test_it_lists_a_users_vehicles_and_location_resources(
    user_with_location: SandboxHandle,
) -> None:
    sandbox = user_with_location
    sandbox.add_location("user-1", "loc-2")
    sandbox.api("POST", BOUND, json={"resourceId": "tank", "resourceType": "HotWaterTank"})
    sandbox.api(
        "POST", "/users/user-1/vehicles", json={"resourceId": "car", "resourceType": "Vehicle"}
    )
    sandbox.api(
        "POST",
        "/users/user-1/locations/loc-2/resources",
        json={"resourceId": "panel", "resourceType": "SolarInverter"},
    )

    everything = sandbox.api("GET", "/users/user-1/resources")
    at_location = sandbox.api("GET", BOUND)

    assert everything.status_code == 200
    assert [r["resourceId"] for r in spec_checked_json(everything)["resources"]] == [
        "tank",
        "car",
        "panel",
    ]
    assert at_location.status_code == 200
    assert [r["resourceId"] for r in spec_checked_json(at_location)] == ["tank"]


@pytest.mark.parametrize(
    "path", ["/users/nobody/resources", "/users/user-1/locations/nowhere/resources"]
)
def test_it_answers_404_for_resources_of_an_unknown_user_or_location(
    user_with_location: SandboxHandle, path: str
) -> None:
    response = user_with_location.api("GET", path)

    assert response.status_code == 404
    spec_checked_json(response)


def test_it_fetches_and_deletes_a_resource_by_id(user_with_location: SandboxHandle) -> None:
    sandbox = user_with_location
    sandbox.api("POST", BOUND, json={"resourceId": "tank", "resourceType": "HotWaterTank"})

    fetched = sandbox.api("GET", "/resources/tank")
    deleted = sandbox.api("DELETE", "/resources/tank")
    fetched_again = sandbox.api("GET", "/resources/tank")
    deleted_again = sandbox.api("DELETE", "/resources/tank")

    assert fetched.status_code == 200
    assert spec_checked_json(fetched)["locationId"] == "loc-1"
    assert deleted.status_code == 204
    spec_checked_json(deleted)
    assert fetched_again.status_code == 404
    assert "tank" in spec_checked_json(fetched_again)
    assert deleted_again.status_code == 404
    spec_checked_json(deleted_again)


def test_it_deletes_a_locations_resources_with_the_location(
    user_with_location: SandboxHandle,
) -> None:
    sandbox = user_with_location
    sandbox.api("POST", BOUND, json={"resourceId": "tank", "resourceType": "HotWaterTank"})
    sandbox.api(
        "POST", "/users/user-1/vehicles", json={"resourceId": "car", "resourceType": "Vehicle"}
    )

    sandbox.api("DELETE", "/users/user-1/locations/loc-1")

    assert sandbox.api("GET", "/resources/tank").status_code == 404
    remaining = spec_checked_json(sandbox.api("GET", "/users/user-1/resources"))["resources"]
    assert [r["resourceId"] for r in remaining] == ["car"]
