"""`/users`, `/users/{userId}` and `/users/batch`.

A duplicate userId is a 400 with a string body: the spec declares no 409 for these two
operations (it does for locations).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from sandbox.core import current_sandbox
from sandbox.directory import Conflict, NotFound
from sandbox.parsing import paging, read_json
from sandbox.paths import API_PREFIX
from sandbox.responses import bad_string, empty_response, json_response, pagination, string_response

users = Blueprint("users", __name__, url_prefix=API_PREFIX)


@users.get("/users")
def list_users() -> Response:
    page, page_size = paging(as_problem=False)
    user_ids, total = current_sandbox().directory.users_page((page - 1) * page_size, page_size)
    body = {
        "users": [{"userId": user_id} for user_id in user_ids],
        "pagination": pagination(total, page, page_size),
    }
    return json_response(200, body)


@users.post("/users")
def create_user() -> Response:
    user_id = parse_user_id(read_json(required=True, bad=bad_string), "")
    sandbox = current_sandbox()
    try:
        (user,) = sandbox.directory.add_users([user_id], sandbox.clock.now())
    except Conflict as exc:
        return string_response(400, exc.message)
    return json_response(201, user.to_api())


@users.post("/users/batch")
def create_users() -> Response:
    body = read_json(required=True, bad=bad_string)
    if not isinstance(body, dict) or not isinstance(body.get("users"), list):
        bad_string("The request body must be an object with a users array.")
    user_ids = [parse_user_id(item, f"users[{n}].") for n, item in enumerate(body["users"])]
    sandbox = current_sandbox()
    try:
        created = sandbox.directory.add_users(user_ids, sandbox.clock.now())
    except Conflict as exc:
        return string_response(400, exc.message)
    return json_response(201, {"users": [user.to_api() for user in created]})


@users.get("/users/<user_id>")
def get_user(user_id: str) -> Response:
    try:
        user = current_sandbox().directory.get_user(user_id)
    except NotFound:
        return empty_response(404)
    return json_response(200, user.to_api())


@users.delete("/users/<user_id>")
def delete_user(user_id: str) -> Response:
    sandbox = current_sandbox()
    try:
        sandbox.directory.delete_user(user_id, sandbox.clock.now())
    except NotFound:
        return empty_response(404)
    return empty_response(204)


def parse_user_id(body: Any, where: str) -> str:
    """The userId of a PostUserRequest; a 400 string when it is missing or blank."""
    if not isinstance(body, dict):
        bad_string(f"{where or 'The request body'} must be an object with a userId.")
    user_id = body.get("userId")
    if not isinstance(user_id, str) or not user_id.strip():
        bad_string(f"{where}userId is required and must be a non-empty string.")
    return user_id
