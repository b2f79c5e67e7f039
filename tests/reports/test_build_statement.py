"""The build's statements are not among the named queries that tests/shared/test_migrations.py
checks: the sums are written out per curve (one column per period), and the write reads the
temporary table they make. They are checked here, the sums for the period counts curves have
(a DST day has 23 or 25, a day of quarter hours 92 to 100, two such days 192)."""

from __future__ import annotations

import re

import pytest

from tests.sql import prepare
from worker.reports.builder import WRITE_PARTS, build_sql


@pytest.mark.parametrize("superseded", [False, True], ids=["in force", "superseded"])
@pytest.mark.parametrize("slots", [1, 23, 24, 25, 96, 100, 192])
def test_it_fits_the_migrated_schema_for_every_period_count(
    database_url: str, slots: int, superseded: bool
) -> None:
    sql = build_sql(slots, superseded)

    prepare(database_url, sql)
    # Summed per reading key, then per target.
    assert len(re.findall(r" AS sum_\d+\b", sql)) == 2 * slots
    assert ("price_curves l" in sql) == superseded


def test_it_refuses_a_curve_without_periods() -> None:
    with pytest.raises(ValueError, match="at least one period"):
        build_sql(0, superseded=False)


def test_it_writes_the_parts_from_the_sums_table(database_url: str) -> None:
    sums = (
        "CREATE TEMPORARY TABLE report_build (resource_id text, location_id text,"
        " points integer, kwh double precision, curve text)"
    )
    prepare(database_url, WRITE_PARTS, [sums])
