"""`spark-partner meters check MPID`: Spark's verdict on a meter point, and who uses it."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.sandbox import SandboxHandle
from tests.users.helpers import (
    ELIGIBLE_MPID,
    OTHER_MPID,
    api_requests,
    assert_requests_match_spec,
    calls,
    cli,
    cli_json,
    user_document,
    write_json,
)


def test_it_asks_spark_and_lists_the_registry_locations_on_that_meter(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    path = write_json(
        tmp_path / "users.json",
        [user_document("u-1", mpids=(ELIGIBLE_MPID,)), user_document("u-2", mpids=(OTHER_MPID,))],
    )
    cli_json(database_url, "users", "import", str(path), "--no-sync")

    eligible = cli_json(database_url, "meters", "check", ELIGIBLE_MPID, sandbox=sandbox)
    other = cli_json(database_url, "meters", "check", OTHER_MPID, sandbox=sandbox)

    assert eligible == {
        "meterPointId": ELIGIBLE_MPID,
        "isEligible": True,
        "locations": [{"locationId": "u-1-home", "userId": "u-1"}],
    }
    assert other["isEligible"] is False
    assert other["locations"] == [{"locationId": "u-2-home", "userId": "u-2"}]
    sent = api_requests(sandbox)
    assert calls(sent) == [
        ("GET", f"/meters/{ELIGIBLE_MPID}/eligible"),
        ("GET", f"/meters/{OTHER_MPID}/eligible"),
    ]
    assert_requests_match_spec(sent)


def test_it_says_so_in_words(sandbox: SandboxHandle, database_url: str) -> None:
    result = cli(database_url, "meters", "check", ELIGIBLE_MPID, sandbox=sandbox)

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"{ELIGIBLE_MPID}: eligible for Spark\n  used by no location in the registry\n"
    )


def test_it_fails_when_spark_is_not_configured(database_url: str) -> None:
    result = cli(database_url, "meters", "check", ELIGIBLE_MPID, SPARK_API_URL="")

    assert result.exit_code == 1
    assert "Spark API access needs SPARK_API_URL" in result.stderr
