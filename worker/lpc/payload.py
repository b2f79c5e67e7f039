"""Reading `ResourceLPCPayload`, `LocationLPCPayload` and `LPCReservationPayload` into
`LpcEvent`s, or refusing them with a reason (the event is then kept as failed for a replay).

Each target carries its own resolution; a point's cap holds over [timestamp, timestamp +
resolution), whatever the resolution is (the spec's example is 02:00:00).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from shared.timeutil import parse_spark_datetime
from worker.curves.payload import CurveError, format_time_span, parse_time_span

Kind = Literal["resource", "location", "reservation"]


class LpcError(ValueError):
    """The payload is not a usable LPC event."""


@dataclass(frozen=True)
class Cap:
    start: datetime
    end: datetime
    spark_timestamp: str
    max_kw: float


@dataclass(frozen=True)
class LpcTarget:
    resource_id: str | None
    location_id: str
    meter_point_id: str
    resolution: timedelta
    # Sorted by start; no two overlap.
    caps: tuple[Cap, ...]

    @property
    def key(self) -> tuple[str | None, str, str]:
        return (self.resource_id, self.location_id, self.meter_point_id)


@dataclass(frozen=True)
class LpcEvent:
    kind: Kind
    targets: tuple[LpcTarget, ...]
    duplicate_targets: int = 0

    @property
    def first_period_start(self) -> datetime | None:
        starts = [t.caps[0].start for t in self.targets if t.caps]
        return min(starts) if starts else None

    @property
    def last_period_end(self) -> datetime | None:
        ends = [t.caps[-1].end for t in self.targets if t.caps]
        return max(ends) if ends else None


def parse_lpc(payload: dict[str, Any], kind: Kind) -> LpcEvent:
    value = payload.get("targets")
    if not isinstance(value, list):
        raise LpcError("targets must be an array")
    targets: dict[tuple[str | None, str, str], LpcTarget] = {}
    for index, item in enumerate(value):
        target = _target(index, item, with_resource=kind == "resource")
        # A target named twice is kept once, as first named: one answer per target.
        targets.setdefault(target.key, target)
    return LpcEvent(kind, tuple(targets.values()), duplicate_targets=len(value) - len(targets))


def _target(index: int, item: Any, *, with_resource: bool) -> LpcTarget:
    if not isinstance(item, dict):
        raise LpcError(f"target {index} is not an object")
    names = ("resourceId", "locationId", "meterPointId") if with_resource else (
        "locationId", "meterPointId",
    )  # fmt: skip
    ids: dict[str, str] = {}
    for name in names:
        text = item.get(name)
        if not isinstance(text, str) or not text.strip():
            raise LpcError(f"target {index}: {name} must be a non-empty string, got {text!r}")
        ids[name] = text.strip()
    try:
        resolution = parse_time_span(item.get("resolution"))
    except CurveError as exc:
        raise LpcError(f"target {index}: {exc}") from None
    return LpcTarget(
        resource_id=ids.get("resourceId"),
        location_id=ids["locationId"],
        meter_point_id=ids["meterPointId"],
        resolution=resolution,
        caps=_caps(index, item.get("points"), resolution),
    )


def _caps(index: int, value: Any, resolution: timedelta) -> tuple[Cap, ...]:
    if not isinstance(value, list):
        raise LpcError(f"target {index}: points must be an array")
    caps = []
    for number, point in enumerate(value):
        where = f"target {index} point {number}"
        if not isinstance(point, dict):
            raise LpcError(f"{where} is not an object")
        timestamp, max_kw = point.get("timestamp"), point.get("maxPowerInKiloWatts")
        if not isinstance(timestamp, str):
            raise LpcError(f"{where}: timestamp must be a string, got {timestamp!r}")
        try:
            start = parse_spark_datetime(timestamp)
        except ValueError as exc:
            raise LpcError(f"{where}: {exc}") from None
        # bool is an int in Python; a JSON true is not a power.
        if isinstance(max_kw, bool) or not isinstance(max_kw, int | float):
            raise LpcError(f"{where}: maxPowerInKiloWatts must be a number, got {max_kw!r}")
        if not math.isfinite(max_kw) or max_kw < 0:
            raise LpcError(f"{where}: maxPowerInKiloWatts must be finite and >= 0, got {max_kw!r}")
        caps.append(Cap(start, start + resolution, timestamp, float(max_kw)))
    caps.sort(key=lambda cap: cap.start)
    for earlier, later in itertools.pairwise(caps):
        if later.start < earlier.end:
            raise LpcError(
                f"target {index}: points {earlier.spark_timestamp} and {later.spark_timestamp} "
                f"overlap with resolution {format_time_span(resolution)}"
            )
    return tuple(caps)
