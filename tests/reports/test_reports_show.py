"""`spark-partner reports show EVENT_ID --json`: the exact body sent, Spark's answer to each
attempt, and consumption that came after the report was sent."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
    send_event_reports,
    set_report_faults,
    utc,
    write_readings,
)

START = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
NOW = START + timedelta(hours=5)


def test_it_shows_the_body_sent_and_every_answer_and_late_readings_without_resending(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    event = curve(
        sandbox,
        database_url,
        [("ev-1", "home")],
        [START, START + HOUR],
        created_at=START - 20 * HOUR,
    )
    first = write_readings(tmp_path / "a.csv", [reading("ev-1", START, START + HOUR, 2.0)])
    import_readings(database_url, first, now=NOW)
    sandbox.control.set_clock(NOW, frozen=True)
    # The first attempt gets a 500, the second goes through.
    set_report_faults(sandbox, errorRate=1.0, status500Share=1, seed=1)
    failed = send_event_reports(database_url, sandbox, event.event_id, now=NOW)
    set_report_faults(sandbox)
    later = NOW + timedelta(minutes=30)
    cli_json(database_url, "reports", "send", "--due", "--now", utc(later), sandbox=sandbox)
    # Readings for the second hour arrive after the report was sent.
    late = write_readings(
        tmp_path / "b.csv", [reading("ev-1", START + HOUR, START + 2 * HOUR, 3.0)]
    )
    imported = import_readings(database_url, late, now=later + HOUR)

    shown = cli_json(database_url, "reports", "show", event.event_id)
    text = cli(database_url, "reports", "show", event.event_id)

    assert [r["status"] for r in failed["results"]] == ["retrying"]
    (report,) = shown["reports"]
    (stored,) = accepted_reports(sandbox, event.event_id)["reports"]
    assert report["body"] == json.loads(stored["rawBody"])
    assert report["status"] == "sent"
    assert report["sparkReportId"] == stored["id"]
    log = [(a["attempt"], a["outcome"], a["httpStatus"]) for a in report["attemptLog"]]
    assert log == [(1, "failed", 500), (2, "accepted", 200)]
    assert json.loads(report["attemptLog"][1]["response"])["id"] == stored["id"]
    assert imported["late"] == 1
    assert shown["late"]["readings"] == 1
    assert shown["late"]["kWhInEvent"] == 3.0
    assert shown["late"]["shown"][0]["change"] == "new"
    assert accepted_reports(sandbox)["countsByEventId"] == {event.event_id: 1}
    assert "late readings: 1 (3.000 kWh in the event's periods), not sent" in text.output


def test_it_says_when_an_event_has_no_report(database_url: str) -> None:
    result = cli(database_url, "reports", "show", "no-such-event")

    assert result.exit_code == 1
    assert "no report for event no-such-event" in result.output


def test_it_shows_a_reading_stored_while_rejected_and_missing_from_the_body_sent_as_late(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    event = curve(sandbox, database_url, [("car", "home")], [START, START + HOUR],
                  created_at=START - 20 * HOUR)  # fmt: skip
    first = write_readings(tmp_path / "a.csv", [reading("car", START, START + HOUR, 2.0)])
    import_readings(database_url, first, now=NOW)
    # Spark's clock is past the deadline: the report is rejected, naming no payload.
    sandbox.control.set_clock(datetime(2026, 4, 3, tzinfo=UTC), frozen=True)
    send = ("reports", "send", "--event", event.event_id)
    assert cli(database_url, *send, "--now", utc(NOW), sandbox=sandbox).exit_code == 1
    # An earlier attempt's answer never came: it may have reached Spark, so the report is
    # sent again as it was, not built again.
    execute(database_url, "UPDATE reports SET ambiguous_attempts = 1")
    second = write_readings(
        tmp_path / "b.csv", [reading("car", START + HOUR, START + 2 * HOUR, 3.0)]
    )
    import_readings(database_url, second, now=NOW + HOUR)
    sandbox.control.set_clock(NOW + 2 * HOUR, frozen=True)
    assert cli(database_url, *send, "--now", utc(NOW + 2 * HOUR), sandbox=sandbox).exit_code == 0

    shown = cli_json(database_url, "reports", "show", event.event_id)

    (sent,) = accepted_reports(sandbox, event.event_id)["reports"]
    assert [p["kiloWattHours"] for p in sent["body"]["payloads"][0]["points"]] == [2.0]
    assert shown["late"]["readings"] == 1
    assert shown["late"]["kWhInEvent"] == 3.0
    (late,) = shown["late"]["shown"]
    assert (late["resourceId"], late["kWh"]) == ("car", 3.0)
