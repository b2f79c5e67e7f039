"""`spark-partner curves check [--now T] --json`: the daily check, run by hand."""

from __future__ import annotations

from tests.worker.cli import run, run_json


def test_it_runs_the_check_for_tomorrow_and_reports_it(database_url: str) -> None:
    result = run_json(
        database_url, "curves", "check", "--now", "2026-05-04T13:30:00+02:00", "--wait", "0"
    )

    assert result["curveDate"] == "2026-05-05"
    assert result["status"] == "open"
    assert result["backfill"] is None  # no Spark API configured in this test


def test_it_says_why_no_check_ran(database_url: str) -> None:
    result = run(database_url, "curves", "check", "--now", "2026-05-04T12:00:00+02:00")

    assert result.exit_code != 0
    assert "before SPARK_CURVE_CHECK_TIME" in result.output
