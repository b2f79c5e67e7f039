"""`/_sandbox/`: the control surface for tests and demos (not part of Spark, no authentication):
delivery switches, queued faults, token expiry, request and delivery logs, clock, reset."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from sandbox.clock import Clock, parse_timestamp, spark_timestamp
from sandbox.core import current_sandbox
from sandbox.delivery import FAIL_MODES
from sandbox.parsing import control_body, not_number
from sandbox.paths import CONTROL_PREFIX
from sandbox.responses import control_error, empty_response, json_response
from sandbox.state import FaultResponse, JSONObject

control = Blueprint("control", __name__, url_prefix=CONTROL_PREFIX)


@control.get("/delivery")
def get_delivery() -> Response:
    return json_response(200, current_sandbox().delivery.switches().to_control())


@control.post("/delivery")
def set_delivery() -> Response:
    body = control_body()
    flags: dict[str, bool] = {}
    for name in ("enabled", "duplicate", "drop"):
        value = body.get(name)
        if value is not None and not isinstance(value, bool):
            return control_error(f"{name} must be a boolean")
        if value is not None:
            flags[name] = value
    delay = body.get("delay")
    if delay is not None and (not_number(delay) or delay < 0):
        return control_error("delay must be a number of seconds >= 0")
    fail = body.get("fail")
    if fail is not None and fail not in FAIL_MODES:
        return control_error(f"fail must be one of {', '.join(FAIL_MODES)}")
    switches = current_sandbox().delivery.configure(
        enabled=flags.get("enabled"),
        duplicate=flags.get("duplicate"),
        drop=flags.get("drop"),
        delay=None if delay is None else float(delay),
        fail=fail,
    )
    return json_response(200, switches.to_control())


@control.get("/faults")
def get_faults() -> Response:
    faults = [
        {"method": method, "path": path, "responses": [f.to_control() for f in queue]}
        for (method, path), queue in current_sandbox().state.pending_faults().items()
    ]
    return json_response(200, {"faults": faults})


@control.post("/faults")
def add_faults() -> Response:
    body = control_body()
    method, path, responses = body.get("method"), body.get("path"), body.get("responses")
    if not isinstance(method, str) or not method:
        return control_error("method must be an HTTP method")
    if not isinstance(path, str) or not path.startswith("/"):
        return control_error("path must be a request path starting with /")
    if not isinstance(responses, list) or not responses:
        return control_error("responses must be a non-empty array")
    try:
        faults = [_parse_fault(r) for r in responses]
    except ValueError as exc:
        return control_error(str(exc))
    queued = current_sandbox().state.add_faults(method, path, faults)
    return json_response(201, {"method": method.upper(), "path": path, "queued": queued})


@control.delete("/faults")
def clear_faults() -> Response:
    current_sandbox().state.clear_faults()
    return empty_response(204)


@control.post("/tokens/expire")
def expire_tokens() -> Response:
    current_sandbox().state.expire_tokens()
    return empty_response(204)


@control.get("/requests")
def get_requests() -> Response:
    received = current_sandbox().state.requests()
    return json_response(200, {"requests": [r.to_control() for r in received]})


@control.delete("/requests")
def clear_requests() -> Response:
    current_sandbox().state.clear_requests()
    return empty_response(204)


@control.get("/deliveries")
def get_deliveries() -> Response:
    attempts = current_sandbox().state.attempts()
    return json_response(200, {"deliveries": [a.to_control() for a in attempts]})


@control.get("/clock")
def get_clock() -> Response:
    return json_response(200, _clock_view(current_sandbox().clock))


@control.post("/clock")
def set_clock() -> Response:
    """Daily price curves, LPC schedule runs and eligibility windows the move makes due are
    sent before the answer; going back to real time sends none for the time skipped."""
    sandbox = current_sandbox()
    body = control_body()
    if body.get("real") is True:
        sandbox.use_real_time()
    elif "now" in body:
        frozen = body.get("frozen", False)
        if not isinstance(body["now"], str) or not isinstance(frozen, bool):
            return control_error("now must be an ISO-8601 timestamp, frozen a boolean")
        try:
            when = parse_timestamp(body["now"])
        except ValueError:
            return control_error("now must be an ISO-8601 timestamp with an offset")
        sandbox.set_clock(when, frozen=frozen)
    elif "advanceSeconds" in body:
        seconds = body["advanceSeconds"]
        if not_number(seconds):
            return control_error("advanceSeconds must be a number")
        sandbox.advance_clock(float(seconds))
    else:
        return control_error('give "now", "advanceSeconds" or "real": true')
    return json_response(200, _clock_view(sandbox.clock))


@control.post("/reset")
def reset() -> Response:
    current_sandbox().reset()
    return empty_response(204)


def _parse_fault(value: Any) -> FaultResponse:
    if not isinstance(value, dict):
        raise ValueError("each response must be an object")
    status = value.get("status")
    if status is not None and (
        isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599
    ):
        raise ValueError("status must be an HTTP status code")
    retry_after = value.get("retryAfter")
    if retry_after is not None:
        if not_number(retry_after) and not isinstance(retry_after, str):
            raise ValueError("retryAfter must be a string or a number of seconds")
        retry_after = str(retry_after)
    delay = value.get("delay", 0)
    if not_number(delay) or delay < 0:
        raise ValueError("delay must be a number of seconds >= 0")
    if status is None and delay == 0:
        raise ValueError("a response needs a status, a delay, or both")
    return FaultResponse(
        status=status, retry_after=retry_after, delay=float(delay), body=value.get("body")
    )


def _clock_view(clock: Clock) -> JSONObject:
    return {"now": spark_timestamp(clock.now()), "frozen": clock.is_frozen, "real": clock.is_real}
