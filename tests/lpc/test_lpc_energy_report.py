"""The energy report after an LPC event (ledger kind lpc_energy): built from the readings in
each target's own periods and resolution, `EnergyUsage` for a resource event and
`LocationEnergyUsage` for a location event, and due under the price curves' rules in the zone
of the resources' price area."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.db import connect
from tests.fixtures.sandbox import SandboxHandle
from tests.lpc.energy import store_lpc_event
from tests.lpc.support import location_target, resource_target
from tests.reports.support import (
    HOUR,
    OSLO,
    curve,
    execute,
    import_readings,
    reading,
    report_rows,
    write_readings,
)
from worker.reports.deadlines import month_views
from worker.reports.ledger import (
    NotEnded,
    ReportRules,
    make_event_due,
    sweep,
    waiting_for_readings,
)
from worker.reports.lpc_energy import energy_body

RULES = ReportRules(timezone=OSLO)
T10 = datetime(2026, 3, 4, 10, tzinfo=UTC)
TWO_PERIODS = (("2026-03-04T10:00:00Z", 5.0), ("2026-03-04T12:00:00Z", 5.0))


def _body(database_url: str, event_id: str) -> dict[str, Any] | None:
    with connect(database_url) as conn, conn.transaction():
        built = energy_body(conn, event_id, RULES)
    if built is None:
        return None
    body: dict[str, Any] = json.loads(built.body)
    # payloadType first in each payload, as in the price curves' reports.
    assert all(next(iter(p)) == "payloadType" for p in body["payloads"])
    return body


def _import(database_url: str, tmp_path: Path, readings: list[dict[str, Any]]) -> None:
    path = write_readings(tmp_path / "r.csv", readings)
    import_readings(database_url, path, now=T10 + 6 * HOUR)


def _registry(database_url: str) -> None:
    """Location L1 with meter points M1 and M2: resources a (no meter point of its own), b
    (M1) and c (M2); d is at L2."""
    execute(database_url, "INSERT INTO users (user_id) VALUES ('u-1')")
    execute(
        database_url,
        "INSERT INTO locations (location_id, user_id, meter_point_ids) VALUES"
        " ('L1', 'u-1', '{M1,M2}'), ('L2', 'u-1', '{M9}')",
    )
    execute(
        database_url,
        "INSERT INTO resources (resource_id, user_id, location_id, resource_type,"
        " meter_point_id) VALUES ('a', 'u-1', 'L1', 'Charger', NULL),"
        " ('b', 'u-1', 'L1', 'Charger', 'M1'), ('c', 'u-1', 'L1', 'Charger', 'M2'),"
        " ('d', 'u-1', 'L2', 'Charger', NULL)",
    )


def test_it_reports_a_resource_event_in_its_two_hour_periods_from_its_resources_readings(
    database_url: str, tmp_path: Path
) -> None:
    event_id = store_lpc_event(
        database_url,
        "resource",
        resource_target("r-1", "loc-1", "M1"),
        resource_target("r-2", "loc-2", "M2"),
        resource_target("r-3", "loc-3", "M3"),
        received_at=T10 - 20 * HOUR,
    )
    _import(
        database_url,
        tmp_path,
        [
            # Half of it in the first period.
            reading("r-1", T10 - HOUR / 2, T10 + HOUR / 2, 2.0),
            reading("r-1", T10 + HOUR / 2, T10 + HOUR, 1.0, location_id="loc-1"),
            reading("r-1", T10 + HOUR, T10 + 2 * HOUR, 1.5),
            reading("r-1", T10 + 2 * HOUR, T10 + 3 * HOUR, 0.25),
            reading("r-1", T10 + 3 * HOUR, T10 + 4 * HOUR, 0.0),
            # At another location: not this target's.
            reading("r-1", T10, T10 + HOUR, 5.0, location_id="loc-x"),
            # Read, and nothing used: no payload.
            reading("r-3", T10, T10 + 4 * HOUR, 0.0),
        ],
    )

    body = _body(database_url, event_id)

    assert body == {
        "eventId": event_id,
        "payloads": [
            {
                "payloadType": "EnergyUsage",
                "resourceId": "r-1",
                "locationId": "loc-1",
                "meterPointId": "M1",
                "points": [
                    {"timestamp": "2026-03-04T10:00:00+00:00", "kiloWattHours": 3.5},
                    {"timestamp": "2026-03-04T12:00:00+00:00", "kiloWattHours": 0.25},
                ],
                "resolution": "02:00:00",
            }
        ],
    }


def test_it_sums_a_locations_resources_behind_its_meter_point_unless_its_own_meter_read(
    database_url: str, tmp_path: Path
) -> None:
    _registry(database_url)
    event_id = store_lpc_event(
        database_url,
        "location",
        location_target("L1", "M1", caps=TWO_PERIODS),
        location_target("L1", "M2", caps=TWO_PERIODS),
        received_at=T10 - 20 * HOUR,
    )
    first, second = T10, T10 + 2 * HOUR
    _import(
        database_url,
        tmp_path,
        [
            reading("a", first, second, 1.0),
            reading("b", first, second, 2.0, location_id="L1"),
            reading("c", first, second, 4.0),
            reading("d", first, second, 8.0),
            # Unknown to our registry, and it names L1: the location's first meter point.
            reading("x", first, second, 0.5, location_id="L1"),
            # b named at another location in the second period: not L1's.
            reading("b", second, second + HOUR, 16.0, location_id="L2"),
            # The location's own meter in the second period: it alone counts there.
            reading("a", second, second + 2 * HOUR, 3.0),
            reading("L1", second, second + 2 * HOUR, 7.0, location_id="L1"),
        ],
    )

    body = _body(database_url, event_id)

    assert body is not None
    assert body["payloads"] == [
        {
            "payloadType": "LocationEnergyUsage",
            "locationId": "L1",
            "meterPointId": "M1",
            "points": [
                {"timestamp": "2026-03-04T10:00:00Z", "kiloWattHours": 3.5},
                {"timestamp": "2026-03-04T12:00:00Z", "kiloWattHours": 7.0},
            ],
            "resolution": "02:00:00",
        },
        {
            "payloadType": "LocationEnergyUsage",
            "locationId": "L1",
            "meterPointId": "M2",
            "points": [{"timestamp": "2026-03-04T10:00:00Z", "kiloWattHours": 4.0}],
            "resolution": "02:00:00",
        },
    ]


def test_it_reports_the_spring_dst_night_in_the_events_own_timestamps(
    database_url: str, tmp_path: Path
) -> None:
    _registry(database_url)
    # Oslo's night of 29 March 2026 skips 02:00-03:00: three hourly caps, 00:00, 01:00 and
    # 03:00 local, written with their offsets.
    caps = (
        ("2026-03-29T00:00:00+01:00", 4),
        ("2026-03-29T01:00:00+01:00", 4),
        ("2026-03-29T03:00:00+02:00", 4),
    )
    event_id = store_lpc_event(
        database_url,
        "location",
        location_target("L2", "M9", resolution="01:00:00", caps=caps),
        received_at=datetime(2026, 3, 28, 12, tzinfo=UTC),
    )
    start = datetime(2026, 3, 28, 23, tzinfo=UTC)
    quarter = timedelta(minutes=15)
    _import(
        database_url,
        tmp_path,
        [reading("d", start + n * quarter, start + (n + 1) * quarter, 0.25) for n in range(12)],
    )

    body = _body(database_url, event_id)

    assert body is not None
    (payload,) = body["payloads"]
    assert payload["resolution"] == "01:00:00"
    assert payload["points"] == [{"timestamp": ts, "kiloWattHours": 1.0} for ts, _ in caps]


def test_it_has_nothing_to_report_when_no_target_used_energy(
    database_url: str, tmp_path: Path
) -> None:
    event_id = store_lpc_event(
        database_url, "resource", resource_target("r-1", "loc-1"), received_at=T10 - HOUR
    )
    _import(database_url, tmp_path, [reading("r-1", T10, T10 + 4 * HOUR, 0.0)])

    assert _body(database_url, event_id) is None


def test_it_makes_lpc_energy_reports_due_like_price_curves_in_their_resources_zone(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    # 21:30 UTC on 31 March is April in Helsinki, still March in Oslo.
    start = datetime(2026, 3, 31, 21, 30, tzinfo=UTC)
    end = start + 2 * HOUR
    # r-fi was in a Finnish price curve: its LPC event is counted in Helsinki's month.
    curve(sandbox, database_url, [("r-fi", "koti")], [start - 24 * HOUR],
          created_at=start - 40 * HOUR, price_area="FI")  # fmt: skip
    timestamp = start.isoformat()
    finnish = store_lpc_event(
        database_url,
        "resource",
        resource_target("r-fi", "koti", "M-fi", caps=((timestamp, 3),)),
        received_at=start - HOUR,
    )
    # A location nothing tells the price area of: SPARK_TIMEZONE's month (Oslo); no resource
    # of ours behind it, so its readings never cover it.
    unknown = store_lpc_event(
        database_url,
        "location",
        location_target("hytte", "M-h", caps=((timestamp, 3),)),
        received_at=start - HOUR,
    )
    path = write_readings(tmp_path / "r.csv", [reading("r-fi", start, end, 1.0)])
    import_readings(database_url, path, now=end)

    def states(now: datetime) -> dict[str, tuple[str, str | None]]:
        with connect(database_url) as conn:
            sweep(conn, RULES, now=now)
        found = {}
        for event_id in (finnish, unknown):
            (row,) = report_rows(database_url, event_id)
            found[event_id] = (row["status"], row["due_reason"])
        return found

    settling = states(end + HOUR)
    settled = states(end + 2 * HOUR)
    with connect(database_url) as conn:
        views = month_views(conn, RULES, now=end + 2 * HOUR)
    waiting = {w.event_id: w.holding for view in views for w in view.waiting}
    (fi_row,) = report_rows(database_url, finnish)
    (oslo_row,) = report_rows(database_url, unknown)
    # The final sweeps of Oslo's March: six hours before its end plus the day of grace.
    final = states(datetime(2026, 4, 1, 16, tzinfo=UTC))
    missed = states(datetime(2026, 4, 1, 22, tzinfo=UTC))

    assert (fi_row["kind"], fi_row["zone"], f"{fi_row['month']:%Y-%m}") == (
        "lpc_energy", "Europe/Helsinki", "2026-04",
    )  # fmt: skip
    assert (oslo_row["zone"], f"{oslo_row['month']:%Y-%m}") == ("Europe/Oslo", "2026-03")
    assert settling == {finnish: ("pending", None), unknown: ("pending", None)}
    assert settled == {finnish: ("due", "complete"), unknown: ("pending", None)}
    # What holds it, as `reports deadlines` shows: the location's meter point.
    assert waiting == {unknown: ["M-h@hytte"]}
    assert final[unknown] == ("due", "final")
    # Oslo's March ended (plus the grace) with it unsent; Helsinki's April is far off.
    assert missed == {finnish: ("due", "complete"), unknown: ("missed", "final")}


def test_it_sends_an_lpc_events_report_by_hand_only_once_it_ended_unless_told(
    database_url: str,
) -> None:
    event_id = store_lpc_event(
        database_url, "resource", resource_target("r-1", "loc-1"), received_at=T10 - HOUR
    )
    during = T10 + 3 * HOUR

    with connect(database_url) as conn:
        with pytest.raises(NotEnded) as refused:
            make_event_due(conn, event_id, RULES, now=during)
        made = make_event_due(conn, event_id, RULES, now=during, before_end=True)

    # The second two-hour period, 12:00-14:00, has not ended at 13:00.
    assert refused.value.unknown == [T10 + 2 * HOUR]
    assert (made.parts, made.unknown_periods) == ([1], [T10 + 2 * HOUR])
    (row,) = report_rows(database_url, event_id)
    assert (row["kind"], row["status"], row["due_reason"]) == ("lpc_energy", "due", "manual")


def test_it_has_new_readings_followed_by_a_sweep_once_an_unplanned_lpc_event_settled(
    database_url: str,
) -> None:
    store_lpc_event(
        database_url, "resource", resource_target("r-1", "loc-1"), received_at=T10 - HOUR
    )
    end = T10 + 4 * HOUR

    with connect(database_url) as conn:
        settling = waiting_for_readings(conn, RULES, now=end + HOUR)
        settled = waiting_for_readings(conn, RULES, now=end + 2 * HOUR)

    assert (settling, settled) == (False, True)
