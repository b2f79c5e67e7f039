"""`/simulation/events/lpc/resources` and `/lpc/locations`: LPC events made from a request.

The request names each target (`{resource: {locationId, resourceId, meterPointId}, points}` or
`{location: {locationId, meterPointId}, points}`); the event Spark sends carries each target
flat with a `resolution`, which the request has no field for: the smallest spacing of the
given points, or two hours (the spec's example) with fewer than two points. Without points
the sandbox makes four two-hour caps from the next whole hour. Unlike Spark, the sandbox does
not pick random targets when none are given: the request must name them.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from random import Random
from typing import Any

from sandbox.clock import parse_timestamp, spark_timestamp
from sandbox.parsing import not_number
from sandbox.report_parts import format_time_span
from sandbox.state import JSONObject

DEFAULT_RESOLUTION = timedelta(hours=2)
RESOURCE_IDS = ("locationId", "resourceId", "meterPointId")
LOCATION_IDS = ("locationId", "meterPointId")


def parse_lpc_request(body: Any, *, kind: str) -> list[tuple[JSONObject, list[JSONObject] | None]]:
    """Validate a Simulate{Resource,Location}LPCEventRequest: (ids, points or None) per
    target. `kind` is "resources" or "locations"; ValueError says what is wrong."""
    if not isinstance(body, dict):
        raise ValueError("The request body must be a JSON object.")
    items = body.get(kind)
    if not isinstance(items, list) or not items:
        raise ValueError(f"{kind} must be a non-empty array (this sandbox picks no targets).")
    member, names = ("resource", RESOURCE_IDS) if kind == "resources" else (
        "location", LOCATION_IDS,
    )  # fmt: skip
    targets = []
    for index, item in enumerate(items):
        ids = item.get(member) if isinstance(item, dict) else None
        if not isinstance(ids, dict):
            raise ValueError(f"{kind}[{index}].{member} must be an object.")
        for name in names:
            if not isinstance(ids.get(name), str) or not ids[name]:
                raise ValueError(f"{kind}[{index}].{member}.{name} must be a non-empty string.")
        points = item.get("points")
        if points is not None:
            points = [_point(f"{kind}[{index}].points[{n}]", p) for n, p in enumerate(points)]
        targets.append(({name: ids[name] for name in names}, points))
    return targets


def _point(where: str, value: Any) -> JSONObject:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object.")
    kw, timestamp = value.get("maxPowerInKiloWatts"), value.get("timestamp")
    if not_number(kw):
        raise ValueError(f"{where} needs a numeric maxPowerInKiloWatts.")
    if not isinstance(timestamp, str):
        raise ValueError(f"{where} needs a timestamp.")
    try:
        when = parse_timestamp(timestamp)
    except ValueError:
        raise ValueError(f"Not a timestamp with an offset: {timestamp!r}.") from None
    return {"maxPowerInKiloWatts": kw, "timestamp": spark_timestamp(when)}


def lpc_payload(
    targets: list[tuple[JSONObject, list[JSONObject] | None]],
    *,
    kind: str,
    now: datetime,
    rng: Random,
) -> JSONObject:
    flat = []
    for ids, given in targets:
        points = given if given is not None else _random_points(now, rng)
        flat.append({**ids, "resolution": format_time_span(_resolution(points)), "points": points})
    payload_type = "ResourceLPC" if kind == "resources" else "LocationLPC"
    return {"targets": flat, "payloadType": payload_type}


def _resolution(points: list[JSONObject]) -> timedelta:
    starts = sorted({parse_timestamp(p["timestamp"]) for p in points})
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    return min(gaps) if gaps else DEFAULT_RESOLUTION


def _random_points(now: datetime, rng: Random) -> list[JSONObject]:
    start = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return [
        {
            "maxPowerInKiloWatts": round(rng.uniform(2.0, 11.0), 1),
            "timestamp": spark_timestamp(start + n * DEFAULT_RESOLUTION),
        }
        for n in range(4)
    ]
