"""The daily check: is tomorrow's curve here?

Spark sends the next day's curve around 13:00 local time. From SPARK_CURVE_CHECK_TIME (13:30)
each run of the check (every 15 minutes on beat):
1. finds the day it awaits (tomorrow, in SPARK_TIMEZONE) and claims that day's check row, so
   two runs never overlap and a finished day is left alone;
2. runs the `/events` backfill, so a curve whose webhooks were all lost is fetched now;
3. waits briefly for the backfilled events to be stored (other worker processes do that);
4. records the areas with a curve. The check stays open until every expected area has one;
   at SPARK_CURVE_CHECK_UNTIL (16:00) what is still missing is final and alerted (ERROR).
   Areas not in SPARK_EXPECTED_CURVE_AREAS are recorded but never alerted on: Spark does not
   promise a curve every day.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.config import CurveSettings
from shared.db import connection, execute, fetch_all, fetch_one
from shared.spark_api import SparkClient
from worker.events.tasks import BackfillReport, backfill

log = logging.getLogger(__name__)

# Longer than a run (backfill plus the wait); a crashed run's claim expires after it.
CHECK_LEASE = timedelta(minutes=5)
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class CheckResult:
    curve_date: date
    status: str
    expected_areas: tuple[str, ...]
    present_areas: tuple[str, ...]
    missing_areas: tuple[str, ...]
    event_ids: tuple[str, ...]
    run: int
    backfill: BackfillReport | None

    def to_json(self) -> dict[str, Any]:
        return {
            "curveDate": self.curve_date.isoformat(),
            "status": self.status,
            "expectedAreas": list(self.expected_areas),
            "presentAreas": list(self.present_areas),
            "missingAreas": list(self.missing_areas),
            "eventIds": list(self.event_ids),
            "run": self.run,
            "backfill": asdict(self.backfill) if self.backfill else None,
        }


def run_check(
    database_url: str,
    curves: CurveSettings,
    timezone: ZoneInfo,
    *,
    client: SparkClient | None,
    now: datetime,
    wait_seconds: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> CheckResult | None:
    """One run of the check at `now`; None when it is not due, finished, or running elsewhere."""
    local = now.astimezone(timezone)
    if local.time() < curves.check_time:
        return None
    curve_date = local.date() + timedelta(days=1)
    expected = sorted(curves.expected_areas)
    with connection(database_url) as conn, conn.transaction():
        params = {"curve_date": curve_date, "expected_areas": expected}
        execute(conn, "open_curve_check", params)
        claimed = fetch_one(
            conn, "claim_curve_check", {**params, "now": now, "lease_until": now + CHECK_LEASE}
        )
    if claimed is None:
        return None

    report = None
    if client is None:
        log.warning("curve check: no Spark API configured, so no backfill; webhooks only")
    else:
        report = backfill(client, database_url)
    waited_for = wait_seconds if report is not None and report.enqueued else 0.0
    found = _wait_for_curves(database_url, curve_date, expected, waited_for, sleep)

    present = sorted(found)
    missing = [area for area in expected if area not in found]
    final = local.time() >= curves.check_until
    status = _status(expected, present, missing, final=final)
    event_ids = [event_id for area in present for event_id in found[area]]
    with connection(database_url) as conn, conn.transaction():
        execute(
            conn,
            "record_curve_check",
            {
                "curve_date": curve_date,
                "status": status,
                "present_areas": present,
                "missing_areas": missing,
                "curve_event_ids": event_ids,
                "backfill_enqueued": report.enqueued if report else None,
                "backfill_error": report.error if report else None,
                "now": now,
            },
        )
    _log(curve_date, status, present, missing, curves)
    return CheckResult(
        curve_date=curve_date,
        status=status,
        expected_areas=tuple(expected),
        present_areas=tuple(present),
        missing_areas=tuple(missing),
        event_ids=tuple(event_ids),
        run=claimed["runs"],
        backfill=report,
    )


def curves_for_date(database_url: str, curve_date: date) -> dict[str, list[str]]:
    with connection(database_url) as conn:
        rows = fetch_all(conn, "curves_for_date", {"curve_date": curve_date})
        conn.commit()
    return {row["price_area"]: list(row["event_ids"]) for row in rows}


def _wait_for_curves(
    database_url: str,
    curve_date: date,
    expected: list[str],
    wait_seconds: float,
    sleep: Callable[[float], None],
) -> dict[str, list[str]]:
    deadline = time.monotonic() + wait_seconds
    while True:
        found = curves_for_date(database_url, curve_date)
        satisfied = all(area in found for area in expected) if expected else bool(found)
        if satisfied or time.monotonic() >= deadline:
            return found
        sleep(POLL_SECONDS)


def _status(expected: list[str], present: list[str], missing: list[str], *, final: bool) -> str:
    if expected:
        if not missing:
            return "present"
        return "missing" if final else "open"
    if present:
        return "present"
    return "none" if final else "open"


def _log(
    curve_date: date, status: str, present: list[str], missing: list[str], curves: CurveSettings
) -> None:
    areas = ", ".join(present) or "none"
    if status == "missing":
        log.error(
            "ALERT: no price curve for %s in expected area(s) %s (curves came for: %s)",
            curve_date,
            ", ".join(missing),
            areas,
            extra={"alert": "curve_missing"},
        )
    elif status == "open" and missing:
        log.warning(
            "price curve for %s not here yet for %s; looking again until %s",
            curve_date,
            ", ".join(missing),
            curves.check_until.strftime("%H:%M"),
        )
    else:
        log.info("price curve check for %s: %s (areas: %s)", curve_date, status, areas)
