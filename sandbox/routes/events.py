"""`/events` (paged, newest first) and `/events/{eventId}`."""

from __future__ import annotations

from flask import Blueprint, Response

from sandbox.core import current_sandbox
from sandbox.parsing import paging
from sandbox.paths import API_PREFIX
from sandbox.responses import empty_response, json_response, pagination

events = Blueprint("events", __name__, url_prefix=API_PREFIX)


@events.get("/events")
def list_events() -> Response:
    page, page_size = paging()
    found, total = current_sandbox().state.events_newest_first((page - 1) * page_size, page_size)
    body = {
        "events": [e.to_api() for e in found],
        "pagination": pagination(total, page, page_size),
    }
    return json_response(200, body)


@events.get("/events/<event_id>")
def get_event(event_id: str) -> Response:
    event = current_sandbox().state.get_event(event_id)
    if event is None:
        return empty_response(404)
    return json_response(200, event.to_api())
