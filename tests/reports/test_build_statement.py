"""The build's statements are written out per curve (one column per period), so they are not
among the named queries that tests/shared/test_migrations.py checks: they are checked here,
for the period counts curves have (a DST day has 23 or 25, a day of quarter hours 92 to 100,
two such days 192)."""

from __future__ import annotations

import re

import pytest

from tests.sql import prepare
from worker.reports.builder import sums_sql, write_sql

SLOTS = [1, 23, 24, 25, 96, 100, 192]


@pytest.mark.parametrize("superseded", [False, True], ids=["in force", "superseded"])
@pytest.mark.parametrize("slots", SLOTS)
def test_it_sums_in_a_query_that_fits_the_migrated_schema(
    database_url: str, slots: int, superseded: bool
) -> None:
    sql = sums_sql(slots, superseded)

    prepare(database_url, sql)
    # Summed per reading key, then per target.
    assert len(re.findall(r" AS sum_\d+\b", sql)) == 2 * slots
    assert ("overlapping_curves(" in sql) == superseded


@pytest.mark.parametrize("slots", SLOTS)
def test_it_writes_the_parts_from_a_table_of_the_sums_shape(database_url: str, slots: int) -> None:
    kwh = "".join(f", kwh_{k} double precision" for k in range(1, slots + 1))
    sums = (
        "CREATE TEMPORARY TABLE report_build (resource_id text, location_id text,"
        f" points integer, kwh double precision{kwh})"
    )

    prepare(database_url, write_sql(slots), [sums])


def test_it_refuses_a_curve_without_periods() -> None:
    with pytest.raises(ValueError, match="at least one period"):
        sums_sql(0, superseded=False)
    with pytest.raises(ValueError, match="at least one period"):
        write_sql(0)
