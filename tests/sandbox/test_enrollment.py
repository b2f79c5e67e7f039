"""`/users/{userId}/enrollment`: GET, POST (enroll) and DELETE (leave the program)."""

from __future__ import annotations

import uuid

import pytest

from tests.fixtures.sandbox import SandboxHandle
from tests.spec import assert_request_matches, spec_checked_json

PATH = "/users/user-1/enrollment"


def test_it_reports_a_new_user_as_not_enrolled(sandbox: SandboxHandle) -> None:
    sandbox.add_user("user-1")

    response = sandbox.api("GET", PATH)

    assert response.status_code == 200
    assert spec_checked_json(response) == {
        "isEnrolled": False,
        "userId": "user-1",
        "enrollmentId": None,
        "enrollmentDate": None,
    }


def test_it_enrolls_a_user(sandbox: SandboxHandle) -> None:
    sandbox.add_user("user-1")
    sandbox.control.set_clock("2025-03-01T09:15:00+00:00", frozen=True)
    assert_request_matches("POST", PATH)

    enrolled = sandbox.api("POST", PATH)
    fetched = sandbox.api("GET", PATH)

    assert enrolled.status_code == 200
    body = spec_checked_json(enrolled)
    assert body["isEnrolled"] is True
    assert body["userId"] == "user-1"
    assert str(uuid.UUID(body["enrollmentId"])) == body["enrollmentId"]
    assert body["enrollmentDate"] == "2025-03-01T09:15:00+00:00"
    assert spec_checked_json(fetched) == body


def test_it_keeps_the_enrollment_of_an_enrolled_user(sandbox: SandboxHandle) -> None:
    sandbox.add_user("user-1")
    first = sandbox.api("POST", PATH).json()
    sandbox.control.advance_clock(3600)

    second = sandbox.api("POST", PATH)

    assert spec_checked_json(second) == first


def test_it_ends_an_enrollment_and_can_enroll_again(sandbox: SandboxHandle) -> None:
    sandbox.add_user("user-1")
    first = sandbox.api("POST", PATH).json()

    left = sandbox.api("DELETE", PATH)
    after_leaving = sandbox.api("GET", PATH)
    rejoined = sandbox.api("POST", PATH).json()

    assert left.status_code == 204
    spec_checked_json(left)
    assert spec_checked_json(after_leaving)["isEnrolled"] is False
    assert rejoined["isEnrolled"] is True
    assert rejoined["enrollmentId"] != first["enrollmentId"]
    periods = sandbox.directory.enrollments("user-1")
    assert [p.active for p in periods] == [False, True]


def test_it_lets_a_user_that_is_not_enrolled_leave(sandbox: SandboxHandle) -> None:
    sandbox.add_user("user-1")

    response = sandbox.api("DELETE", PATH)

    assert response.status_code == 204


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_it_answers_404_for_an_unknown_user(sandbox: SandboxHandle, method: str) -> None:
    response = sandbox.api(method, "/users/nobody/enrollment")

    assert response.status_code == 404
    assert response.content == b""
    spec_checked_json(response)


def test_it_ends_the_enrollment_when_the_user_is_deleted(sandbox: SandboxHandle) -> None:
    sandbox.control.set_clock("2025-03-01T00:00:00+00:00", frozen=True)
    sandbox.add_user("user-1")
    sandbox.api("POST", PATH)
    sandbox.control.set_clock("2025-03-17T12:00:00+00:00", frozen=True)

    sandbox.api("DELETE", "/users/user-1")

    (record,) = sandbox.control.deleted_users()
    (period,) = record["enrollments"]
    assert period["enrolledAt"] == "2025-03-01T00:00:00+00:00"
    assert period["endedAt"] == record["deletedAt"] == "2025-03-17T12:00:00+00:00"
