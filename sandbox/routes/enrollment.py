"""`/users/{userId}/enrollment`: a user in or out of the Spark program.

Enrolling takes no body and is idempotent (an enrolled user keeps its enrollment); leaving is
idempotent too. Enrolling does not require the user to be eligible: eligibility can change at
any time, and Spark only sends price curves for users that are both. Every enrollment period
is kept for compensation.
"""

from __future__ import annotations

from flask import Blueprint, Response

from sandbox.core import current_sandbox
from sandbox.directory import NotFound
from sandbox.paths import API_PREFIX
from sandbox.responses import empty_response, json_response
from sandbox.users import enrollment_to_api

enrollment = Blueprint("enrollment", __name__, url_prefix=API_PREFIX)


@enrollment.get("/users/<user_id>/enrollment")
def get_enrollment(user_id: str) -> Response:
    try:
        current = current_sandbox().directory.enrollment(user_id)
    except NotFound:
        return empty_response(404)
    return json_response(200, enrollment_to_api(user_id, current))


@enrollment.post("/users/<user_id>/enrollment")
def enroll(user_id: str) -> Response:
    sandbox = current_sandbox()
    try:
        current = sandbox.directory.enroll(user_id, sandbox.new_id(), sandbox.clock.now())
    except NotFound:
        return empty_response(404)
    return json_response(200, enrollment_to_api(user_id, current))


@enrollment.delete("/users/<user_id>/enrollment")
def unenroll(user_id: str) -> Response:
    sandbox = current_sandbox()
    try:
        sandbox.directory.unenroll(user_id, sandbox.clock.now())
    except NotFound:
        return empty_response(404)
    return empty_response(204)
