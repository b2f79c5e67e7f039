"""Property tests of how curves and LPC events are split into periods
(worker/curves/payload.py, worker/lpc/payload.py).

What could fail: a point lost, doubled or moved (its period must be exactly [timestamp,
timestamp + resolution), whatever offset or fraction the timestamp is written with); periods
left unsorted or overlapping; overlapping points accepted; a resolution read wrongly or not
written back the way Spark writes it; the curve's local day taken from the wrong point or
zone (across DST changes and month ends); a target named twice counted twice.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.curves.payload import CurveError, format_time_span, parse_curve, parse_time_span
from worker.lpc.payload import LpcError, parse_lpc

OSLO = ZoneInfo("Europe/Oslo")
HELSINKI = ZoneInfo("Europe/Helsinki")
# Around the spring and autumn changes and a month end, so local days of 23 and 25 hours and
# days that end in another month in UTC are drawn often.
ANCHORS = [
    datetime(2026, 3, 28, 12, tzinfo=UTC),
    datetime(2026, 10, 24, 12, tzinfo=UTC),
    datetime(2026, 1, 31, 12, tzinfo=UTC),
    datetime(2024, 2, 28, 12, tzinfo=UTC),
]
RESOLUTIONS = [
    timedelta(minutes=15),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(days=1),
]
OFFSETS = [timedelta(0), timedelta(hours=1), timedelta(hours=2), timedelta(hours=-3, minutes=-30)]


def spark_text(instant: datetime, offset: timedelta, fraction: bool, zulu: bool) -> str:
    """`instant` written as Spark (7 fraction digits) or others write it, at `offset`."""
    local = instant.astimezone(timezone(offset))
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + (".0000000" if fraction else "")
    if zulu and offset == timedelta(0):
        return text + "Z"
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return text + f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


@st.composite
def point_sets(draw: st.DrawFn) -> tuple[timedelta, list[datetime], list[str]]:
    """A resolution, distinct period starts on it (in any order, with gaps), and how each
    start is written."""
    resolution = draw(st.sampled_from(RESOLUTIONS))
    anchor = draw(st.sampled_from(ANCHORS)) + draw(st.integers(-96, 96)) * timedelta(minutes=15)
    slots = draw(st.lists(st.integers(0, 120), min_size=1, max_size=40, unique=True))
    starts = [anchor + slot * resolution for slot in slots]
    texts = [
        spark_text(start, draw(st.sampled_from(OFFSETS)), draw(st.booleans()), draw(st.booleans()))
        for start in starts
    ]
    return resolution, starts, texts


def check_periods(
    periods: list[tuple[datetime, datetime, str]],
    resolution: timedelta,
    starts: list[datetime],
    texts: list[str],
) -> None:
    # Every point once, as the period [its instant, + resolution), in time order, no overlap,
    # each keeping the timestamp exactly as written.
    assert sorted(zip(starts, texts, strict=True)) == [(s, t) for s, _, t in periods]
    for start, end, _ in periods:
        assert start.utcoffset() == timedelta(0)
        assert end - start == resolution
    for earlier, later in itertools.pairwise(periods):
        assert earlier[1] <= later[0]


@given(points=point_sets(), zone=st.sampled_from([OSLO, HELSINKI, ZoneInfo("UTC")]))
def test_it_splits_a_curve_into_one_period_per_point(
    points: tuple[timedelta, list[datetime], list[str]], zone: ZoneInfo
) -> None:
    resolution, starts, texts = points
    payload = {
        "priceArea": "NO1",
        "targets": [{"resourceId": "r", "locationId": "l"}],
        "priceCurveDelta": {
            "resolution": format_time_span(resolution),
            "points": [{"timestamp": t, "price": -0.5} for t in texts],
        },
    }

    curve = parse_curve(payload, created_at=min(starts), timezone=zone)

    check_periods(
        [(p.start, p.end, p.spark_timestamp) for p in curve.points], resolution, starts, texts
    )
    assert curve.first_period_start == min(starts)
    assert curve.last_period_end == max(starts) + resolution
    assert curve.local_date == min(starts).astimezone(zone).date()


@given(
    points=point_sets(),
    kind=st.sampled_from(["resource", "location", "reservation"]),
    copies=st.integers(1, 3),
)
def test_it_splits_each_lpc_target_into_one_period_per_point(
    points: tuple[timedelta, list[datetime], list[str]], kind: Any, copies: int
) -> None:
    resolution, starts, texts = points
    target = {
        "resourceId": "r",
        "locationId": "l",
        "meterPointId": "m",
        "resolution": format_time_span(resolution),
        "points": [{"timestamp": t, "maxPowerInKiloWatts": 11} for t in texts],
    }
    other = {**target, "locationId": "other", "points": target["points"][:1]}

    event = parse_lpc({"targets": [target] * copies + [other]}, kind)

    assert event.duplicate_targets == copies - 1
    assert [t.location_id for t in event.targets] == ["l", "other"]
    first = event.targets[0]
    check_periods(
        [(c.start, c.end, c.spark_timestamp) for c in first.caps], resolution, starts, texts
    )
    assert event.first_period_start == min(starts)
    assert event.last_period_end == max(starts) + resolution


@given(points=point_sets(), data=st.data())
def test_it_refuses_points_closer_than_the_resolution(
    points: tuple[timedelta, list[datetime], list[str]], data: st.DataObject
) -> None:
    resolution, starts, texts = points
    # A point inside another's period: it overlaps, whichever way it is written.
    inside = data.draw(st.sampled_from(starts)) + data.draw(
        st.integers(0, int(resolution / timedelta(minutes=1)) - 1)
    ) * timedelta(minutes=1)
    text = spark_text(inside, data.draw(st.sampled_from(OFFSETS)), True, False)
    written = [*texts, text]
    delta = {
        "resolution": format_time_span(resolution),
        "points": [{"timestamp": t, "price": 1.0} for t in written],
    }
    payload = {"priceArea": "NO1", "targets": [], "priceCurveDelta": delta}
    target = {
        "locationId": "l",
        "meterPointId": "m",
        "resolution": delta["resolution"],
        "points": [{"timestamp": t, "maxPowerInKiloWatts": 1} for t in written],
    }

    with pytest.raises(CurveError, match="overlap"):
        parse_curve(payload, created_at=min(starts), timezone=OSLO)
    with pytest.raises(LpcError, match="overlap"):
        parse_lpc({"targets": [target]}, "location")


@given(span=st.timedeltas(timedelta(microseconds=1), timedelta(days=400)))
def test_it_writes_a_resolution_back_as_it_reads_it(span: timedelta) -> None:
    assert parse_time_span(format_time_span(span)) == span
