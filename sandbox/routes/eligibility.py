"""Eligibility: `/users/{userId}/eligibility`, `/users/eligible` (paged, user-id order) and
`/meters/{mpid}/eligible` (whether a meter point is on a neighbourhood's list)."""

from __future__ import annotations

from flask import Blueprint, Response

from sandbox.core import current_sandbox
from sandbox.directory import NotFound
from sandbox.parsing import paging
from sandbox.paths import API_PREFIX
from sandbox.responses import empty_response, json_response, pagination

eligibility = Blueprint("eligibility", __name__, url_prefix=API_PREFIX)


@eligibility.get("/users/<user_id>/eligibility")
def user_eligibility(user_id: str) -> Response:
    try:
        eligible = current_sandbox().directory.is_eligible(user_id)
    except NotFound:
        return empty_response(404)
    return json_response(200, {"userId": user_id, "isEligible": eligible})


@eligibility.get("/users/eligible")
def eligible_users() -> Response:
    page, page_size = paging()
    directory = current_sandbox().directory
    user_ids, total = directory.eligible_page((page - 1) * page_size, page_size)
    body = {
        "pagination": pagination(total, page, page_size),
        "users": [{"userId": user_id} for user_id in user_ids],
    }
    return json_response(200, body)


@eligibility.get("/meters/<mpid>/eligible")
def meter_eligibility(mpid: str) -> Response:
    eligible = current_sandbox().directory.meter_is_eligible(mpid)
    return json_response(200, {"meterPointId": mpid, "isEligible": eligible})
