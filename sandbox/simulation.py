"""Simulated events: the payloads of `/simulation/events/*` and their request validation."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as wall_time
from random import Random
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.clock import parse_timestamp, spark_timestamp
from sandbox.parsing import not_number
from sandbox.price_areas import PRICE_AREA_CURRENCIES
from sandbox.state import JSONObject

CURRENCIES = ("NOK", "EUR", "SEK", "DKK")
ENERGY_UNITS = ("kWh", "MWh")
# Local hours in which the default simulated curve asks partners to move usage away
# (positive delta); the other hours invite usage (negative delta).
PEAK_HOURS = frozenset({7, 8, 9, 17, 18, 19, 20})
TIME_SPAN = re.compile(r"^(\d+\.)?\d{1,2}:\d{2}:\d{2}(\.\d{1,7})?$")


@dataclass(frozen=True)
class PriceCurveRequest:
    """A validated SimulatePriceCurveEventRequest; None means "let the sandbox choose"."""

    targets: list[JSONObject] | None = None
    delta: JSONObject | None = None
    price_area: str | None = None


def price_curve_payload(
    wanted: PriceCurveRequest,
    *,
    now: datetime,
    timezone: ZoneInfo,
    rng: Random,
    new_id: Callable[[], str],
) -> JSONObject:
    area = wanted.price_area or rng.choice(sorted(PRICE_AREA_CURRENCIES))
    delta = wanted.delta or {}
    points = delta.get("points")
    if points is None:
        points = _default_points(now, timezone, rng)
    curve = {
        "points": points,
        "energyUnit": delta.get("energyUnit") or "kWh",
        "currency": delta.get("currency") or PRICE_AREA_CURRENCIES[area],
        "resolution": delta.get("resolution") or "01:00:00",
    }
    targets = wanted.targets
    if targets is None:
        targets = [
            {"resourceId": new_id(), "locationId": new_id()} for _ in range(rng.randint(1, 3))
        ]
    return {
        "targets": targets,
        "priceCurveDelta": curve,
        "priceArea": area,
        "payloadType": "PriceCurve",
    }


def user_eligibility_payload(*, now: datetime, added: list[str], removed: list[str]) -> JSONObject:
    return {
        "lastUpdated": spark_timestamp(now),
        "addedUsers": added,
        "removedUsers": removed,
        "payloadType": "UserEligibility",
    }


def random_user_eligibility_payload(
    *, now: datetime, rng: Random, new_id: Callable[[], str]
) -> JSONObject:
    """What `/simulation/events/usereligibility` sends: random ids, no real users affected."""
    added = [new_id() for _ in range(rng.randint(1, 3))]
    removed = [new_id() for _ in range(rng.randint(0, 2))]
    return user_eligibility_payload(now=now, added=added, removed=removed)


def _default_points(now: datetime, timezone: ZoneInfo, rng: Random) -> list[JSONObject]:
    points = []
    for hour in next_local_day_hours(now, timezone):
        magnitude = round(rng.uniform(0.05, 1.0), 4)
        sign = 1 if hour.astimezone(timezone).hour in PEAK_HOURS else -1
        points.append({"price": sign * magnitude, "timestamp": spark_timestamp(hour)})
    return points


def next_local_day_hours(now: datetime, timezone: ZoneInfo) -> list[datetime]:
    """The UTC starts of each hour of tomorrow in `timezone`: 24, or 23/25 on DST days."""
    tomorrow = now.astimezone(timezone).date() + timedelta(days=1)
    start = datetime.combine(tomorrow, wall_time(0), tzinfo=timezone).astimezone(UTC)
    end = datetime.combine(tomorrow + timedelta(days=1), wall_time(0), tzinfo=timezone)
    hours = []
    hour = start
    while hour < end.astimezone(UTC):
        hours.append(hour)
        hour += timedelta(hours=1)
    return hours


# Request validation


def parse_price_curve_request(body: Any) -> PriceCurveRequest:
    """Validate a SimulatePriceCurveEventRequest; ValueError says what is wrong."""
    if not isinstance(body, dict):
        raise ValueError("The request body must be a JSON object.")
    targets = body.get("targets")
    if targets is not None:
        targets = [_parse_target(t) for t in _as_list(targets, "targets")]
    area = body.get("priceArea")
    if area is not None and area not in PRICE_AREA_CURRENCIES:
        raise ValueError(
            f"priceArea must be one of {', '.join(sorted(PRICE_AREA_CURRENCIES))}, got {area!r}."
        )
    delta = body.get("priceCurveDelta")
    if delta is not None:
        delta = _parse_curve(delta)
    return PriceCurveRequest(targets=targets, delta=delta, price_area=area)


def _as_list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{name} must be an array.")
    return value


def _parse_target(value: Any) -> JSONObject:
    if not isinstance(value, dict):
        raise ValueError("Each target must be an object with resourceId and locationId.")
    resource_id, location_id = value.get("resourceId"), value.get("locationId")
    if not isinstance(resource_id, str) or not isinstance(location_id, str):
        raise ValueError("Each target needs string resourceId and locationId.")
    return {"resourceId": resource_id, "locationId": location_id}


def _parse_curve(value: Any) -> JSONObject:
    if not isinstance(value, dict):
        raise ValueError("priceCurveDelta must be an object.")
    curve: JSONObject = {}
    points = value.get("points")
    if points is not None:
        curve["points"] = [_parse_point(p) for p in _as_list(points, "priceCurveDelta.points")]
    for name, allowed in (("energyUnit", ENERGY_UNITS), ("currency", CURRENCIES)):
        given = value.get(name)
        if given is not None and given not in allowed:
            raise ValueError(f"priceCurveDelta.{name} must be one of {', '.join(allowed)}.")
        curve[name] = given
    resolution = value.get("resolution")
    if resolution is not None and not (isinstance(resolution, str) and TIME_SPAN.match(resolution)):
        raise ValueError("priceCurveDelta.resolution must be a time span like 01:00:00.")
    curve["resolution"] = resolution
    return curve


def _parse_point(value: Any) -> JSONObject:
    if not isinstance(value, dict):
        raise ValueError("Each price curve point must be an object.")
    price, timestamp = value.get("price"), value.get("timestamp")
    if not_number(price):
        raise ValueError("Each price curve point needs a numeric price.")
    if not isinstance(timestamp, str):
        raise ValueError("Each price curve point needs a timestamp.")
    try:
        when = parse_timestamp(timestamp)
    except ValueError:
        raise ValueError(f"Not a timestamp with an offset: {timestamp!r}.") from None
    return {"price": price, "timestamp": spark_timestamp(when)}
