"""`GET /users/{userId}/compensation`: the current month's compensation per location, by the
formula in `sandbox.compensation`."""

from __future__ import annotations

from flask import Blueprint, Response

from sandbox.core import current_sandbox
from sandbox.paths import API_PREFIX
from sandbox.responses import empty_response, json_response

compensation = Blueprint("compensation", __name__, url_prefix=API_PREFIX)


@compensation.get("/users/<user_id>/compensation")
def user_compensation(user_id: str) -> Response:
    body = current_sandbox().compensation(user_id)
    if body is None:
        return empty_response(404)
    return json_response(200, body)
