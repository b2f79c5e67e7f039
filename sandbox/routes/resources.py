"""Resources: vehicles (`/users/{userId}/vehicles`), location-bound resources
(`/users/{userId}/locations/{locationId}/resources`), a user's resources, `/resources/{id}`.

Resource ids are unique across the tenant; a taken one is a 400. A vehicle must have
resourceType Vehicle, and a location-bound resource must not (Spark: vehicles cannot be added
to locations). The vehicle operation's errors are problem details, as the spec declares, an
unknown user included (it declares no 404). A resource's meterPointId is not checked against
its location's: Spark reports such a mismatch as a compensation problem rather than refusing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from flask import Blueprint, Response

from sandbox.core import current_sandbox
from sandbox.directory import Conflict, NotFound
from sandbox.parsing import read_json
from sandbox.paths import API_PREFIX
from sandbox.responses import (
    bad_problem,
    bad_string,
    empty_response,
    json_response,
    reject_problem,
    string_response,
)
from sandbox.users import RESOURCE_TYPES, VEHICLE, Resource

resources = Blueprint("resources", __name__, url_prefix=API_PREFIX)


@resources.post("/users/<user_id>/vehicles")
def create_vehicle(user_id: str) -> Response:
    body = read_json(required=True, bad=bad_problem)
    if not isinstance(body, dict):
        bad_problem("The request body must be a JSON object.")
    resource_id = _resource_id(body, reject=reject_problem)
    resource_type = body.get("resourceType")
    if resource_type != VEHICLE:
        reject_problem("resourceType", "A vehicle's resourceType must be Vehicle.")
    try:
        created = current_sandbox().directory.add_resource(Resource(resource_id, VEHICLE, user_id))
    except NotFound as exc:
        reject_problem("userId", exc.message)
    except Conflict as exc:
        reject_problem("resourceId", exc.message)
    return json_response(201, created.to_api())


@resources.get("/users/<user_id>/resources")
def list_user_resources(user_id: str) -> Response:
    try:
        found = current_sandbox().directory.resources_of(user_id)
    except NotFound:
        return empty_response(404)
    return json_response(200, {"resources": [r.to_api() for r in found]})


@resources.get("/users/<user_id>/locations/<location_id>/resources")
def list_location_resources(user_id: str, location_id: str) -> Response:
    try:
        found = current_sandbox().directory.resources_at(user_id, location_id)
    except NotFound:
        return empty_response(404)
    return json_response(200, [r.to_location_api() for r in found])


@resources.post("/users/<user_id>/locations/<location_id>/resources")
def create_location_resource(user_id: str, location_id: str) -> Response:
    body = read_json(required=True, bad=bad_string)
    if not isinstance(body, dict):
        bad_string("The request body must be a JSON object.")
    resource_id = _resource_id(body, reject=_string_rejection)
    resource_type = body.get("resourceType")
    if resource_type not in RESOURCE_TYPES:
        bad_string(f"resourceType must be one of {', '.join(RESOURCE_TYPES)}.")
    if resource_type == VEHICLE:
        bad_string("Vehicles cannot be added to a location; POST /users/{userId}/vehicles.")
    meter_point_id = body.get("meterPointId")
    if meter_point_id is not None and (not isinstance(meter_point_id, str) or not meter_point_id):
        bad_string("meterPointId must be a non-empty string.")
    resource = Resource(resource_id, str(resource_type), user_id, location_id, meter_point_id)
    try:
        created = current_sandbox().directory.add_resource(resource)
    except NotFound as exc:
        return string_response(404, exc.message)
    except Conflict as exc:
        return string_response(400, exc.message)
    return json_response(201, created.to_location_api())


@resources.get("/resources/<resource_id>")
def get_resource(resource_id: str) -> Response:
    try:
        resource = current_sandbox().directory.get_resource(resource_id)
    except NotFound as exc:
        return string_response(404, exc.message)
    return json_response(200, resource.to_api())


@resources.delete("/resources/<resource_id>")
def delete_resource(resource_id: str) -> Response:
    try:
        current_sandbox().directory.delete_resource(resource_id)
    except NotFound:
        return empty_response(404)
    return empty_response(204)


def _resource_id(body: dict[str, Any], *, reject: Callable[[str, str], NoReturn]) -> str:
    resource_id = body.get("resourceId")
    if not isinstance(resource_id, str) or not resource_id.strip():
        reject("resourceId", "resourceId is required and must be a non-empty string.")
    return resource_id


def _string_rejection(field_name: str, message: str) -> NoReturn:
    bad_string(message)
