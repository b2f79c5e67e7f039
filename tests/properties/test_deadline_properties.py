"""Property test of report months and deadlines across DST changes and month ends
(worker/reports/deadlines.py `month_deadlines`, worker/reports/ledger.py `sweep`, the zones
of worker/reports/zones.py), against the calendar as Python's zoneinfo computes it.

Generated: one to three curves whose first period starts within two days of a month end
(some of them DST days: 31 March 2024 was the spring change in CET), in Norwegian, Swedish,
Danish, Finnish or unknown price areas, with any grace and final margin, and SPARK_TIMEZONE
for the unknown area.

What could fail: a report put in the wrong month or zone (a UTC month where the area's is
meant, Finland's month taken as Oslo's), a deadline an hour off across a DST change, an aim
later than either month end, the final sweeps starting at another time than the aim less
the margin, and a sweep marking a report missed one minute before its deadline or leaving it
open at or after it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.properties.support import rolled_back, store_price_curve
from worker.reports.deadlines import month_deadlines
from worker.reports.ledger import ReportRules, sweep

# Area -> the zone whose month it is reported in (None: SPARK_TIMEZONE), written out here
# rather than read from zones.py.
AREAS: dict[str, str | None] = {
    "NO1": "Europe/Oslo",
    "no5": "Europe/Oslo",
    "SE3": "Europe/Stockholm",
    "DK2": "Europe/Copenhagen",
    "FI": "Europe/Helsinki",
    "DE-LU": None,
}
FALLBACKS = ["Europe/Oslo", "UTC", "Europe/Helsinki", "America/New_York"]
# Month ends (UTC midnight of the 1st), among them right after the spring change of 2024.
MONTH_ENDS = [
    datetime(2024, 3, 1, tzinfo=UTC),
    datetime(2024, 4, 1, tzinfo=UTC),
    datetime(2026, 11, 1, tzinfo=UTC),
    datetime(2026, 10, 1, tzinfo=UTC),
    datetime(2027, 1, 1, tzinfo=UTC),
]


def next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def month_end(first: datetime, zone: ZoneInfo) -> tuple[date, datetime]:
    """The month `first` falls in, in `zone`, and the instant that month ends."""
    local = first.astimezone(zone).date().replace(day=1)
    end = next_month(local)
    return local, datetime(end.year, end.month, 1, tzinfo=zone).astimezone(UTC)


@st.composite
def curves(draw: st.DrawFn) -> list[dict[str, Any]]:
    made = []
    for _ in range(draw(st.integers(1, 3))):
        near = draw(st.sampled_from(MONTH_ENDS))
        first = near + draw(st.integers(-48 * 4, 48 * 4)) * timedelta(minutes=15)
        made.append({"area": draw(st.sampled_from(list(AREAS))), "first": first})
    return made


@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    made=curves(),
    fallback=st.sampled_from(FALLBACKS),
    grace=st.integers(0, 72 * 60).map(lambda minutes: timedelta(minutes=minutes)),
    margin=st.integers(0, 12 * 60).map(lambda minutes: timedelta(minutes=minutes)),
    sweep_at=st.integers(-180, 180).map(lambda minutes: timedelta(minutes=minutes)),
)
def test_it_puts_each_report_in_its_areas_month_and_misses_it_exactly_at_the_deadline(
    database_url: str,
    *,
    made: list[dict[str, Any]],
    fallback: str,
    grace: timedelta,
    margin: timedelta,
    sweep_at: timedelta,
) -> None:
    rules = ReportRules(timezone=ZoneInfo(fallback), grace=grace, final_margin=margin)
    expected: dict[tuple[date, str], dict[str, datetime]] = {}
    deadlines: dict[str, datetime] = {}
    with rolled_back(database_url) as conn:
        for curve in made:
            event_id = str(uuid.uuid4())
            first: datetime = curve["first"]
            store_price_curve(
                conn,
                event_id,
                price_area=curve["area"],
                starts=[first],
                resolution=timedelta(minutes=15),
                targets=[("r", "l")],
                created_at=first - timedelta(hours=12),
                timezone=rules.timezone,
            )
            zone = AREAS[curve["area"]] or fallback
            month, ends = month_end(first, ZoneInfo(zone))
            _, utc_ends = month_end(first, ZoneInfo("UTC"))
            deadlines[event_id] = ends + grace
            # A month's aim is its earliest report's: the UTC month of a first period may
            # end before the zone's.
            aim = min(ends, utc_ends) + grace
            if (month, zone) in expected:
                aim = min(aim, expected[(month, zone)]["aim"])
            expected[(month, zone)] = {"deadline": ends + grace, "aim": aim}
        planned_at = min(c["first"] for c in made) - timedelta(hours=1)
        assert sweep(conn, rules, now=planned_at).planned == len(made)

        found = {(row.month, row.zone): row for row in month_deadlines(conn, rules, now=planned_at)}
        assert set(found) == set(expected)
        for key, want in expected.items():
            row = found[key]
            assert (row.deadline, row.aim) == (want["deadline"], want["aim"]), key
            assert row.final_sweeps_from == want["aim"] - margin, key
            assert row.aim <= row.deadline

        # One sweep at a moment around one of the deadlines: missed exactly from it on.
        at = next(iter(deadlines.values())) + sweep_at
        sweep(conn, rules, now=at)
        statuses = {
            row["event_id"]: row["status"]
            for row in conn.execute("SELECT event_id, status FROM reports").fetchall()
        }
    for event_id, deadline in deadlines.items():
        assert (statuses[event_id] == "missed") == (at >= deadline), (event_id, deadline, at)
