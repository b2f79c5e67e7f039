"""`/users/{userId}/eligibility`, `/users/eligible` and `/meters/{mpid}/eligible`: a user is
eligible while one of its locations lies in a grid neighbourhood, by meter point or by
coordinates."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.sandbox import (
    AREA_1_METER,
    IN_AREA_1,
    IN_AREA_2,
    OTHER_METER,
    OUTSIDE_AREAS,
    SandboxHandle,
)
from tests.spec import assert_request_matches, spec_checked_json


def _eligible_ids(sandbox: SandboxHandle, page: int = 1, page_size: int = 1000) -> list[str]:
    response = sandbox.api("GET", "/users/eligible", params={"page": page, "pageSize": page_size})
    assert response.status_code == 200, response.text
    return [user["userId"] for user in spec_checked_json(response)["users"]]


@pytest.mark.parametrize(
    ("fields", "eligible"),
    [
        ({"meterPointIds": [AREA_1_METER]}, True),
        ({"meterPointId": AREA_1_METER}, True),
        ({"coordinates": IN_AREA_1}, True),
        ({"coordinates": IN_AREA_2, "meterPointIds": [OTHER_METER]}, True),
        ({"coordinates": OUTSIDE_AREAS, "meterPointIds": [OTHER_METER]}, False),
        ({"meterPointIds": [OTHER_METER]}, False),
        ({}, False),
    ],
)
def test_it_decides_eligibility_by_meter_point_or_coordinates(
    sandbox: SandboxHandle, fields: dict[str, Any], eligible: bool
) -> None:
    sandbox.add_user("user-1")
    sandbox.add_location("user-1", "loc-1", **fields)
    assert_request_matches("GET", "/users/user-1/eligibility")

    response = sandbox.api("GET", "/users/user-1/eligibility")

    assert response.status_code == 200
    assert spec_checked_json(response) == {"userId": "user-1", "isEligible": eligible}
    assert _eligible_ids(sandbox) == (["user-1"] if eligible else [])


def test_it_makes_a_user_without_locations_ineligible(sandbox: SandboxHandle) -> None:
    sandbox.add_user("user-1")

    assert sandbox.is_eligible("user-1") is False


def test_it_needs_only_one_location_inside(sandbox: SandboxHandle) -> None:
    sandbox.add_user("user-1")
    sandbox.add_location("user-1", "away", coordinates=OUTSIDE_AREAS)
    sandbox.add_location("user-1", "home", coordinates=IN_AREA_1)

    assert sandbox.is_eligible("user-1") is True


def test_it_follows_a_location_that_moves_out_and_back(sandbox: SandboxHandle) -> None:
    sandbox.add_user("user-1")
    sandbox.add_location("user-1", "loc-1", coordinates=IN_AREA_1)
    path = "/users/user-1/locations/loc-1"

    sandbox.api("PATCH", path, json={"coordinates": OUTSIDE_AREAS})
    after_moving_out = sandbox.is_eligible("user-1")
    sandbox.api("PUT", path, json={"locationId": "loc-1", "meterPointIds": [AREA_1_METER]})
    after_put = sandbox.is_eligible("user-1")
    sandbox.api("DELETE", path)
    after_delete = sandbox.is_eligible("user-1")

    assert (after_moving_out, after_put, after_delete) == (False, True, False)


def test_it_drops_a_deleted_user_from_eligibility(sandbox: SandboxHandle) -> None:
    for user_id in ("user-1", "user-2"):
        sandbox.add_user(user_id)
        sandbox.add_location(user_id, f"{user_id}-home", coordinates=IN_AREA_1)

    sandbox.api("DELETE", "/users/user-1")

    assert _eligible_ids(sandbox) == ["user-2"]
    response = sandbox.api("GET", "/users/user-1/eligibility")
    assert response.status_code == 404
    spec_checked_json(response)


def test_it_pages_eligible_users_in_id_order(sandbox: SandboxHandle) -> None:
    for user_id in ("e", "b", "d", "a", "c", "x"):
        sandbox.add_user(user_id)
        where = OUTSIDE_AREAS if user_id == "x" else IN_AREA_1
        sandbox.add_location(user_id, f"{user_id}-home", coordinates=where)
    assert_request_matches("GET", "/users/eligible", query={"page": "1", "pageSize": "2"})

    pages = [
        spec_checked_json(sandbox.api("GET", "/users/eligible", params={"page": n, "pageSize": 2}))
        for n in (1, 2, 3, 4)
    ]

    assert [[u["userId"] for u in page["users"]] for page in pages] == [
        ["a", "b"],
        ["c", "d"],
        ["e"],
        [],
    ]
    assert pages[0]["pagination"] == {
        "totalRecords": 5,
        "pageSize": 2,
        "currentPage": 1,
        "totalPages": 3,
        "nextPage": 2,
        "previousPage": None,
    }


@pytest.mark.parametrize("params", [{"pageSize": 1001}, {"page": 0}, {"pageSize": "all"}])
def test_it_rejects_bad_paging_of_eligible_users_as_a_problem(
    sandbox: SandboxHandle, params: dict[str, Any]
) -> None:
    response = sandbox.api("GET", "/users/eligible", params=params)

    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert set(spec_checked_json(response)["errors"]) & {"page", "pageSize"}


def test_it_answers_404_for_the_eligibility_of_an_unknown_user(sandbox: SandboxHandle) -> None:
    response = sandbox.api("GET", "/users/nobody/eligibility")

    assert response.status_code == 404
    spec_checked_json(response)


@pytest.mark.parametrize(("mpid", "eligible"), [(AREA_1_METER, True), (OTHER_METER, False)])
def test_it_answers_whether_a_meter_point_is_in_a_neighbourhood(
    sandbox: SandboxHandle, mpid: str, eligible: bool
) -> None:
    assert_request_matches("GET", f"/meters/{mpid}/eligible")

    response = sandbox.api("GET", f"/meters/{mpid}/eligible")

    assert response.status_code == 200
    assert spec_checked_json(response) == {"meterPointId": mpid, "isEligible": eligible}
