"""`spark-partner curves checks --json`: the record of the daily checks."""

from __future__ import annotations

from datetime import date, datetime, time

from shared.config import CurveSettings
from tests.curves.support import OSLO
from tests.worker.cli import run_json
from worker.curves.check import run_check


def test_it_lists_the_checks_newest_day_first(database_url: str) -> None:
    settings = CurveSettings(expected_areas=("NO4",))
    for day in (date(2026, 5, 3), date(2026, 5, 4)):
        for hour in (time(13, 30), time(16, 0)):
            now = datetime.combine(day, hour, tzinfo=OSLO)
            run_check(database_url, settings, OSLO, client=None, now=now, wait_seconds=0)

    checks = run_json(database_url, "curves", "checks")

    assert [c["curveDate"] for c in checks] == ["2026-05-05", "2026-05-04"]
    first = checks[0]
    assert (first["status"], first["runs"]) == ("missing", 2)
    assert (first["expectedAreas"], first["missingAreas"]) == (["NO4"], ["NO4"])
