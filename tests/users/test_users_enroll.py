"""`spark-partner users enroll ID` and `users unenroll ID`: manual enrollment at Spark."""

from __future__ import annotations

import json
from pathlib import Path

from shared.timeutil import parse_spark_datetime
from tests.fixtures.sandbox import SandboxHandle
from tests.spec import spec_checked_json
from tests.users.helpers import (
    api_requests,
    assert_requests_match_spec,
    calls,
    cli,
    cli_json,
    execute,
    rows,
    user_document,
    write_json,
)


def synced_user(database_url: str, sandbox: SandboxHandle, tmp_path: Path, user_id: str) -> None:
    path = write_json(tmp_path / f"{user_id}.json", [user_document(user_id)])
    cli_json(database_url, "users", "import", str(path), sandbox=sandbox)


def spark_enrollment(sandbox: SandboxHandle, user_id: str) -> dict[str, object]:
    response = sandbox.api("GET", f"/users/{user_id}/enrollment")
    assert response.status_code == 200, response.text
    body: dict[str, object] = spec_checked_json(response)
    return body


def test_it_enrolls_a_user_and_stores_what_spark_answered(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    synced_user(database_url, sandbox, tmp_path, "u-1")
    execute(database_url, "UPDATE users SET eligible = true WHERE user_id = 'u-1'")
    sandbox.control.clear_requests()

    result = cli(database_url, "users", "enroll", "u-1", "--json", sandbox=sandbox)

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    answer = json.loads(result.stdout)
    at_spark = spark_enrollment(sandbox, "u-1")
    assert at_spark["isEnrolled"] is True
    assert answer["outcome"] == "enrolled"
    assert answer["enrollmentId"] == at_spark["enrollmentId"]
    (stored,) = rows(
        database_url,
        "SELECT enrolled, enrollment_id, enrolled_at FROM users WHERE user_id = 'u-1'",
    )
    assert stored["enrolled"] is True
    assert stored["enrollment_id"] == at_spark["enrollmentId"]
    assert stored["enrolled_at"] == parse_spark_datetime(str(at_spark["enrollmentDate"]))
    sent = api_requests(sandbox)
    assert calls(sent)[0] == ("POST", "/users/u-1/enrollment")
    assert sent[0]["json"] is None
    assert_requests_match_spec(sent)

    again = cli_json(database_url, "users", "enroll", "u-1", sandbox=sandbox)
    assert again["enrollmentId"] == at_spark["enrollmentId"]


def test_it_warns_before_enrolling_a_user_who_is_not_eligible(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    synced_user(database_url, sandbox, tmp_path, "u-1")
    execute(database_url, "UPDATE users SET consented = false WHERE user_id = 'u-1'")

    result = cli(database_url, "users", "enroll", "u-1", sandbox=sandbox)

    assert result.exit_code == 0, result.output
    assert "user u-1 is not eligible" in result.stderr
    assert "user u-1 has not consented" in result.stderr
    assert spark_enrollment(sandbox, "u-1")["isEnrolled"] is True


def test_it_records_why_spark_refused_and_exits_non_zero(
    sandbox: SandboxHandle, database_url: str
) -> None:
    # In the registry, never pushed to Spark.
    execute(database_url, "INSERT INTO users (user_id, eligible) VALUES ('u-1', true)")

    result = cli(database_url, "users", "enroll", "u-1", sandbox=sandbox)

    assert result.exit_code == 1
    assert "Spark does not know this user" in result.output
    assert rows(database_url, "SELECT enrolled, enrollment_error FROM users") == [
        {"enrolled": False,
         "enrollment_error": "Spark does not know this user (run `spark-partner users sync`)"}
    ]  # fmt: skip


def test_it_refuses_users_outside_the_registry(sandbox: SandboxHandle, database_url: str) -> None:
    execute(database_url, "INSERT INTO users (user_id, deleted_at) VALUES ('gone', now())")

    unknown = cli(database_url, "users", "enroll", "nobody", sandbox=sandbox)
    deleted = cli(database_url, "users", "unenroll", "gone", sandbox=sandbox)

    assert unknown.exit_code == 1
    assert "no user nobody in the registry" in unknown.stderr
    assert deleted.exit_code == 1
    assert "user gone was deleted" in deleted.stderr
    assert api_requests(sandbox) == []


def test_it_unenrolls_a_user_and_repeating_it_is_harmless(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    synced_user(database_url, sandbox, tmp_path, "u-1")
    cli_json(database_url, "users", "enroll", "u-1", sandbox=sandbox)

    first = cli_json(database_url, "users", "unenroll", "u-1", sandbox=sandbox)
    second = cli_json(database_url, "users", "unenroll", "u-1", sandbox=sandbox)

    assert first["outcome"] == second["outcome"] == "unenrolled"
    assert spark_enrollment(sandbox, "u-1")["isEnrolled"] is False
    assert rows(database_url, "SELECT enrolled, enrollment_id, enrolled_at FROM users") == [
        {"enrolled": False, "enrollment_id": None, "enrolled_at": None}
    ]
    assert_requests_match_spec(api_requests(sandbox))
