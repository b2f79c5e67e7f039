"""`spark-partner users show ID`: one user's whole record, with warnings."""

from __future__ import annotations

from pathlib import Path

from tests.users.helpers import (
    OTHER_MPID,
    cli,
    cli_json,
    execute,
    user_document,
    write_json,
)


def eligibility_history(database_url: str) -> None:
    """u-1 became eligible through an event, then lost it in a daily reconcile."""
    execute(
        database_url,
        "INSERT INTO events (event_id, notification_type, payload_type, event_created_at,"
        " payload, raw_body, first_received_at, last_received_at, first_source)"
        " VALUES ('ev-1', 'UserEligibilityUpdated', 'UserEligibility',"
        " '2026-10-01T08:00:00Z', '{}', '\\x7b7d', now(), now(), 'webhook')",
    )
    execute(
        database_url,
        "INSERT INTO eligibility_reconciles (id, trigger, status) VALUES"
        " (1, 'event', 'done'), (2, 'daily', 'done')",
    )
    execute(
        database_url,
        "INSERT INTO eligibility_hints (event_id, user_id, change, reconcile_id)"
        " VALUES ('ev-1', 'u-1', 'added', 1)",
    )
    execute(
        database_url,
        "INSERT INTO eligibility_transitions (user_id, became_eligible, at, reason, event_id,"
        " reconcile_id) VALUES"
        " ('u-1', true, '2026-10-01T08:01:00Z', 'event', 'ev-1', 1),"
        " ('u-1', false, '2026-10-05T03:00:00Z', 'reconcile', NULL, 2)",
    )


def test_it_shows_the_whole_record_as_json(database_url: str, tmp_path: Path) -> None:
    document = user_document(
        "u-1", mpids=(OTHER_MPID,), resources=(("u-1-tank", "HotWaterTank"),), vehicles=("car",)
    )
    document["locations"].append({"locationId": "u-1-cabin", "locationType": "Other"})
    cli_json(database_url, "users", "import", str(write_json(tmp_path / "u.json", [document])),
             "--no-sync")  # fmt: skip
    eligibility_history(database_url)

    shown = cli_json(database_url, "users", "show", "u-1")

    assert set(shown) == {
        "user", "enrollment", "locations", "resources", "eligibilityTransitions",
        "eligibilityHints", "warnings",
    }  # fmt: skip
    assert shown["user"]["userId"] == "u-1"
    assert shown["user"]["consented"] is True
    assert shown["user"]["pendingDeletion"] is False
    assert shown["enrollment"] == {
        "enrolled": False, "enrollmentId": None, "enrolledAt": None, "error": None,
    }  # fmt: skip
    assert [(loc["locationId"], loc["meterPointIds"]) for loc in shown["locations"]] == [
        ("u-1-cabin", []),
        ("u-1-home", [OTHER_MPID]),
    ]
    assert [(r["resourceId"], r["locationId"]) for r in shown["resources"]] == [
        ("u-1-tank", "u-1-home"),
        ("car", None),
    ]
    assert [(t["becameEligible"], t["reason"], t["eventId"])
            for t in shown["eligibilityTransitions"]] == [
        (True, "event", "ev-1"),
        (False, "reconcile", None),
    ]  # fmt: skip
    assert shown["eligibilityHints"] == [
        {"eventId": "ev-1", "change": "added", "eventCreatedAt": "2026-10-01T08:00:00+00:00",
         "reconcileId": 1}
    ]  # fmt: skip
    assert (
        "location u-1-cabin has no meterPointIds: it will not be compensated" in (shown["warnings"])
    )
    assert not any("u-1-home" in warning for warning in shown["warnings"])


def test_it_shows_a_summary_with_warnings_as_text(database_url: str, tmp_path: Path) -> None:
    path = write_json(tmp_path / "u.json", [user_document("u-1", mpids=())])
    cli_json(database_url, "users", "import", str(path), "--no-sync")
    execute(database_url, "UPDATE users SET delete_after_month = '2026-10-01'")

    result = cli(database_url, "users", "show", "u-1")

    assert result.exit_code == 0, result.output
    assert "u-1-home (Residential): no MPID" in result.stdout
    assert "warning: pending deletion after October 2026's final reports" in result.stdout
    assert "warning: location u-1-home has no meterPointIds" in result.stdout


def test_it_fails_for_an_unknown_user(database_url: str) -> None:
    result = cli(database_url, "users", "show", "nobody")

    assert result.exit_code == 1
    assert "no user nobody in the registry" in result.stderr
