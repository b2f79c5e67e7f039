"""`spark-partner reports list [--status S] [--month M] --json`: the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.fixtures.sandbox import SandboxHandle
from tests.reports.support import (
    HOUR,
    cli,
    cli_json,
    curve,
    import_readings,
    reading,
    send_event_reports,
    utc,
    write_readings,
)

MARCH = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
APRIL = datetime(2026, 4, 10, 8, 0, tzinfo=UTC)


def test_it_lists_reports_by_status_and_month_with_their_deadlines(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    sent = curve(sandbox, database_url, [("ev-1", "home")], [MARCH], created_at=MARCH - HOUR * 20)
    waiting = curve(
        sandbox, database_url, [("ev-2", "cabin")], [APRIL], created_at=APRIL - HOUR * 20
    )
    path = write_readings(tmp_path / "r.csv", [reading("ev-1", MARCH, MARCH + HOUR, 2.0)])
    now = MARCH + timedelta(hours=4)
    import_readings(database_url, path, now=now)
    sandbox.control.set_clock(now, frozen=True)
    send_event_reports(database_url, sandbox, sent.event_id, now=now)
    april_now = APRIL - timedelta(days=1)
    cli_json(database_url, "reports", "send", "--due", "--now", utc(april_now), sandbox=sandbox)

    everything = cli_json(database_url, "reports", "list")
    pending = cli_json(database_url, "reports", "list", "--status", "pending")
    march = cli_json(database_url, "reports", "list", "--month", "2026-03")
    text = cli(database_url, "reports", "list", "--now", utc(april_now))

    assert [(r["eventId"], r["status"], r["month"]) for r in everything] == [
        (sent.event_id, "sent", "2026-03"),
        (waiting.event_id, "pending", "2026-04"),
    ]
    assert [r["eventId"] for r in pending] == [waiting.event_id]
    assert [r["eventId"] for r in march] == [sent.event_id]
    (first,) = march
    # The end of March in Oslo (22:00 UTC, summer time) plus a day of grace.
    assert first["deadline"] == "2026-04-01T22:00:00+00:00"
    assert (first["payloads"], first["points"], first["kWh"], first["attempts"]) == (1, 1, 2.0, 1)
    assert first["sparkReportId"]
    assert first["acceptedAttempts"] == 1
    assert f"2026-03  {sent.event_id}  sent" in text.output
    assert "2026-03 (Europe/Oslo): 1 sent, 0 due" in text.output
