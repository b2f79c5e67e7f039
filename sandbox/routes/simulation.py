"""`/simulation/*`: simulated events, and simulated partner data (users created in Spark by
other means than this partner's API calls)."""

from __future__ import annotations

from flask import Blueprint, Response

from sandbox.core import current_sandbox
from sandbox.lpc_simulation import parse_lpc_request
from sandbox.parsing import read_json
from sandbox.paths import API_PREFIX
from sandbox.responses import bad_string, empty_response, json_response, string_response
from sandbox.simulation import parse_price_curve_request

simulation = Blueprint("simulation", __name__, url_prefix=API_PREFIX)


@simulation.post("/simulation/events/pricecurve")
def simulate_price_curve() -> Response:
    body = read_json(required=True, bad=bad_string)
    try:
        wanted = parse_price_curve_request(body)
    except ValueError as exc:
        return string_response(400, str(exc))
    event = current_sandbox().simulate_price_curve(wanted)
    return json_response(200, {"simulatedEvent": event.to_api()})


@simulation.post("/simulation/events/lpc/resources")
def simulate_lpc_resources() -> Response:
    return _simulate_lpc("resources")


@simulation.post("/simulation/events/lpc/locations")
def simulate_lpc_locations() -> Response:
    return _simulate_lpc("locations")


def _simulate_lpc(kind: str) -> Response:
    body = read_json(required=True, bad=bad_string)
    try:
        targets = parse_lpc_request(body, kind=kind)
    except ValueError as exc:
        return string_response(400, str(exc))
    event = current_sandbox().simulate_lpc(targets, kind)
    return json_response(200, {"simulatedEvent": event.to_api()})


@simulation.post("/simulation/events/usereligibility")
def simulate_user_eligibility() -> Response:
    event = current_sandbox().simulate_user_eligibility()
    return json_response(200, {"simulatedEvent": event.to_api()})


@simulation.post("/simulation/partner")
def simulate_partner_data() -> Response:
    # The spec gives the 201 no body; GET /users shows what was made.
    current_sandbox().simulate_partner_data()
    return empty_response(201)


@simulation.delete("/simulation/partner")
def delete_simulated_partner_data() -> Response:
    current_sandbox().delete_simulated_partner_data()
    return empty_response(200)
