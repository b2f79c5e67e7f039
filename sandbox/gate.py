"""What every request to Spark's paths passes first: the request log, queued faults, then the
bearer-token check; and how errors outside the views are answered.

The control surface under `/_sandbox/` skips all of it.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from flask import Response, request
from werkzeug.exceptions import HTTPException

from sandbox.core import current_sandbox
from sandbox.paths import API_PREFIX, CONTROL_PREFIX, SWAGGER_PATH
from sandbox.responses import Reject, empty_response, json_response
from sandbox.state import FaultResponse, ReceivedRequest, SandboxState

REDACTED = "[redacted]"


def before_request() -> Response | None:
    path = request.path
    if path.startswith(CONTROL_PREFIX + "/"):
        return None
    sandbox = current_sandbox()
    state = sandbox.state
    state.log_request(_received_request(sandbox.clock.now()))
    fault = state.next_fault(request.method, path)
    if fault is not None:
        if fault.delay > 0:
            time.sleep(fault.delay)
        if fault.status is not None:
            return _fault_response(fault)
    if path.startswith(API_PREFIX + "/") and path != SWAGGER_PATH:
        return _check_bearer(state)
    return None


def rejected(exc: Reject) -> Response:
    return exc.response


def http_error(exc: HTTPException) -> Response:
    # Spark answers unknown routes and methods without a body.
    status = exc.code or 500
    if request.path.startswith(CONTROL_PREFIX + "/"):
        return json_response(status, {"error": exc.description})
    return empty_response(status)


def _received_request(now: datetime) -> ReceivedRequest:
    body = request.get_json(silent=True) if request.is_json else None
    form = None
    if request.mimetype == "application/x-www-form-urlencoded":
        # Keep what helps debugging a token request; the client secret stays out.
        form = {k: v for k, v in request.form.items() if k != "client_secret"}
    return ReceivedRequest(
        method=request.method,
        path=request.path,
        query=request.args.to_dict(flat=True),
        json=_redact(body),
        form=form,
        content_type=request.content_type,
        received_at=now,
    )


def _redact(body: Any) -> Any:
    if isinstance(body, dict) and body.get("webhookSecret") is not None:
        return {**body, "webhookSecret": REDACTED}
    return body


def _fault_response(fault: FaultResponse) -> Response:
    status = fault.status or 500
    response = empty_response(status) if fault.body is None else json_response(status, fault.body)
    if fault.retry_after is not None:
        response.headers["Retry-After"] = fault.retry_after
    return response


def _check_bearer(state: SandboxState) -> Response | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        response = empty_response(401)
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    if not state.token_is_valid(token):
        response = empty_response(401)
        response.headers["WWW-Authenticate"] = (
            'Bearer error="invalid_token", error_description="The token is expired or unknown"'
        )
        return response
    return None
