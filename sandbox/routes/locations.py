"""`/users/{userId}/locations[/{locationId}]` and `/users/locations/batch`.

Location ids are unique across the tenant: a POST with an id in use is a 409 (no body), in a
batch a 400 (the batch declares nothing else). The spec also declares a 409 for PATCH, but a
PATCH cannot name another location id, so the sandbox never gives one (queue a fault to
test it). A PUT must repeat the location's id. PATCH leaves out (or null) what it does not
change; `meterPointIds: []` clears the meter points. Locations with neither meter points nor
coordinates are accepted (they are just never eligible).
"""

from __future__ import annotations

import math
from typing import Any

from flask import Blueprint, Response

from sandbox.core import current_sandbox
from sandbox.directory import Conflict, NotFound
from sandbox.parsing import read_json
from sandbox.paths import API_PREFIX
from sandbox.responses import bad_string, empty_response, json_response, string_response
from sandbox.users import LOCATION_TYPES, Coordinates, Location

locations = Blueprint("locations", __name__, url_prefix=API_PREFIX)


@locations.get("/users/<user_id>/locations")
def list_locations(user_id: str) -> Response:
    try:
        found = current_sandbox().directory.locations_of(user_id)
    except NotFound as exc:
        # The spec declares no 404 here.
        return string_response(400, exc.message)
    return json_response(200, [location.to_api() for location in found])


@locations.post("/users/<user_id>/locations")
def create_location(user_id: str) -> Response:
    body = read_json(required=True, bad=bad_string)
    location = parse_location(body, user_id, "")
    sandbox = current_sandbox()
    try:
        (created,) = sandbox.directory.add_locations([location], sandbox.clock.now())
    except NotFound:
        return empty_response(404)
    except Conflict:
        return empty_response(409)
    return json_response(201, created.to_api())


@locations.post("/users/locations/batch")
def create_locations() -> Response:
    body = read_json(required=True, bad=bad_string)
    if not isinstance(body, dict) or not isinstance(body.get("locations"), list):
        bad_string("The request body must be an object with a locations array.")
    batch = []
    for n, item in enumerate(body["locations"]):
        where = f"locations[{n}]."
        user_id = item.get("userId") if isinstance(item, dict) else None
        if not isinstance(user_id, str) or not user_id:
            bad_string(f"{where}userId is required and must be a non-empty string.")
        batch.append(parse_location(item, user_id, where))
    sandbox = current_sandbox()
    try:
        created = sandbox.directory.add_locations(batch, sandbox.clock.now())
    except (NotFound, Conflict) as exc:
        return string_response(400, exc.message)
    return json_response(201, {"locations": [location.to_api() for location in created]})


@locations.get("/users/<user_id>/locations/<location_id>")
def get_location(user_id: str, location_id: str) -> Response:
    try:
        location = current_sandbox().directory.get_location(user_id, location_id)
    except NotFound:
        return empty_response(404)
    return json_response(200, location.to_api())


@locations.put("/users/<user_id>/locations/<location_id>")
def put_location(user_id: str, location_id: str) -> Response:
    body = read_json(required=True, bad=bad_string)
    replacement = parse_location(body, user_id, "")
    if replacement.location_id != location_id:
        bad_string("The locationId in the body must be the one in the path.")
    sandbox = current_sandbox()
    try:
        updated = sandbox.directory.update_location(
            user_id, location_id, lambda _: replacement, sandbox.clock.now()
        )
    except NotFound:
        return empty_response(404)
    return json_response(200, updated.to_api())


@locations.patch("/users/<user_id>/locations/<location_id>")
def patch_location(user_id: str, location_id: str) -> Response:
    body = read_json(required=True, bad=bad_string)
    if not isinstance(body, dict):
        bad_string("The request body must be a JSON object.")
    location_type = _location_type(body.get("locationType"), "", default=None)
    coordinates = _coordinates(body.get("coordinates"), "")
    meter_point_ids = _meter_point_ids(body, "", with_deprecated=False)

    def patched(current: Location) -> Location:
        return Location(
            location_id=current.location_id,
            user_id=current.user_id,
            location_type=location_type or current.location_type,
            coordinates=coordinates or current.coordinates,
            meter_point_ids=(
                current.meter_point_ids if meter_point_ids is None else meter_point_ids
            ),
        )

    sandbox = current_sandbox()
    try:
        updated = sandbox.directory.update_location(
            user_id, location_id, patched, sandbox.clock.now()
        )
    except NotFound:
        return empty_response(404)
    return json_response(200, updated.to_api())


@locations.delete("/users/<user_id>/locations/<location_id>")
def delete_location(user_id: str, location_id: str) -> Response:
    sandbox = current_sandbox()
    try:
        sandbox.directory.delete_location(user_id, location_id, sandbox.clock.now())
    except NotFound:
        return empty_response(404)
    return empty_response(204)


# Request validation: each failure is a 400 with a string body


def parse_location(body: Any, user_id: str, where: str) -> Location:
    """A Post/PutLocationRequest (or a batch item) for `user_id`."""
    if not isinstance(body, dict):
        bad_string(f"{where or 'The request body'} must be a JSON object.")
    location_id = body.get("locationId")
    if not isinstance(location_id, str) or not location_id.strip():
        bad_string(f"{where}locationId is required and must be a non-empty string.")
    return Location(
        location_id=location_id,
        user_id=user_id,
        location_type=_location_type(body.get("locationType"), where, default="Unknown") or "",
        coordinates=_coordinates(body.get("coordinates"), where),
        meter_point_ids=_meter_point_ids(body, where, with_deprecated=True) or (),
    )


def _location_type(value: Any, where: str, *, default: str | None) -> str | None:
    if value is None:
        return default
    if value not in LOCATION_TYPES:
        bad_string(f"{where}locationType must be one of {', '.join(LOCATION_TYPES)}.")
    return str(value)


def _coordinates(value: Any, where: str) -> Coordinates | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        bad_string(f"{where}coordinates must be an object with latitude and longitude.")
    latitude = _number(value.get("latitude"))
    longitude = _number(value.get("longitude"))
    if latitude is None or not -90 <= latitude <= 90:
        bad_string(f"{where}coordinates.latitude must be a number from -90 to 90.")
    if longitude is None or not -180 <= longitude <= 180:
        bad_string(f"{where}coordinates.longitude must be a number from -180 to 180.")
    return Coordinates(latitude=latitude, longitude=longitude)


def _meter_point_ids(
    body: dict[str, Any], where: str, *, with_deprecated: bool
) -> tuple[str, ...] | None:
    """`meterPointIds`, plus the deprecated single `meterPointId`; None when neither is given."""
    given = body.get("meterPointIds")
    if given is not None and (
        not isinstance(given, list) or not all(isinstance(m, str) and m.strip() for m in given)
    ):
        bad_string(f"{where}meterPointIds must be an array of non-empty strings.")
    single = body.get("meterPointId") if with_deprecated else None
    if single is not None and (not isinstance(single, str) or not single.strip()):
        bad_string(f"{where}meterPointId must be a non-empty string.")
    if given is None and single is None:
        return None
    return tuple(dict.fromkeys([*(given or []), *([single] if single else [])]))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)
