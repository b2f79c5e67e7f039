"""A simulated month, reduced: 24 resources at 8 locations, price curves on three days of
October 2026 (the 24th, the 25th when summer time ends, the 31st) and an LPC event of each
kind, played into November on the sandbox's clock and the CLI's `--now`, with faults on POST
/reports (500, 429, lost answers), on a PostgreSQL server of its own that crashes
(`pg_ctl stop -m immediate`) and is started again while the CLI sends the 26th's first report.
The full month (200 resources at 50 locations, every day) is
tests/faults/test_simulated_month.py; what both play and check is tests/simulation/month.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.servers import PostgresServer
from tests.fixtures.sandbox import SandboxHandle
from tests.simulation.month import (
    REDUCED,
    REDUCED_RESTARTS,
    RestartPostgres,
    assert_month,
    attempts_by_event,
    check_month,
    plan_month,
    private_database,
    run_month,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def month_postgres(tmp_path: Path) -> Iterator[tuple[PostgresServer, str]]:
    with private_database(tmp_path / "postgres") as found:
        yield found


def test_it_reports_every_period_of_a_reduced_month_once_and_in_time(
    sandbox: SandboxHandle, month_postgres: tuple[PostgresServer, str], tmp_path: Path
) -> None:
    server, database_url = month_postgres
    month = plan_month(REDUCED)
    restart = RestartPostgres(sandbox, database_url, server, month, REDUCED_RESTARTS)
    played = run_month(sandbox, database_url, month, tmp_path, restart.ticks())
    outcome = check_month(sandbox, database_url, month, played)
    print("\n" + outcome.summary(month, played))
    assert len(played.postgres_restarts) == len(REDUCED_RESTARTS)
    assert_month(outcome, month, played, attempts_by_event(database_url))
