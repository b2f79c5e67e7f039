"""A simulated month, full size: 200 resources at 50 locations in five neighbourhoods, a
curve for each every day of October 2026 (summer time ends on the 25th; some changed later
the day) and an LPC event of each kind, played hour by hour into November on the sandbox's
clock and the CLI's `--now`, with a tenth of POST /reports answered 500, 429 or not at all.
What it plays, checks and prints is tests/simulation/month.py; the reduced month in `make
test` is tests/simulation/test_simulated_month.py.

TODO: worker kills, a Redis and a PostgreSQL restart inside the month. The month is played
in-process (the CLI's sweeps, the beat's tasks called with `now`), so no worker or broker is
in its path; the other tests under tests/faults/ kill those under load.
"""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.sandbox import SandboxHandle
from tests.simulation.month import (
    FULL,
    assert_month,
    attempts_by_event,
    check_month,
    plan_month,
    run_month,
)


def test_it_reports_every_period_of_a_month_once_and_in_time(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    month = plan_month(FULL)
    assert len(month.targets) >= 200
    assert len({t.location_id for t in month.targets}) >= 50
    played = run_month(sandbox, database_url, month, tmp_path)
    outcome = check_month(sandbox, database_url, month, played)
    print("\n" + outcome.summary(month, played))
    assert_month(outcome, month, played, attempts_by_event(database_url))
