"""LPC payloads for tests, shaped like the spec's schemas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.timeutil import format_spark_datetime


def points(*caps: tuple[str, float]) -> list[dict[str, Any]]:
    return [{"maxPowerInKiloWatts": kw, "timestamp": ts} for ts, kw in caps]


def caps_from_now(hours_ahead: float) -> tuple[tuple[str, float], ...]:
    """Two two-hour caps (3.5 kW, then 2 kW), the first from the whole hour `hours_ahead` from
    now (negative: an event that comes late)."""
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(
        hours=hours_ahead
    )
    return (
        (format_spark_datetime(start), 3.5),
        (format_spark_datetime(start + timedelta(hours=2)), 2.0),
    )


def resource_target(
    resource_id: str,
    location_id: str = "loc-1",
    meter_point_id: str = "707057500012345678",
    resolution: str = "02:00:00",
    caps: tuple[tuple[str, float], ...] = (
        ("2026-03-04T10:00:00+00:00", 3.5),
        ("2026-03-04T12:00:00+00:00", 2.0),
    ),
) -> dict[str, Any]:
    return {
        "meterPointId": meter_point_id,
        "locationId": location_id,
        "resourceId": resource_id,
        "resolution": resolution,
        "points": points(*caps),
    }


def location_target(
    location_id: str,
    meter_point_id: str = "707057500012345678",
    resolution: str = "02:00:00",
    caps: tuple[tuple[str, float], ...] = (("2026-03-04T10:00:00+00:00", 11.0),),
) -> dict[str, Any]:
    return {
        "locationId": location_id,
        "meterPointId": meter_point_id,
        "resolution": resolution,
        "points": points(*caps),
    }


def resource_payload(*targets: dict[str, Any]) -> dict[str, Any]:
    return {"targets": list(targets), "payloadType": "ResourceLPC"}


def location_payload(*targets: dict[str, Any]) -> dict[str, Any]:
    return {"targets": list(targets), "payloadType": "LocationLPC"}


def reservation_payload(*targets: dict[str, Any]) -> dict[str, Any]:
    return {"targets": list(targets), "payloadType": "LPCReservation"}
