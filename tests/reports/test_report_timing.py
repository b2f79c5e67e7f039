"""When a report goes: the day after its event whatever the readings, the month's last day
waiting for a day-late meter, and `reports send --event` before the end or past the deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.fixtures.sandbox import SandboxHandle
from tests.reports.support import (
    HOUR,
    accepted_reports,
    cli,
    cli_json,
    curve,
    import_readings,
    local,
    points_of,
    reading,
    report_rows,
    utc,
    write_readings,
)


def send_due(database_url: str, sandbox: SandboxHandle, now: datetime, **env: str) -> object:
    sandbox.control.set_clock(now.astimezone(UTC), frozen=True)
    return cli_json(
        database_url, "reports", "send", "--due", "--now", utc(now), sandbox=sandbox, **env
    )


def test_it_sends_an_event_the_day_after_and_leaves_out_the_targets_without_readings(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    start = local(2026, 3, 10, 17)
    targets = [("car", "home"), ("silent", "cabin")]
    event = curve(sandbox, database_url, targets, [start, start + HOUR],
                  created_at=start - 20 * HOUR)  # fmt: skip
    end = start + 2 * HOUR
    path = write_readings(tmp_path / "r.csv", [reading("car", start, end, 4.0)])
    import_readings(database_url, path, now=end + HOUR)

    send_due(database_url, sandbox, end + 3 * HOUR)
    waiting = report_rows(database_url, event.event_id)[0]["status"]
    send_due(database_url, sandbox, end + 24 * HOUR)
    shown = cli_json(database_url, "reports", "show", event.event_id)
    text = cli(database_url, "reports", "show", event.event_id)

    assert waiting == "pending"
    (sent,) = accepted_reports(sandbox, event.event_id)["reports"]
    assert [p["resourceId"] for p in sent["body"]["payloads"]] == ["car"]
    assert [(x["resourceId"], x["reason"], x["detail"]) for x in shown["leftOut"]] == [
        ("silent", "no_readings", "no readings at all")
    ]
    assert "left out: silent@cabin no_readings (no readings at all)" in text.output


def test_it_waits_for_the_last_days_readings_until_the_final_margin_before_the_deadline(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    # The last evening of October 2026 in Oslo; the month ends at 23:00 UTC, its deadline
    # (a day of grace) at 23:00 UTC on November 1st. The meter's batch comes 20 hours after
    # the month's end: with a final margin of 3 hours the report waits for it.
    start = local(2026, 10, 31, 22)
    month_end = local(2026, 11, 1, 0)
    event = curve(sandbox, database_url, [("car", "home"), ("van", "depot")],
                  [start, start + HOUR], created_at=start - 20 * HOUR)  # fmt: skip
    # The van's readings come within SPARK_REPORT_SETTLE of the end, as on any day.
    vans = write_readings(tmp_path / "v.csv", [reading("van", start, month_end, 1.0)])
    import_readings(database_url, vans, now=month_end + HOUR)
    margin = {"SPARK_REPORT_FINAL_MARGIN": "3h"}

    send_due(database_url, sandbox, month_end + 19 * HOUR, **margin)
    waiting = report_rows(database_url, event.event_id)[0]["status"]
    cars = write_readings(tmp_path / "c.csv", [reading("car", start, month_end, 6.0)])
    import_readings(database_url, cars, now=month_end + 20 * HOUR)
    send_due(database_url, sandbox, month_end + 20 * HOUR, **margin)

    assert waiting == "pending"
    (sent,) = accepted_reports(sandbox, event.event_id)["reports"]
    assert [p["kiloWattHours"] for p in points_of(sent["body"], "car")] == [3.0, 3.0]
    assert [p["kiloWattHours"] for p in points_of(sent["body"], "van")] == [0.5, 0.5]
    assert sent["createdAt"].startswith("2026-11-01T19:00:00")


def test_it_sends_what_the_last_day_has_at_the_final_margin_without_the_late_meter(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    start = local(2026, 10, 31, 22)
    month_end = local(2026, 11, 1, 0)
    event = curve(sandbox, database_url, [("car", "home"), ("van", "depot")],
                  [start, start + HOUR], created_at=start - 20 * HOUR)  # fmt: skip
    vans = write_readings(tmp_path / "v.csv", [reading("van", start, month_end, 1.0)])
    import_readings(database_url, vans, now=month_end + HOUR)

    # The default margin: six hours before the deadline (end of October + a day).
    send_due(database_url, sandbox, month_end + 17 * HOUR)
    before = report_rows(database_url, event.event_id)[0]["status"]
    send_due(database_url, sandbox, month_end + 18 * HOUR)

    assert before == "pending"
    (report,) = report_rows(database_url, event.event_id)
    assert (report["status"], report["due_reason"]) == ("sent", "final")
    (sent,) = accepted_reports(sandbox, event.event_id)["reports"]
    assert [p["resourceId"] for p in sent["body"]["payloads"]] == ["van"]


def test_it_refuses_to_send_an_event_that_has_not_ended_unless_told_and_says_what_is_lost(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    start = datetime(2026, 3, 10, 8, tzinfo=UTC)
    event = curve(sandbox, database_url, [("car", "home")], [start + n * HOUR for n in range(3)],
                  created_at=start - 20 * HOUR)  # fmt: skip
    path = write_readings(tmp_path / "r.csv", [reading("car", start, start + HOUR, 2.0)])
    now = start + HOUR + timedelta(minutes=30)
    import_readings(database_url, path, now=now)
    sandbox.control.set_clock(now, frozen=True)
    send = ("reports", "send", "--event", event.event_id, "--now", utc(now))

    refused = cli(database_url, *send, sandbox=sandbox)
    nothing_sent = accepted_reports(sandbox, event.event_id)["reports"]
    forced = cli(database_url, *send, "--before-end", sandbox=sandbox)

    assert refused.exit_code == 1
    assert f"event {event.event_id} has not ended" in refused.output
    assert "--before-end" in refused.output
    assert nothing_sent == []
    assert forced.exit_code == 0, forced.output
    assert (
        "2 period(s) not known yet and not reported: 2026-03-10 09:00Z, 2026-03-10 10:00Z"
        in forced.output
    )
    (sent,) = accepted_reports(sandbox, event.event_id)["reports"]
    assert [p["kiloWattHours"] for p in points_of(sent["body"], "car")] == [2.0]


def test_it_marks_an_event_past_its_deadline_missed_and_says_so(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    start = datetime(2026, 3, 10, 8, tzinfo=UTC)
    event = curve(sandbox, database_url, [("car", "home")], [start],
                  created_at=start - 20 * HOUR)  # fmt: skip
    cli(database_url, "reports", "deadlines", "--now", utc(start))
    send_due(database_url, sandbox, start + HOUR)
    late = datetime(2026, 4, 2, 12, tzinfo=UTC)
    sandbox.control.set_clock(late, frozen=True)

    result = cli(database_url, "reports", "send", "--event", event.event_id, "--now", utc(late),
                 sandbox=sandbox)  # fmt: skip

    assert result.exit_code == 1
    assert "deadline of event" in result.output
    assert "2026-04-01T22:00:00+00:00" in result.output
    assert "marked missed" in result.output
    assert report_rows(database_url, event.event_id)[0]["status"] == "missed"
    assert accepted_reports(sandbox, event.event_id)["reports"] == []
