"""What every `POST /reports` check shares: the refusal, time spans and energy points.

Price-curve reports (`sandbox.reports`) and LPC reports (`sandbox.lpc_reports`) check their
payloads' `resolution` and `points` the same way, so both take them from here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as wall_time
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.clock import parse_timestamp, spark_timestamp

TIME_SPAN_PARTS = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2}(?:\.\d{1,7})?)$")


class ReportRejected(Exception):
    """A 400 from `POST /reports`, with the message Spark's client gets."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def month_end(month: date, timezone: ZoneInfo) -> datetime:
    """The first instant of the local month after `month` (its first day)."""
    following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    return datetime.combine(following, wall_time(0), tzinfo=timezone)


def report_deadline(month: date, timezone: ZoneInfo, grace_seconds: float) -> datetime:
    """Energy reports for an event of `month` count until the month's end plus the grace."""
    return month_end(month, timezone) + timedelta(seconds=grace_seconds)


def check_in_time(
    event_id: str, month: date, now: datetime, timezone: ZoneInfo, grace_seconds: float
) -> None:
    deadline = report_deadline(month, timezone, grace_seconds)
    if now >= deadline:
        raise ReportRejected(
            f"Reports for event {event_id} were due by {spark_timestamp(deadline)} "
            f"(the end of {month:%Y-%m} plus {grace_seconds:g} s of grace); "
            f"this one came at {spark_timestamp(now)}."
        )


def parse_time_span(text: str) -> timedelta:
    """A .NET TimeSpan string ([d.]hh:mm:ss[.fffffff]); ValueError when it is not one."""
    found = TIME_SPAN_PARTS.match(text)
    if found is None:
        raise ValueError(f"not a time span: {text!r}")
    days, hours, minutes, seconds = found.groups()
    return timedelta(
        days=int(days or 0), hours=int(hours), minutes=int(minutes), seconds=float(seconds)
    )


def format_time_span(span: timedelta) -> str:
    """The inverse of `parse_time_span` for whole seconds, as Spark writes it: `02:00:00`."""
    seconds = int(span.total_seconds())
    days, seconds = divmod(seconds, 86400)
    text = f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return f"{days}.{text}" if days else text


def check_resolution(resolution: Any, wanted: timedelta | None, where: str) -> None:
    """A payload's `resolution` must be a time span equal to the event's (compared as a
    duration, so "1:00:00" is "01:00:00"); `wanted` None accepts any."""
    if not isinstance(resolution, str):
        raise ReportRejected(f"{where}.resolution is required, e.g. 01:00:00.")
    try:
        given = parse_time_span(resolution)
    except ValueError:
        raise ReportRejected(f"{where}.resolution must be a time span like 01:00:00.") from None
    if wanted is not None and given != wanted:
        raise ReportRejected(
            f"{where}.resolution {resolution} does not match the event's resolution "
            f"{format_time_span(wanted)}."
        )


@dataclass(frozen=True)
class UsagePoint:
    at: datetime
    kilowatt_hours: float


def energy_points(
    payload: dict[str, Any],
    periods: Collection[datetime],
    where: str,
    *,
    outside: str,
    allow_curve_points: bool,
) -> tuple[UsagePoint, ...]:
    """A payload's `points` (or, when allowed, the deprecated `curvePoints`, not both): each
    an `EnergyCurvePoint` whose timestamp is one of `periods` (compared as instants), once,
    with a finite `kiloWattHours` >= 0. `outside` ends the refusal of a timestamp not in
    `periods` ("... is not one of {outside}")."""
    points = payload.get("points")
    old_points = payload.get("curvePoints") if allow_curve_points else None
    if points is not None and old_points is not None:
        raise ReportRejected(f"{where}: give points or the deprecated curvePoints, not both.")
    name = "points" if old_points is None else "curvePoints"
    raw = points if old_points is None else old_points
    if raw is None:
        raise ReportRejected(f"{where}.points is required.")
    if not isinstance(raw, list):
        raise ReportRejected(f"{where}.{name} must be an array.")
    parsed = []
    seen: set[datetime] = set()
    for n, point in enumerate(raw):
        at = f"{where}.{name}[{n}]"
        if not isinstance(point, dict):
            raise ReportRejected(f"{at} must be an object with timestamp and kiloWattHours.")
        timestamp, energy = point.get("timestamp"), point.get("kiloWattHours")
        if not isinstance(timestamp, str):
            raise ReportRejected(f"{at}.timestamp is required.")
        try:
            when = parse_timestamp(timestamp)
        except ValueError:
            raise ReportRejected(
                f"{at}.timestamp {timestamp!r} is not a timestamp with an offset."
            ) from None
        if not isinstance(energy, int | float) or isinstance(energy, bool):
            raise ReportRejected(f"{at}.kiloWattHours must be a number.")
        if not math.isfinite(energy):
            raise ReportRejected(f"{at}.kiloWattHours must be a finite number.")
        if energy < 0:
            raise ReportRejected(f"{at}.kiloWattHours must be 0 or more, got {energy}.")
        if when not in periods:
            raise ReportRejected(f"{at}.timestamp {timestamp} is not one of {outside}.")
        if when in seen:
            raise ReportRejected(f"{at}.timestamp {timestamp} is reported twice.")
        seen.add(when)
        parsed.append(UsagePoint(when, float(energy)))
    return tuple(parsed)
