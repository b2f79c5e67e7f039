"""`/_sandbox/` control of the partner's data in Spark (not part of Spark, no authentication):

- `GET|POST /_sandbox/neighbourhoods`: the grid neighbourhoods, replaced whole by a POST of
  `{"neighbourhoods": [...]}` (see `sandbox.neighbourhoods`); every location is placed again
  and the eligibility changes go into the current window.
- `GET|POST /_sandbox/eligibility`: `{"announceRemovals": bool, "windowSeconds": number}`,
  plus (GET) the state of the current window.
- `POST /_sandbox/eligibility/flush`: close the current window now; `{"event": ...|null}`.
- `POST /_sandbox/users/bulk`: `{"count": N, "neighbourhoodId"?, "userIdPrefix"?,
  "announce"?: false}` makes N users, each with one location inside a neighbourhood.
- `GET /_sandbox/users/deleted`: deleted users with their deletion times.
"""

from __future__ import annotations

from flask import Blueprint, Response

from sandbox.clock import spark_timestamp
from sandbox.core import current_sandbox
from sandbox.directory import Conflict
from sandbox.neighbourhoods import NeighbourhoodMap, parse_neighbourhoods
from sandbox.parsing import control_body, not_number
from sandbox.paths import CONTROL_PREFIX
from sandbox.responses import control_error, json_response

control_users = Blueprint("control_users", __name__, url_prefix=CONTROL_PREFIX)

# A bound on one bulk request, so a typo cannot exhaust the machine's memory.
MAX_BULK_USERS = 5_000_000


@control_users.get("/neighbourhoods")
def get_neighbourhoods() -> Response:
    current = current_sandbox().directory.neighbourhoods
    return json_response(200, {"neighbourhoods": [nh.to_json() for nh in current.neighbourhoods]})


@control_users.post("/neighbourhoods")
def set_neighbourhoods() -> Response:
    try:
        parsed = parse_neighbourhoods(control_body())
    except ValueError as exc:
        return control_error(str(exc))
    changed = current_sandbox().replace_neighbourhoods(NeighbourhoodMap(parsed))
    body = {"neighbourhoods": [nh.to_json() for nh in parsed], "changedLocations": changed}
    return json_response(200, body)


@control_users.get("/eligibility")
def get_eligibility() -> Response:
    return json_response(200, _eligibility_view())


@control_users.post("/eligibility")
def set_eligibility() -> Response:
    body = control_body()
    announce = body.get("announceRemovals")
    if announce is not None and not isinstance(announce, bool):
        return control_error("announceRemovals must be a boolean")
    window = body.get("windowSeconds")
    if window is not None and (not_number(window) or window <= 0):
        return control_error("windowSeconds must be a number of seconds > 0")
    current_sandbox().eligibility.configure(
        window=None if window is None else float(window), announce_removals=announce
    )
    return json_response(200, _eligibility_view())


@control_users.post("/eligibility/flush")
def flush_eligibility() -> Response:
    event = current_sandbox().eligibility.flush()
    return json_response(200, {"event": None if event is None else event.to_api()})


@control_users.post("/users/bulk")
def bulk_users() -> Response:
    body = control_body()
    count = body.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= MAX_BULK_USERS:
        return control_error(f"count must be a whole number from 1 to {MAX_BULK_USERS}")
    neighbourhood_id = body.get("neighbourhoodId")
    prefix = body.get("userIdPrefix")
    announce = body.get("announce", False)
    if neighbourhood_id is not None and not isinstance(neighbourhood_id, str):
        return control_error("neighbourhoodId must be a string")
    if prefix is not None and (not isinstance(prefix, str) or "/" in prefix):
        return control_error("userIdPrefix must be a string without /")
    if not isinstance(announce, bool):
        return control_error("announce must be a boolean")
    try:
        user_ids = current_sandbox().bulk_add_users(
            count, prefix=prefix, neighbourhood_id=neighbourhood_id, announce=announce
        )
    except (ValueError, Conflict) as exc:
        return control_error(str(exc))
    body = {"created": len(user_ids), "firstUserId": user_ids[0], "lastUserId": user_ids[-1]}
    return json_response(201, body)


@control_users.get("/users/deleted")
def deleted_users() -> Response:
    deleted = current_sandbox().directory.deleted_users()
    return json_response(200, {"deletedUsers": [d.to_control() for d in deleted]})


def _eligibility_view() -> dict[str, object]:
    sandbox = current_sandbox()
    since = sandbox.directory.pending_since()
    return {
        **sandbox.eligibility.switches().to_control(),
        "windowOpenedAt": None if since is None else spark_timestamp(since),
    }
