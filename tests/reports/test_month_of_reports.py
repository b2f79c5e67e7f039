"""A month of reports through the sandbox, on both `--now` clocks: 120 targets, a third of
which never send readings for some events. Every report is accepted within
SPARK_REPORT_MAX_WAIT + 1 h of its event's end; none waits for the month's end."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.sandbox import SandboxHandle
from tests.reports.support import (
    HOUR,
    accepted_reports,
    cli_json,
    curve,
    import_readings,
    local,
    reading,
    report_rows,
    utc,
    write_readings,
)

pytestmark = pytest.mark.slow

TARGETS = [(f"ev-{n}", f"home-{n}") for n in range(120)]
# A third of the targets: silent for every second event.
SILENT = {resource for resource, _ in TARGETS[::3]}
# Days of October 2026: its first, an ordinary one, the 25th (25 hours, summer time ends)
# and its last; two events each, of two hours.
DAYS = [(2026, 10, 1), (2026, 10, 14), (2026, 10, 25), (2026, 10, 31)]
EVENT_HOURS = (8, 21)
MAX_WAIT = timedelta(hours=24)


def test_it_has_every_report_of_a_month_accepted_within_max_wait_and_an_hour(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    events: list[tuple[str, datetime, bool]] = []
    for year, month, day in DAYS:
        for hour in EVENT_HOURS:
            start = local(year, month, day, hour)
            created = start - 20 * HOUR
            event = curve(sandbox, database_url, TARGETS, [start, start + HOUR],
                          created_at=created)  # fmt: skip
            events.append((event.event_id, start, len(events) % 2 == 1))
    # Readings come an hour after each event ends, from every target but the silent ones
    # on the events they skip; the sweeps run hourly, on both clocks.
    arrivals: dict[datetime, list[dict[str, Any]]] = {}
    for _, start, quiet in events:
        end = start + 2 * HOUR
        arrivals[(end + HOUR).astimezone(UTC)] = [
            reading(resource, start, end, 3.0, location_id=location)
            for resource, location in TARGETS
            if not (quiet and resource in SILENT)
        ]
    sweeps = sorted(
        {
            (start + 2 * HOUR + n * HOUR).astimezone(UTC)
            for _, start, _ in events
            for n in range(1, int(MAX_WAIT / HOUR) + 2)
        }
    )
    for now in sweeps:
        if now in arrivals:
            path = write_readings(tmp_path / f"{now:%m%d%H}.csv", arrivals[now])
            import_readings(database_url, path, now=now)
        sandbox.control.set_clock(now, frozen=True)
        cli_json(database_url, "reports", "send", "--due", "--now", utc(now), sandbox=sandbox)

    accepted = {r["eventId"]: r for r in accepted_reports(sandbox)["reports"]}
    hours: dict[str, float] = {}
    for event_id, start, quiet in events:
        end = (start + 2 * HOUR).astimezone(UTC)
        created = datetime.fromisoformat(accepted[event_id]["createdAt"])
        hours[event_id] = (created - end) / HOUR
        payloads = accepted[event_id]["body"]["payloads"]
        assert len(payloads) == len(TARGETS) - (len(SILENT) if quiet else 0)
    distribution = Counter(round(h) for h in hours.values())
    print("hours from event end to acceptance:", dict(sorted(distribution.items())))
    assert set(accepted) == {event_id for event_id, _, _ in events}
    assert max(hours.values()) <= (MAX_WAIT + HOUR) / HOUR
    # Complete events go once settled; those with silent targets by MAX_WAIT, or, on the
    # month's last day, at the final sweeps: none waits for the month's end.
    for event_id, _, quiet in events:
        assert hours[event_id] <= (MAX_WAIT / HOUR if quiet else 2.0)
    assert {r["status"] for r in report_rows(database_url)} == {"sent"}
    silent_left_out = cli_json(database_url, "reports", "show", events[1][0])["leftOut"]
    assert {x["resourceId"] for x in silent_left_out} == SILENT
