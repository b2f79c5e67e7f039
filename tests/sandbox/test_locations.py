"""`/users/{userId}/locations[/{locationId}]` and `/users/locations/batch`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.sandbox import AREA_1_METER, IN_AREA_1, IN_AREA_2, SandboxHandle
from tests.spec import assert_request_matches, spec_checked_json

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "spark"


def _example(name: str) -> dict[str, Any]:
    example: dict[str, Any] = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    return example


def test_it_creates_a_location_from_the_spec_example(sandbox: SandboxHandle) -> None:
    sandbox.add_user("user-1")
    body = _example("openapi-example.location-create-request.json")
    assert_request_matches("POST", "/users/user-1/locations", body)

    response = sandbox.api("POST", "/users/user-1/locations", json=body)

    assert response.status_code == 201
    created = spec_checked_json(response)
    assert created["locationId"] == body["locationId"]
    assert created["locationType"] == body["locationType"]
    assert created["meterPointIds"] == body["meterPointIds"]
    assert created["meterPointId"] == body["meterPointIds"][0]
    assert created["userId"] == "user-1"
    fetched = sandbox.api("GET", f"/users/user-1/locations/{body['locationId']}")
    assert spec_checked_json(fetched) == created


def test_it_lists_a_users_locations_in_creation_order(sandbox: SandboxHandle) -> None:
    sandbox.add_user("user-1")
    sandbox.add_user("user-2")
    second = sandbox.add_location("user-1", "loc-b", coordinates=IN_AREA_1)
    first = sandbox.add_location("user-1", "loc-a", meterPointIds=[AREA_1_METER])
    sandbox.add_location("user-2", "loc-c")

    response = sandbox.api("GET", "/users/user-1/locations")

    assert response.status_code == 200
    assert spec_checked_json(response) == [second, first]
    assert second["coordinates"] == IN_AREA_1
    assert first["coordinates"] is None
    assert first["locationType"] == "Unknown"


def test_it_answers_a_location_list_for_an_unknown_user_with_a_string(
    sandbox: SandboxHandle,
) -> None:
    response = sandbox.api("GET", "/users/nobody/locations")

    # The spec declares only 200 and a 400 string here.
    assert response.status_code == 400
    assert "nobody" in spec_checked_json(response)


def test_it_folds_the_deprecated_meter_point_id_into_the_list(sandbox: SandboxHandle) -> None:
    sandbox.add_user("user-1")

    location = sandbox.add_location(
        "user-1", "loc-1", meterPointId="707057500000000002", meterPointIds=["707057500000000001"]
    )

    assert location["meterPointIds"] == ["707057500000000001", "707057500000000002"]
    assert location["meterPointId"] == "707057500000000001"


@pytest.mark.parametrize("owner", ["user-1", "user-2"])
def test_it_answers_409_for_a_location_id_in_use(sandbox: SandboxHandle, owner: str) -> None:
    sandbox.add_user("user-1")
    sandbox.add_user("user-2")
    sandbox.add_location(owner, "shared-id")

    response = sandbox.api("POST", "/users/user-1/locations", json={"locationId": "shared-id"})

    assert response.status_code == 409
    assert response.content == b""
    spec_checked_json(response)


def test_it_answers_404_for_a_location_of_an_unknown_user(sandbox: SandboxHandle) -> None:
    response = sandbox.api("POST", "/users/nobody/locations", json={"locationId": "loc-1"})

    assert response.status_code == 404
    spec_checked_json(response)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"locationId": ""},
        {"locationId": "loc", "locationType": "Castle"},
        {"locationId": "loc", "coordinates": {"latitude": 91, "longitude": 10}},
        {"locationId": "loc", "coordinates": {"latitude": 60}},
        {"locationId": "loc", "coordinates": "60,10"},
        {"locationId": "loc", "meterPointIds": "707057500000000001"},
        {"locationId": "loc", "meterPointIds": [""]},
        ["loc"],
    ],
)
def test_it_rejects_an_invalid_location_with_a_string(sandbox: SandboxHandle, body: Any) -> None:
    sandbox.add_user("user-1")

    response = sandbox.api("POST", "/users/user-1/locations", json=body)

    assert response.status_code == 400
    assert isinstance(spec_checked_json(response), str)
    assert sandbox.directory.locations_of("user-1") == []


def test_it_answers_404_for_an_unknown_location(sandbox: SandboxHandle) -> None:
    sandbox.add_user("user-1")

    responses = [
        sandbox.api("GET", "/users/user-1/locations/missing"),
        sandbox.api("PUT", "/users/user-1/locations/missing", json={"locationId": "missing"}),
        sandbox.api("PATCH", "/users/user-1/locations/missing", json={}),
        sandbox.api("DELETE", "/users/user-1/locations/missing"),
    ]

    for response in responses:
        assert response.status_code == 404
        spec_checked_json(response)


def test_it_does_not_serve_a_location_under_another_user(sandbox: SandboxHandle) -> None:
    sandbox.add_user("user-1")
    sandbox.add_user("user-2")
    sandbox.add_location("user-1", "loc-1")

    response = sandbox.api("GET", "/users/user-2/locations/loc-1")

    assert response.status_code == 404


def test_it_replaces_a_location_with_put(sandbox: SandboxHandle) -> None:
    sandbox.add_user("user-1")
    sandbox.add_location(
        "user-1", "loc-1", locationType="Commercial", coordinates=IN_AREA_1, meterPointIds=["m1"]
    )
    body = {"locationId": "loc-1", "locationType": "Residential", "meterPointIds": ["m2"]}
    assert_request_matches("PUT", "/users/user-1/locations/loc-1", body)

    response = sandbox.api("PUT", "/users/user-1/locations/loc-1", json=body)

    assert response.status_code == 200
    assert spec_checked_json(response) == {
        "locationId": "loc-1",
        "locationType": "Residential",
        "coordinates": None,
        "meterPointId": "m2",
        "meterPointIds": ["m2"],
        "userId": "user-1",
    }


def test_it_refuses_a_put_that_changes_the_location_id(sandbox: SandboxHandle) -> None:
    sandbox.add_user("user-1")
    sandbox.add_location("user-1", "loc-1")

    response = sandbox.api("PUT", "/users/user-1/locations/loc-1", json={"locationId": "loc-2"})

    assert response.status_code == 400
    assert isinstance(spec_checked_json(response), str)


def test_it_patches_only_the_given_fields(sandbox: SandboxHandle) -> None:
    sandbox.add_user("user-1")
    sandbox.add_location(
        "user-1", "loc-1", locationType="Commercial", coordinates=IN_AREA_1, meterPointIds=["m1"]
    )
    body = _example("openapi-example.location-patch-request.json")
    assert_request_matches("PATCH", "/users/user-1/locations/loc-1", body)

    response = sandbox.api("PATCH", "/users/user-1/locations/loc-1", json=body)

    assert response.status_code == 200
    patched = spec_checked_json(response)
    assert patched["coordinates"] == body["coordinates"] == IN_AREA_2
    assert patched["locationType"] == "Commercial"
    assert patched["meterPointIds"] == ["m1"]


def test_it_clears_meter_points_with_an_empty_patch_list(sandbox: SandboxHandle) -> None:
    sandbox.add_user("user-1")
    sandbox.add_location("user-1", "loc-1", meterPointIds=["m1"])

    response = sandbox.api("PATCH", "/users/user-1/locations/loc-1", json={"meterPointIds": []})

    assert spec_checked_json(response)["meterPointIds"] == []


def test_it_deletes_a_location(sandbox: SandboxHandle) -> None:
    sandbox.add_user("user-1")
    sandbox.add_location("user-1", "loc-1")

    response = sandbox.api("DELETE", "/users/user-1/locations/loc-1")

    assert response.status_code == 204
    spec_checked_json(response)
    assert sandbox.api("GET", "/users/user-1/locations/loc-1").status_code == 404
    # The id is free again.
    sandbox.add_location("user-1", "loc-1")


def test_it_creates_locations_for_several_users_in_a_batch(sandbox: SandboxHandle) -> None:
    sandbox.add_user("user-1")
    sandbox.add_user("user-2")
    body = {
        "locations": [
            {"userId": "user-1", "locationId": "loc-1", "coordinates": IN_AREA_1},
            {"userId": "user-2", "locationId": "loc-2", "meterPointIds": ["m2"]},
        ]
    }
    assert_request_matches("POST", "/users/locations/batch", body)

    response = sandbox.api("POST", "/users/locations/batch", json=body)

    assert response.status_code == 201
    created = spec_checked_json(response)["locations"]
    assert [(loc["userId"], loc["locationId"]) for loc in created] == [
        ("user-1", "loc-1"),
        ("user-2", "loc-2"),
    ]
    assert [loc.location_id for loc in sandbox.directory.locations_of("user-2")] == ["loc-2"]


@pytest.mark.parametrize(
    "second",
    [
        {"userId": "nobody", "locationId": "loc-2"},
        {"userId": "user-1", "locationId": "loc-1"},
        {"userId": "user-1", "locationId": "taken"},
        {"locationId": "loc-2"},
    ],
)
def test_it_creates_nothing_from_a_batch_with_a_bad_location(
    sandbox: SandboxHandle, second: dict[str, Any]
) -> None:
    sandbox.add_user("user-1")
    sandbox.add_location("user-1", "taken")
    body = {"locations": [{"userId": "user-1", "locationId": "loc-1"}, second]}

    response = sandbox.api("POST", "/users/locations/batch", json=body)

    assert response.status_code == 400
    assert isinstance(spec_checked_json(response), str)
    assert [loc.location_id for loc in sandbox.directory.locations_of("user-1")] == ["taken"]
