"""Property test of the report builder's price-curve path (worker/reports/builder.py,
`build_report`), against an independent computation in Python from the generated readings.

Generated: a curve (15-minute or hourly periods, with gaps, around DST changes and month
ends) for a few resources, some at two locations; per resource, readings of 15 minutes to 4
hours that tile a window reaching past the curve on both sides, with holes, some naming a
location of the curve, some another location, some none; and a payload limit per part.

Computed here, with exact fractions: each target's energy per period, each reading split pro
rata to its overlap with the period; a reading without a location counts for its resource
when the curve names that resource at one location only.

What could fail: a sum off by more than the rounding to the Wh's thousandth (a share in the
wrong period, a reading counted twice or for the wrong location, energy outside the curve
counted), a point with no energy or a missing point with energy, a payload for a target that
used none, the same target in two parts, parts over the limit, totals that do not add up.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.properties.support import rolled_back, store_price_curve
from worker.consumption.store import open_batch, store_items
from worker.reports.builder import build_report
from worker.reports.ledger import ReportRules

OSLO = ZoneInfo("Europe/Oslo")
QUARTER = timedelta(minutes=15)
ANCHORS = [
    datetime(2026, 3, 29, 0, tzinfo=UTC),  # spring change 01:00 UTC
    datetime(2026, 10, 25, 0, tzinfo=UTC),  # autumn change 01:00 UTC
    datetime(2026, 1, 31, 22, tzinfo=UTC),  # the Oslo month ends at 23:00 UTC
    datetime(2026, 6, 15, 8, tzinfo=UTC),
]
# A resource's readings: (start, end, kWh, locationId or None).
Reading = tuple[datetime, datetime, Fraction, str | None]


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    resolution = draw(st.sampled_from([QUARTER, timedelta(hours=1)]))
    anchor = draw(st.sampled_from(ANCHORS)) + draw(st.integers(-8, 8)) * timedelta(hours=1)
    slots = sorted(draw(st.lists(st.integers(0, 9), min_size=1, max_size=8, unique=True)))
    starts = [anchor + slot * resolution for slot in slots]
    locations: dict[str, list[str]] = {}
    for n in range(draw(st.integers(1, 4))):
        locations[f"r{n}"] = ["home", "work"][: draw(st.integers(1, 2))]
    # Readings tile [first start - 3 h, last end + 3 h) in spans of whole quarter hours.
    window_start = starts[0] - timedelta(hours=3)
    window_end = starts[-1] + resolution + timedelta(hours=3)
    readings: dict[str, list[Reading]] = {}
    for resource, at in locations.items():
        moment, own = window_start, []
        while moment < window_end:
            end = min(moment + draw(st.integers(1, 16)) * QUARTER, window_end)
            if draw(st.integers(0, 4)):  # one in five spans has no reading
                kwh = Fraction(draw(st.integers(0, 500)), 100)
                location = draw(st.sampled_from([None, *at, "elsewhere"]))
                own.append((moment, end, kwh, location))
            moment = end
        readings[resource] = own
    return {
        "resolution": resolution,
        "starts": starts,
        "locations": locations,
        "readings": readings,
        "max_payloads": draw(st.integers(1, 3)),
    }


def expected_energy(
    scenario: dict[str, Any],
) -> dict[tuple[str, str], dict[datetime, Fraction]]:
    """Per target, its energy per period start, where it is above zero."""
    resolution: timedelta = scenario["resolution"]
    energy: dict[tuple[str, str], dict[datetime, Fraction]] = {}
    for resource, at in scenario["locations"].items():
        for location in at:
            periods: dict[datetime, Fraction] = {}
            for start in scenario["starts"]:
                end = start + resolution
                total = Fraction(0)
                for r_start, r_end, kwh, r_location in scenario["readings"][resource]:
                    counts = r_location == location or (r_location is None and len(at) == 1)
                    overlap = min(end, r_end) - max(start, r_start)
                    if counts and overlap > timedelta(0):
                        total += (
                            kwh
                            * Fraction(overlap / QUARTER)
                            / Fraction((r_end - r_start) / QUARTER)
                        )
                if total > 0:
                    periods[start] = total
            if periods:
                energy[(resource, location)] = periods
    return energy


@settings(
    deadline=None,
    # One database for every example: each rolls back what it did.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_it_reports_what_an_independent_sum_of_the_readings_gives(
    database_url: str, scenario: dict[str, Any]
) -> None:
    resolution: timedelta = scenario["resolution"]
    starts: list[datetime] = scenario["starts"]
    last_end = starts[-1] + resolution
    event_id = str(uuid.uuid4())
    rules = ReportRules(timezone=OSLO, max_payloads=scenario["max_payloads"])
    with rolled_back(database_url) as conn:
        items = [
            {
                "resourceId": resource,
                "locationId": location,
                "start": start.isoformat(),
                "end": end.isoformat(),
                "kWh": str(float(kwh)),
            }
            for resource, own in scenario["readings"].items()
            for start, end, kwh, location in own
        ]
        open_batch(conn, "batch", source="task", received_at=last_end)
        with conn.transaction():
            stored = store_items(conn, items, batch_id="batch", now=last_end)
        assert (stored.rejected, stored.readings) == (0, len(items))
        store_price_curve(
            conn,
            event_id,
            price_area="NO1",
            starts=starts,
            resolution=resolution,
            targets=[(r, loc) for r, at in scenario["locations"].items() for loc in at],
            created_at=starts[0] - timedelta(hours=20),
            timezone=OSLO,
        )
        with conn.transaction():
            row = conn.execute(
                "INSERT INTO reports (event_id, month, first_period_start, last_period_end,"
                " status, created_at, updated_at)"
                " SELECT event_id, date_trunc('month', local_date), first_period_start,"
                " last_period_end, 'sending', %(now)s, %(now)s FROM price_curves"
                " WHERE event_id = %(event_id)s RETURNING id",
                {"event_id": event_id, "now": last_end},
            ).fetchone()
            assert row is not None
            parts = build_report(conn, row["id"], event_id, rules, now=last_end + resolution)
        bodies = conn.execute(
            "SELECT part, parts, body, payload_count, point_count, total_kwh FROM reports"
            " WHERE event_id = %s ORDER BY part",
            (event_id,),
        ).fetchall()

    expected = expected_energy(scenario)
    timestamp_of = {start.astimezone(UTC).isoformat(): start for start in starts}
    reported: dict[tuple[str, str], dict[datetime, float]] = defaultdict(dict)
    if not expected:
        assert parts == []
        return
    assert [p.part for p in parts] == list(range(1, len(parts) + 1))
    assert len(bodies) == len(parts) == -(-len(expected) // scenario["max_payloads"])
    for body_row in bodies:
        body = json.loads(body_row["body"])
        assert body["eventId"] == event_id
        assert body_row["parts"] == len(parts)
        assert 0 < len(body["payloads"]) <= scenario["max_payloads"]
        assert body_row["payload_count"] == len(body["payloads"])
        points = 0
        for payload in body["payloads"]:
            target = (payload["resourceId"], payload["locationId"])
            assert target not in reported, f"{target} reported twice"
            assert payload["resolution"] in ("00:15:00", "01:00:00")
            for point in payload["points"]:
                reported[target][timestamp_of[point["timestamp"]]] = point["kiloWattHours"]
                points += 1
        assert body_row["point_count"] == points
        assert abs(
            body_row["total_kwh"]
            - sum(
                sum(reported[(p["resourceId"], p["locationId"])].values()) for p in body["payloads"]
            )
        ) < 1e-6 * (points + 1)

    # The same targets and periods, and each sum within the rounding to 6 decimals.
    assert {t: set(p) for t, p in reported.items()} == {t: set(p) for t, p in expected.items()}
    for target, periods in expected.items():
        for start, kwh in periods.items():
            assert abs(reported[target][start] - float(kwh)) <= 0.5e-6 + 1e-9, (target, start)
