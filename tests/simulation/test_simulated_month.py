"""A simulated month, reduced: 24 resources at 8 locations, price curves on three days of
October 2026 (the 24th, the 25th when summer time ends, the 31st) and an LPC event of each
kind, played into November on the sandbox's clock and the CLI's `--now`, with faults on POST
/reports (500, 429, lost answers). The full month (200 resources at 50 locations, every day)
is tests/faults/test_simulated_month.py; what both play and check is tests/simulation/month.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.sandbox import SandboxHandle
from tests.simulation.month import (
    REDUCED,
    assert_month,
    attempts_by_event,
    check_month,
    plan_month,
    run_month,
)

pytestmark = pytest.mark.slow


def test_it_reports_every_period_of_a_reduced_month_once_and_in_time(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    month = plan_month(REDUCED)
    played = run_month(sandbox, database_url, month, tmp_path)
    outcome = check_month(sandbox, database_url, month, played)
    print("\n" + outcome.summary(month, played))
    assert_month(outcome, month, played, attempts_by_event(database_url))
