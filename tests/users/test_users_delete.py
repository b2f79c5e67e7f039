"""`spark-partner users delete ID`: say what is lost, change nothing without --yes."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.fixtures.sandbox import SandboxHandle
from tests.users.helpers import (
    add_report,
    api_requests,
    calls,
    cli,
    cli_json,
    execute,
    rows,
    user_document,
    write_json,
)

OSLO = ZoneInfo("Europe/Oslo")


def this_month() -> date:
    return datetime.now(OSLO).date().replace(day=1)


@pytest.fixture
def synced(sandbox: SandboxHandle, database_url: str, tmp_path: Path) -> SandboxHandle:
    """u-1 and u-2 in the registry and at Spark."""
    path = write_json(tmp_path / "users.json", [user_document("u-1"), user_document("u-2")])
    cli_json(database_url, "users", "import", str(path), sandbox=sandbox)
    sandbox.control.clear_requests()
    return sandbox


def delete(database_url: str, sandbox: SandboxHandle, *args: str) -> tuple[int, str, str]:
    result = cli(
        database_url, "users", "delete", *args, sandbox=sandbox, SPARK_TIMEZONE="Europe/Oslo"
    )
    return result.exit_code, result.stdout, result.stderr


def user_state(database_url: str, user_id: str = "u-1") -> dict[str, object]:
    (row,) = rows(
        database_url,
        "SELECT deleted_at IS NOT NULL AS deleted, delete_after_month FROM users"
        " WHERE user_id = %s",
        (user_id,),
    )
    return row


def at_spark(sandbox: SandboxHandle, user_id: str = "u-1") -> bool:
    return sandbox.api("GET", f"/users/{user_id}").status_code == 200


def test_it_only_explains_without_yes(synced: SandboxHandle, database_url: str) -> None:
    status, out, _ = delete(database_url, synced, "u-1")

    month = f"{this_month():%B %Y}"
    assert status == 1
    assert f"the user is not compensated for {month} (Europe/Oslo)" in out
    assert f"0 kWh reported for {month} and 0 pending report(s)" in out
    assert "Nothing was changed: repeat with --yes" in out
    assert user_state(database_url) == {"deleted": False, "delete_after_month": None}
    assert at_spark(synced)
    assert [c for c in calls(api_requests(synced)) if c[0] == "DELETE"] == []


def test_it_counts_the_months_reports_from_the_ledger(
    synced: SandboxHandle, database_url: str
) -> None:
    month = this_month()
    last_month = (month - timedelta(days=1)).replace(day=1)
    home = ("u-1-heater", "u-1-home")
    for event_id, in_month, report_status, target, kwh in [
        ("sent-1", month, "sent", home, 1.5),
        ("sent-2", month, "sent", ("u-1-car", "elsewhere"), 2.25),
        ("waiting", month, "retrying", home, None),
        ("refused", month, "rejected", home, None),
        ("missed", month, "missed", home, None),
        ("earlier", last_month, "sent", home, 100.0),
        ("neighbour", month, "sent", ("u-2-heater", "u-2-home"), 50.0),
        ("tomorrow", month, "pending", home, None),
        ("nothing-used", month, "empty", home, None),
    ]:
        add_report(database_url, event_id=event_id, month=in_month, status=report_status,
                   target=target, kwh=kwh)  # fmt: skip
    # A report split in two: the part with u-1's payload is still due, the part without it
    # is retrying; only the first concerns u-1.
    add_report(database_url, event_id="split", month=month, status="retrying",
               target=("u-2-heater", "u-2-home"), kwh=3.0)  # fmt: skip
    add_report(database_url, event_id="split", month=month, status="due", target=home,
               kwh=4.0, part=2)  # fmt: skip
    execute(
        database_url,
        "INSERT INTO resources (resource_id, user_id, location_id, resource_type) VALUES"
        " ('u-1-heater', 'u-1', 'u-1-home', 'HVAC'), ('u-1-car', 'u-1', NULL, 'Vehicle'),"
        " ('u-2-heater', 'u-2', 'u-2-home', 'HVAC')",
    )

    status, out, _ = delete(database_url, synced, "u-1", "--json")

    assert status == 1
    plan = json.loads(out)
    # waiting, refused, tomorrow and split's second part
    assert (plan["reportedKwh"], plan["pendingReports"]) == (3.75, 4)
    assert plan["month"] == f"{month:%Y-%m}"
    assert plan["changed"] is False
    text = delete(database_url, synced, "u-1")[1]
    assert f"3.75 kWh reported for {month:%B %Y} and 4 pending report(s)" in text


def test_it_deletes_at_spark_and_keeps_the_rows_with_yes(
    synced: SandboxHandle, database_url: str
) -> None:
    status, out, _ = delete(database_url, synced, "u-1", "--yes")

    assert status == 0, out
    assert "u-1: deleted" in out
    assert user_state(database_url) == {"deleted": True, "delete_after_month": None}
    assert rows(database_url, "SELECT count(*) AS n FROM locations WHERE user_id = 'u-1'") == [
        {"n": 1}
    ]
    assert not at_spark(synced)
    assert at_spark(synced, "u-2")
    listed = cli_json(database_url, "users", "list")
    assert [item["userId"] for item in listed] == ["u-2"]

    again, _, err = delete(database_url, synced, "u-1", "--yes")
    assert again == 1
    assert "user u-1 was deleted on" in err


def test_it_deletes_a_user_spark_has_already_forgotten(
    synced: SandboxHandle, database_url: str
) -> None:
    assert synced.api("DELETE", "/users/u-1").status_code == 204

    status, out, _ = delete(database_url, synced, "u-1", "--yes")

    assert status == 0, out
    assert user_state(database_url)["deleted"] is True


def test_it_schedules_the_deletion_for_the_months_end(
    synced: SandboxHandle, database_url: str
) -> None:
    unconfirmed, _, _ = delete(database_url, synced, "u-1", "--at-month-end")
    assert unconfirmed == 1
    assert user_state(database_url) == {"deleted": False, "delete_after_month": None}

    status, out, _ = delete(database_url, synced, "u-1", "--at-month-end", "--yes")

    assert status == 0, out
    assert f"u-1: pending deletion after {this_month():%B %Y}" in out
    assert user_state(database_url) == {"deleted": False, "delete_after_month": this_month()}
    assert at_spark(synced)
    pending = cli_json(database_url, "users", "list", "--pending-deletion")
    assert [(i["userId"], i["pendingDeletion"], i["deleteAfterMonth"]) for i in pending] == [
        ("u-1", True, f"{this_month():%Y-%m}")
    ]
    text = cli(database_url, "users", "list").stdout
    assert f"pending deletion after {this_month():%Y-%m}" in text

    cancelled, out, _ = delete(database_url, synced, "u-1", "--cancel")
    assert cancelled == 0
    assert "deletion cancelled" in out
    assert user_state(database_url) == {"deleted": False, "delete_after_month": None}
