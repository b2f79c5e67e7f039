"""Corrected reports, opt-in: SPARK_REPORT_CORRECTIONS=replace sends an event's full report
again as a new revision once late readings changed it by more than the minimum; off (the
default) never does."""

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
    import_readings,
    points_of,
    reading,
    utc,
    write_readings,
)

START = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
END = START + 2 * HOUR


def sweep(database_url: str, sandbox: SandboxHandle, now: datetime, **env: str) -> dict[str, Any]:
    sandbox.control.set_clock(now, frozen=True)
    done: dict[str, Any] = cli_json(
        database_url, "reports", "send", "--due", "--now", utc(now), sandbox=sandbox, **env
    )
    return done


def sent_then_late(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path, late_kwh: float, **env: str
) -> str:
    """An event for the car, sent once settled with its first hour; then its second hour
    comes late, `late_kwh` of it."""
    event = curve(sandbox, database_url, [("car", "home")], [START, START + HOUR],
                  created_at=START - 20 * HOUR)  # fmt: skip
    first = [reading("car", START, START + HOUR, 2.0), reading("car", START + HOUR, END, 0.0)]
    import_readings(database_url, write_readings(tmp_path / "a.csv", first), now=END)
    sweep(database_url, sandbox, END + 2 * HOUR, **env)
    late = [reading("car", START + HOUR, END, late_kwh)]
    import_readings(database_url, write_readings(tmp_path / "b.csv", late), now=END + 5 * HOUR)
    return event.event_id


def test_it_sends_a_corrected_report_once_late_readings_settled_with_replace(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    replace = {"SPARK_REPORT_CORRECTIONS": "replace"}
    event_id = sent_then_late(sandbox, database_url, tmp_path, 3.0, **replace)

    unsettled = sweep(database_url, sandbox, END + 6 * HOUR, **replace)
    settled = sweep(database_url, sandbox, END + 7 * HOUR, **replace)
    again = sweep(database_url, sandbox, END + 8 * HOUR, **replace)
    shown = cli_json(database_url, "reports", "show", event_id)

    assert unsettled["corrections"] == {
        "planned": [], "belowMinimum": 0, "sent": [], "failed": 0, "missed": 0,
    }  # fmt: skip
    assert settled["corrections"]["sent"] == [event_id]
    assert again["corrections"]["planned"] == []
    first, corrected = accepted_reports(sandbox, event_id)["reports"]
    assert [p["kiloWattHours"] for p in points_of(first["body"], "car")] == [2.0]
    assert [p["kiloWattHours"] for p in points_of(corrected["body"], "car")] == [2.0, 3.0]
    (revision,) = shown["corrections"]
    assert (revision["revision"], revision["status"], revision["kWh"]) == (2, "sent", 5.0)
    assert revision["previousKWh"] == 2.0
    assert revision["idempotencyKey"] != shown["reports"][0]["idempotencyKey"]


def test_it_keeps_a_change_below_the_minimum_to_itself(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    replace = {"SPARK_REPORT_CORRECTIONS": "replace", "SPARK_REPORT_CORRECTION_MIN_KWH": "0.5"}
    event_id = sent_then_late(sandbox, database_url, tmp_path, 0.25, **replace)

    settled = sweep(database_url, sandbox, END + 7 * HOUR, **replace)

    assert settled["corrections"]["belowMinimum"] == 1
    assert len(accepted_reports(sandbox, event_id)["reports"]) == 1


def test_it_sends_no_correction_by_default_and_says_so(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    event_id = sent_then_late(sandbox, database_url, tmp_path, 3.0)

    settled = sweep(database_url, sandbox, END + 7 * HOUR)
    text = cli(database_url, "reports", "deadlines", "--now", utc(END + 7 * HOUR))

    assert settled["corrections"] is None
    assert len(accepted_reports(sandbox, event_id)["reports"]) == 1
    assert "corrections: off" in text.output
