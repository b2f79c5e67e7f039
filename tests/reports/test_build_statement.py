"""The build statement is written out per curve (one column per period), so it is not among
the named queries that tests/shared/test_migrations.py checks: it is checked here, for the
period counts curves have (a DST day has 23 or 25, a day of quarter hours 92 to 100,
two such days 192)."""

from __future__ import annotations

import re

import pytest

from tests.sql import prepare
from worker.reports.builder import build_sql


@pytest.mark.parametrize("superseded", [False, True], ids=["in force", "superseded"])
@pytest.mark.parametrize("slots", [1, 23, 24, 25, 96, 100, 192])
def test_it_fits_the_migrated_schema_for_every_period_count(
    database_url: str, slots: int, superseded: bool
) -> None:
    sql = build_sql(slots, superseded)

    prepare(database_url, sql)
    assert len(re.findall(r" AS sum_\d+\b", sql)) == slots
    assert ("price_curves l" in sql) == superseded


def test_it_refuses_a_curve_without_periods() -> None:
    with pytest.raises(ValueError, match="at least one period"):
        build_sql(0, superseded=False)
