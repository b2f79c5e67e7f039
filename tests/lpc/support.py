"""LPC payloads for tests, shaped like the spec's schemas."""

from __future__ import annotations

from typing import Any


def points(*caps: tuple[str, float]) -> list[dict[str, Any]]:
    return [{"maxPowerInKiloWatts": kw, "timestamp": ts} for ts, kw in caps]


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
