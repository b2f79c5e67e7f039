"""The ledger holds reports of several kinds (migration 0023): a price curve's energy report
('energy'), an LPC event's after the event ('lpc_energy') and an LPC event's acknowledgement
('lpc_ack'). The energy reports' sweep, sender and views leave an acknowledgement alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.fixtures.sandbox import SandboxHandle
from tests.lpc.energy import store_lpc_event
from tests.lpc.support import resource_target
from tests.reports.support import (
    HOUR,
    cli_json,
    curve,
    execute,
    import_readings,
    reading,
    report_rows,
    utc,
    write_readings,
)

MARCH = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)


def test_it_leaves_an_acknowledgement_in_the_ledger_to_its_own_sender(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    event = curve(sandbox, database_url, [("ev-1", "home")], [MARCH], created_at=MARCH - HOUR * 20)
    lpc_event = store_lpc_event(
        database_url, "resource", resource_target("ev-1", "home"), received_at=MARCH - HOUR
    )
    # An acknowledgement as migration 0024 will hold it: no month, due in minutes, due now.
    execute(
        database_url,
        "INSERT INTO reports (kind, event_id, status, due_by, next_attempt_at, created_at,"
        " updated_at) VALUES ('lpc_ack', %s, 'due', %s, %s, %s, %s)",
        (lpc_event, MARCH + timedelta(minutes=5), MARCH, MARCH, MARCH),
    )
    path = write_readings(tmp_path / "r.csv", [reading("ev-1", MARCH, MARCH + HOUR, 2.0)])
    now = MARCH + timedelta(hours=4)
    import_readings(database_url, path, now=now)
    sandbox.control.set_clock(now, frozen=True)

    sent = cli_json(database_url, "reports", "send", "--due", "--now", utc(now), sandbox=sandbox)
    listed = cli_json(database_url, "reports", "list")
    months = cli_json(database_url, "reports", "deadlines", "--now", utc(now))
    # Past any month's deadline: nothing to miss for an acknowledgement.
    late = now + timedelta(days=60)
    cli_json(database_url, "reports", "send", "--due", "--now", utc(late), sandbox=sandbox)

    assert sorted((r["eventId"], r["status"]) for r in sent["results"]) == sorted(
        [(event.event_id, "sent"), (lpc_event, "empty")]
    )
    assert {(r["eventId"], r["kind"]) for r in listed} == {
        (event.event_id, "energy"),
        (lpc_event, "lpc_energy"),
    }
    assert [(m["month"], m["zones"][0]["sent"], m["zones"][0]["empty"]) for m in months] == [
        ("2026-03", 1, 1)
    ]
    # The LPC event has its energy report too (nothing read in its periods: empty) beside
    # the acknowledgement, which nothing here touched.
    ack, energy_after = sorted(report_rows(database_url, lpc_event), key=lambda r: r["kind"])
    assert (ack["kind"], ack["status"], ack["attempts"]) == ("lpc_ack", "due", 0)
    assert ack["month"] is None
    assert (energy_after["kind"], energy_after["status"]) == ("lpc_energy", "empty")
    (energy,) = report_rows(database_url, event.event_id)
    assert (energy["kind"], energy["status"]) == ("energy", "sent")
