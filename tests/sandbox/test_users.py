"""`/users`, `/users/{userId}` and `/users/batch`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.sandbox import IN_AREA_1, SandboxHandle
from tests.spec import assert_request_matches, spec_checked_json


def test_it_creates_and_fetches_a_user(sandbox: SandboxHandle) -> None:
    assert_request_matches("POST", "/users", {"userId": "user-1"})

    created = sandbox.api("POST", "/users", json={"userId": "user-1"})
    fetched = sandbox.api("GET", "/users/user-1")

    assert created.status_code == 201
    assert spec_checked_json(created) == {"userId": "user-1"}
    assert fetched.status_code == 200
    assert spec_checked_json(fetched) == {"userId": "user-1"}


def test_it_answers_404_without_a_body_for_an_unknown_user(sandbox: SandboxHandle) -> None:
    response = sandbox.api("GET", "/users/nobody")

    assert response.status_code == 404
    assert response.content == b""
    spec_checked_json(response)


def test_it_rejects_a_duplicate_user_id_with_a_string(sandbox: SandboxHandle) -> None:
    sandbox.add_user("user-1")

    again = sandbox.api("POST", "/users", json={"userId": "user-1"})

    # The spec declares no 409 for POST /users; a 400 with a message is what it allows.
    assert again.status_code == 400
    assert "user-1" in spec_checked_json(again)


@pytest.mark.parametrize("body", [{}, {"userId": ""}, {"userId": "  "}, {"userId": 7}, []])
def test_it_rejects_a_user_without_a_usable_id(sandbox: SandboxHandle, body: Any) -> None:
    response = sandbox.api("POST", "/users", json=body)

    assert response.status_code == 400
    assert isinstance(spec_checked_json(response), str)
    assert sandbox.directory.users_page(0, 10) == ([], 0)


def test_it_lists_users_in_id_order_page_by_page(sandbox: SandboxHandle) -> None:
    for user_id in ("c", "a", "e", "b", "d"):
        sandbox.add_user(user_id)
    assert_request_matches("GET", "/users", query={"page": "2", "pageSize": "2"})

    pages = [
        spec_checked_json(sandbox.api("GET", "/users", params={"page": n, "pageSize": 2}))
        for n in (1, 2, 3)
    ]

    assert [[u["userId"] for u in page["users"]] for page in pages] == [
        ["a", "b"],
        ["c", "d"],
        ["e"],
    ]
    assert pages[1]["pagination"] == {
        "totalRecords": 5,
        "pageSize": 2,
        "currentPage": 2,
        "totalPages": 3,
        "nextPage": 3,
        "previousPage": 1,
    }


def test_it_rejects_a_page_size_over_1000_with_a_string(sandbox: SandboxHandle) -> None:
    response = sandbox.api("GET", "/users", params={"pageSize": 1001})

    assert response.status_code == 400
    assert "1000" in spec_checked_json(response)


def test_it_creates_users_in_a_batch(sandbox: SandboxHandle) -> None:
    body = {"users": [{"userId": "batch-1"}, {"userId": "batch-2"}]}
    assert_request_matches("POST", "/users/batch", body)

    response = sandbox.api("POST", "/users/batch", json=body)

    assert response.status_code == 201
    assert spec_checked_json(response) == body
    assert sandbox.directory.users_page(0, 10) == (["batch-1", "batch-2"], 2)


@pytest.mark.parametrize(
    "users",
    [
        [{"userId": "new"}, {"userId": "taken"}],
        [{"userId": "new"}, {"userId": "new"}],
        [{"userId": "new"}, {"name": "no id"}],
    ],
)
def test_it_creates_nothing_from_a_batch_with_a_bad_user(
    sandbox: SandboxHandle, users: list[dict[str, Any]]
) -> None:
    sandbox.add_user("taken")

    response = sandbox.api("POST", "/users/batch", json={"users": users})

    assert response.status_code == 400
    assert isinstance(spec_checked_json(response), str)
    assert sandbox.directory.users_page(0, 10) == (["taken"], 1)


def test_it_deletes_a_user_and_keeps_a_record_with_the_deletion_time(
    sandbox: SandboxHandle,
) -> None:
    sandbox.control.set_clock("2025-05-14T10:00:00+00:00", frozen=True)
    sandbox.add_user("leaving")
    sandbox.add_location("leaving", "home", coordinates=IN_AREA_1)
    sandbox.control.set_clock("2025-05-20T08:30:00+00:00", frozen=True)

    deleted = sandbox.api("DELETE", "/users/leaving")

    assert deleted.status_code == 204
    spec_checked_json(deleted)
    assert sandbox.api("GET", "/users/leaving").status_code == 404
    assert sandbox.api("GET", "/users/leaving/locations/home").status_code == 404
    (record,) = sandbox.control.deleted_users()
    assert record["userId"] == "leaving"
    assert record["createdAt"] == "2025-05-14T10:00:00+00:00"
    assert record["deletedAt"] == "2025-05-20T08:30:00+00:00"
    assert record["locationIds"] == ["home"]


def test_it_answers_404_for_deleting_an_unknown_user(sandbox: SandboxHandle) -> None:
    response = sandbox.api("DELETE", "/users/nobody")

    assert response.status_code == 404
    spec_checked_json(response)


def test_it_lets_a_deleted_user_id_be_used_again(sandbox: SandboxHandle) -> None:
    sandbox.add_user("returning")
    sandbox.api("DELETE", "/users/returning")

    again = sandbox.api("POST", "/users", json={"userId": "returning"})

    assert again.status_code == 201
    assert len(sandbox.control.deleted_users()) == 1


def test_it_forgets_users_and_their_data_on_reset(sandbox: SandboxHandle) -> None:
    sandbox.add_user("user-1")
    sandbox.add_location("user-1", "home", coordinates=IN_AREA_1)
    sandbox.api("DELETE", "/users/user-1")
    sandbox.add_user("user-2")
    sandbox.add_location("user-2", "home", coordinates=IN_AREA_1)

    sandbox.control.reset()

    assert spec_checked_json(sandbox.api("GET", "/users"))["users"] == []
    assert spec_checked_json(sandbox.api("GET", "/users/eligible"))["users"] == []
    assert sandbox.control.deleted_users() == []
    assert sandbox.control.eligibility()["windowOpenedAt"] is None
    assert sandbox.control.flush_eligibility() is None
