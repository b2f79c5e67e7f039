"""Reading a `PriceCurvePayload` into a `Curve`, or refusing it with a reason.

Plain checks rather than a schema library: a curve can name 100,000 targets, and a refused
curve must say exactly what was wrong, since the event is kept as failed for a replay.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.timeutil import parse_spark_datetime

ENERGY_UNITS = ("kWh", "MWh")
# .NET TimeSpan, as Spark writes it: `[d.]hh:mm:ss[.fffffff]`.
_TIME_SPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?$")


class CurveError(ValueError):
    """The payload is not a usable price curve."""


@dataclass(frozen=True)
class CurvePoint:
    """One point as the period it covers: [start, end)."""

    start: datetime
    end: datetime
    # Exactly as Spark wrote it.
    spark_timestamp: str
    price: float


@dataclass(frozen=True)
class Curve:
    created_at: datetime
    price_area: str
    currency: str | None
    energy_unit: str | None
    resolution: timedelta
    # Sorted by start; no two overlap.
    points: tuple[CurvePoint, ...]
    # Distinct (resource_id, location_id) pairs, in the payload's order.
    targets: list[tuple[str, str]]
    # The local day of the first period: the day the curve is for.
    local_date: date | None
    duplicate_targets: int = 0

    @property
    def first_period_start(self) -> datetime | None:
        return self.points[0].start if self.points else None

    @property
    def last_period_end(self) -> datetime | None:
        return self.points[-1].end if self.points else None


def parse_time_span(value: Any) -> timedelta:
    """`01:00:00` → one hour. Zero or negative spans are refused: a period must have a length."""
    match = _TIME_SPAN.match(value) if isinstance(value, str) else None
    if match is None:
        raise CurveError(f"resolution must be a time span like 01:00:00, got {value!r}")
    days, hours, minutes, seconds, fraction = match.groups()
    if int(hours) > 23 or int(minutes) > 59 or int(seconds) > 59:
        raise CurveError(f"resolution is not a valid time span: {value!r}")
    span = timedelta(
        days=int(days or 0),
        hours=int(hours),
        minutes=int(minutes),
        seconds=int(seconds),
        microseconds=int((fraction or "0").ljust(7, "0")[:6]),
    )
    if span <= timedelta(0):
        raise CurveError(f"resolution must be longer than zero, got {value!r}")
    return span


def format_time_span(span: timedelta) -> str:
    """The inverse of `parse_time_span`, in Spark's form."""
    total = int(span.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    if span.microseconds:
        text += f".{span.microseconds:06d}0"
    return f"{days}.{text}" if days else text


def parse_curve(
    payload: dict[str, Any], *, created_at: datetime | None, timezone: ZoneInfo
) -> Curve:
    if created_at is None:
        raise CurveError("eventCreatedAtUtc is missing: curves are ordered by it")
    area = payload.get("priceArea")
    if not isinstance(area, str) or not area.strip():
        raise CurveError(f"priceArea must be a non-empty string, got {area!r}")
    delta = payload.get("priceCurveDelta")
    if not isinstance(delta, dict):
        raise CurveError("priceCurveDelta must be an object")
    unit = _optional_string(delta, "energyUnit")
    if unit is not None and unit not in ENERGY_UNITS:
        raise CurveError(f"energyUnit must be one of {', '.join(ENERGY_UNITS)}, got {unit!r}")
    currency = _optional_string(delta, "currency")
    resolution = parse_time_span(delta.get("resolution"))
    points = _points(delta.get("points"), resolution)
    targets, duplicates = _targets(payload.get("targets"))
    local_date = points[0].start.astimezone(timezone).date() if points else None
    return Curve(
        created_at=created_at,
        price_area=area.strip(),
        currency=currency,
        energy_unit=unit,
        resolution=resolution,
        points=points,
        targets=targets,
        local_date=local_date,
        duplicate_targets=duplicates,
    )


def _optional_string(container: dict[str, Any], name: str) -> str | None:
    value = container.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise CurveError(f"{name} must be a non-empty string, got {value!r}")
    return value.strip()


def _points(value: Any, resolution: timedelta) -> tuple[CurvePoint, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise CurveError("priceCurveDelta.points must be an array")
    points = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise CurveError(f"point {index} is not an object")
        timestamp, price = item.get("timestamp"), item.get("price")
        if not isinstance(timestamp, str):
            raise CurveError(f"point {index}: timestamp must be a string, got {timestamp!r}")
        try:
            start = parse_spark_datetime(timestamp)
        except ValueError as exc:
            raise CurveError(f"point {index}: {exc}") from None
        # bool is an int in Python; a JSON true is not a price.
        if isinstance(price, bool) or not isinstance(price, int | float):
            raise CurveError(f"point {index}: price must be a number, got {price!r}")
        if not math.isfinite(price):
            raise CurveError(f"point {index}: price must be finite, got {price!r}")
        points.append(CurvePoint(start, start + resolution, timestamp, float(price)))
    points.sort(key=lambda point: point.start)
    for earlier, later in itertools.pairwise(points):
        if later.start < earlier.end:
            raise CurveError(
                f"points {earlier.spark_timestamp} and {later.spark_timestamp} overlap "
                f"with resolution {format_time_span(resolution)}"
            )
    return tuple(points)


def _targets(value: Any) -> tuple[list[tuple[str, str]], int]:
    # Required by the spec; an empty list is valid (Spark's own sample has one).
    if not isinstance(value, list):
        raise CurveError("targets must be an array")
    targets: dict[tuple[str, str], None] = {}
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise CurveError(f"target {index} is not an object")
        resource_id, location_id = item.get("resourceId"), item.get("locationId")
        if not isinstance(resource_id, str) or not resource_id:
            raise CurveError(f"target {index}: resourceId must be a non-empty string")
        if not isinstance(location_id, str) or not location_id:
            raise CurveError(f"target {index}: locationId must be a non-empty string")
        targets[(resource_id, location_id)] = None
    return list(targets), len(value) - len(targets)
