"""A bad target never sinks its event: payloads Spark cannot accept are left out before
sending, and payloads Spark's refusal names are set aside while the rest goes at once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.fixtures.sandbox import SandboxHandle
from tests.reports.support import (
    HOUR,
    accepted_reports,
    cli,
    cli_json,
    curve,
    execute,
    import_readings,
    reading,
    register_charger,
    report_rows,
    utc,
    write_readings,
)

START = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
END = START + 2 * HOUR
METER = "707057500000000001"


def at_spark(sandbox: SandboxHandle, user_id: str, location_id: str, resource_id: str) -> None:
    sandbox.add_user(user_id)
    sandbox.add_location(user_id, location_id, meterPointIds=[METER])
    sandbox.add_resource(user_id, location_id, resource_id)


def event_with_readings(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path, targets: list[tuple[str, str]]
) -> str:
    event = curve(sandbox, database_url, targets, [START, START + HOUR],
                  created_at=START - 20 * HOUR)  # fmt: skip
    readings = [reading(r, START, END, 2.0, location_id=loc) for r, loc in targets]
    import_readings(database_url, write_readings(tmp_path / "r.csv", readings), now=END)
    return event.event_id


def send_the_day_after(database_url: str, sandbox: SandboxHandle) -> dict[str, Any]:
    now = END + 3 * HOUR
    sandbox.control.set_clock(now, frozen=True)
    sent: dict[str, Any] = cli_json(
        database_url, "reports", "send", "--due", "--now", utc(now), sandbox=sandbox
    )
    return sent


def test_it_leaves_out_a_target_whose_user_was_deleted_and_sends_the_rest(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    for user in ("stays", "gone"):
        register_charger(database_url, user, f"{user}-home", f"{user}-ev",
                         meter_point_ids=[METER])  # fmt: skip
        at_spark(sandbox, user, f"{user}-home", f"{user}-ev")
    event_id = event_with_readings(
        sandbox, database_url, tmp_path, [("stays-ev", "stays-home"), ("gone-ev", "gone-home")]
    )
    # Deleted at Spark and in the registry after the curve came.
    assert sandbox.api("DELETE", "/users/gone").status_code in (200, 204)
    execute(database_url, "UPDATE users SET deleted_at = %s WHERE user_id = 'gone'", (END,))

    send_the_day_after(database_url, sandbox)
    shown = cli_json(database_url, "reports", "show", event_id)
    listed = cli(database_url, "reports", "deadlines", "--now", utc(END + 4 * HOUR))

    (sent,) = accepted_reports(sandbox, event_id)["reports"]
    assert [p["resourceId"] for p in sent["body"]["payloads"]] == ["stays-ev"]
    assert [(x["resourceId"], x["reason"], x["detail"]) for x in shown["leftOut"]] == [
        ("gone-ev", "user_deleted", "user gone was deleted at Spark")
    ]
    assert "1 target(s) left out" in listed.output
    assert "left out: " + event_id + ": gone-ev@gone-home user_deleted" in listed.output


def test_it_sets_aside_the_payload_sparks_refusal_names_and_sends_the_rest_at_once(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    # Spark knows the user is gone; our registry was not told.
    for user in ("a", "b", "c"):
        at_spark(sandbox, user, f"{user}-home", f"{user}-ev")
    event_id = event_with_readings(
        sandbox, database_url, tmp_path, [(f"{u}-ev", f"{u}-home") for u in ("a", "b", "c")]
    )
    assert sandbox.api("DELETE", "/users/b").status_code in (200, 204)

    sent = send_the_day_after(database_url, sandbox)
    shown = cli_json(database_url, "reports", "show", event_id)

    assert [r["status"] for r in sent["results"]] == ["set_aside", "sent"]
    (accepted,) = accepted_reports(sandbox, event_id)["reports"]
    assert [p["resourceId"] for p in accepted["body"]["payloads"]] == ["a-ev", "c-ev"]
    ((aside),) = shown["setAside"]
    assert (aside["resourceId"], aside["reason"]) == ("b-ev", "refused_by_spark")
    assert "Spark answered 400" in aside["detail"]
    assert "b-ev" in aside["detail"]
    assert "deleted" in aside["detail"]
    (report,) = report_rows(database_url, event_id)
    assert (report["status"], report["payload_count"]) == ("sent", 2)
    attempts = [a["outcome"] for a in shown["reports"][0]["attemptLog"]]
    assert attempts == ["rejected", "accepted"]
