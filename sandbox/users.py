"""Records of the partner's data that Spark holds: users, locations, resources, enrollments.

Immutable, like the records in `sandbox.state`; each renders itself in Spark's JSON shape.
Ids are partner-chosen strings. Location and resource ids are unique across the tenant, not
per user: price curves name them without a user.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sandbox.clock import spark_timestamp

JSONObject = dict[str, Any]

LOCATION_TYPES = ("Unknown", "Residential", "Commercial", "Other")
RESOURCE_TYPES = ("Generic", "Vehicle", "Charger", "HotWaterTank", "HVAC", "SolarInverter")
VEHICLE = "Vehicle"


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    created_at: datetime
    # Made by POST /simulation/partner (and removed by DELETE /simulation/partner).
    simulated: bool = False
    deleted_at: datetime | None = None

    def to_api(self) -> JSONObject:
        """GetUserResponse."""
        return {"userId": self.user_id}


@dataclass(frozen=True, slots=True)
class Coordinates:
    latitude: float
    longitude: float

    def to_api(self) -> JSONObject:
        return {"latitude": self.latitude, "longitude": self.longitude}


@dataclass(frozen=True, slots=True)
class Location:
    location_id: str
    user_id: str
    location_type: str = "Unknown"
    coordinates: Coordinates | None = None
    meter_point_ids: tuple[str, ...] = ()
    # Derived, not sent by the partner: the grid neighbourhoods this location lies in.
    neighbourhood_ids: tuple[str, ...] = ()

    @property
    def in_neighbourhood(self) -> bool:
        return bool(self.neighbourhood_ids)

    @property
    def position(self) -> tuple[float, float] | None:
        """(longitude, latitude), the order geometry works in."""
        if self.coordinates is None:
            return None
        return (self.coordinates.longitude, self.coordinates.latitude)

    def to_api(self) -> JSONObject:
        """GetLocationResponse, with `"coordinates": null` when unknown as in Spark's examples.
        The deprecated single `meterPointId` is the first of `meterPointIds`."""
        return {
            "locationId": self.location_id,
            "locationType": self.location_type,
            "coordinates": None if self.coordinates is None else self.coordinates.to_api(),
            "meterPointId": self.meter_point_ids[0] if self.meter_point_ids else None,
            "meterPointIds": list(self.meter_point_ids),
            "userId": self.user_id,
        }


@dataclass(frozen=True, slots=True)
class Resource:
    resource_id: str
    resource_type: str
    user_id: str
    # None for a vehicle, which belongs to the user rather than to a location.
    location_id: str | None = None
    meter_point_id: str | None = None

    def to_api(self) -> JSONObject:
        """GetResourceResponse."""
        return {
            "resourceId": self.resource_id,
            "resourceType": self.resource_type,
            "userId": self.user_id,
            "locationId": self.location_id,
            "meterPointId": self.meter_point_id,
        }

    def to_location_api(self) -> JSONObject:
        """GetLocationBoundResourceResponse."""
        return {
            "resourceId": self.resource_id,
            "resourceType": self.resource_type,
            "locationId": self.location_id,
            "userId": self.user_id,
            "meterPointId": self.meter_point_id,
        }


@dataclass(frozen=True, slots=True)
class Enrollment:
    """One period of a user in the Spark program; `ended_at` None while it lasts."""

    enrollment_id: str
    user_id: str
    enrolled_at: datetime
    ended_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.ended_at is None

    def to_control(self) -> JSONObject:
        return {
            "enrollmentId": self.enrollment_id,
            "enrolledAt": spark_timestamp(self.enrolled_at),
            "endedAt": None if self.ended_at is None else spark_timestamp(self.ended_at),
        }


def enrollment_to_api(user_id: str, enrollment: Enrollment | None) -> JSONObject:
    """GetUserEnrollmentResponse for a user's current enrollment, or for none."""
    if enrollment is None or not enrollment.active:
        return {
            "isEnrolled": False,
            "userId": user_id,
            "enrollmentId": None,
            "enrollmentDate": None,
        }
    return {
        "isEnrolled": True,
        "userId": user_id,
        "enrollmentId": enrollment.enrollment_id,
        "enrollmentDate": spark_timestamp(enrollment.enrolled_at),
    }


@dataclass(frozen=True)
class DeletedUser:
    """A deleted user and what it had, kept because its deletion time decides compensation
    (a user deleted during a month is not compensated for that month)."""

    user: User
    locations: tuple[Location, ...]
    resources: tuple[Resource, ...]
    enrollments: tuple[Enrollment, ...]

    def to_control(self) -> JSONObject:
        deleted_at = self.user.deleted_at
        return {
            "userId": self.user.user_id,
            "createdAt": spark_timestamp(self.user.created_at),
            "deletedAt": None if deleted_at is None else spark_timestamp(deleted_at),
            "locationIds": [loc.location_id for loc in self.locations],
            "resourceIds": [res.resource_id for res in self.resources],
            "enrollments": [e.to_control() for e in self.enrollments],
        }
