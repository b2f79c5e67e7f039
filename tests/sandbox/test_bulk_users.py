"""`POST /_sandbox/users/bulk`: very many eligible users at once, and `/users/eligible` paging
through them quickly."""

from __future__ import annotations

import time

import requests

from tests.fixtures.sandbox import HTTP_TIMEOUT, SandboxHandle
from tests.spec import spec_checked_json

COUNT = 100_000


def test_it_sets_up_100000_eligible_users_that_page_quickly(sandbox: SandboxHandle) -> None:
    started = time.monotonic()
    created = sandbox.control.bulk_users(COUNT, prefix="bulk-")
    setup_took = time.monotonic() - started

    seen: list[str] = []
    started = time.monotonic()
    for page in range(1, COUNT // 1000 + 2):
        response = sandbox.api("GET", "/users/eligible", params={"page": page, "pageSize": 1000})
        assert response.status_code == 200
        seen.extend(user["userId"] for user in response.json()["users"])
    paging_took = time.monotonic() - started

    assert created == {
        "created": COUNT,
        "firstUserId": "bulk-0000000",
        "lastUserId": "bulk-0099999",
    }
    assert setup_took < 10
    assert paging_took < 10
    assert seen == [f"bulk-{n:07d}" for n in range(COUNT)]
    last = sandbox.api("GET", "/users/eligible", params={"page": 100, "pageSize": 1000})
    assert spec_checked_json(last)["pagination"]["totalRecords"] == COUNT
    assert spec_checked_json(last)["pagination"]["nextPage"] is None


def test_it_gives_every_bulk_user_a_location_in_a_neighbourhood(sandbox: SandboxHandle) -> None:
    sandbox.control.bulk_users(20, prefix="few-", neighbourhood_id="area-2")

    locations = spec_checked_json(sandbox.api("GET", "/users/few-0000007/locations"))

    assert [loc["locationId"] for loc in locations] == ["few-0000007-location"]
    assert sandbox.directory.get_location(
        "few-0000007", "few-0000007-location"
    ).neighbourhood_ids == ("area-2",)
    assert all(sandbox.directory.is_eligible(f"few-{n:07d}") for n in range(20))


def test_it_announces_bulk_users_only_when_asked(sandbox: SandboxHandle) -> None:
    sandbox.control.bulk_users(5, prefix="quiet-")
    quiet = sandbox.control.flush_eligibility()
    sandbox.control.bulk_users(3, prefix="loud-", announce=True)
    loud = sandbox.control.flush_eligibility()

    assert quiet is None
    assert loud is not None
    assert loud["payload"]["addedUsers"] == ["loud-0000000", "loud-0000001", "loud-0000002"]


def test_it_rejects_bad_bulk_requests(sandbox: SandboxHandle) -> None:
    sandbox.control.bulk_users(2, prefix="taken-")
    url = sandbox.control.url + "/users/bulk"
    bodies = [
        {"count": 0},
        {"count": "many"},
        {"count": 2, "neighbourhoodId": "atlantis"},
        {"count": 2, "userIdPrefix": "taken-"},
        {"count": 2, "userIdPrefix": "a/b"},
    ]

    statuses = [requests.post(url, json=b, timeout=HTTP_TIMEOUT).status_code for b in bodies]

    assert statuses == [400] * len(bodies)
    assert sandbox.directory.users_page(0, 10)[1] == 2
