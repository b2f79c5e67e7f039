"""`POST /reports`: energy-usage reports answering price curves (rules in `sandbox.reports`),
with the random faults of `sandbox.report_faults` when they are switched on.

Faults are drawn after authentication: a request without a valid token gets its 401 as usual.
"""

from __future__ import annotations

import socket

from flask import Blueprint, Response, request

from sandbox.core import current_sandbox
from sandbox.parsing import read_json
from sandbox.paths import API_PREFIX
from sandbox.report_faults import FaultKind
from sandbox.reports import ReportRejected
from sandbox.responses import bad_string, empty_response, json_response, string_response

reports = Blueprint("reports", __name__, url_prefix=API_PREFIX)


@reports.post("/reports")
def post_report() -> Response:
    sandbox = current_sandbox()
    faults = sandbox.report_faults
    fault, settings = faults.draw()
    if fault is FaultKind.STATUS_500:
        return empty_response(500)
    if fault is FaultKind.STATUS_429:
        response = empty_response(429)
        response.headers["Retry-After"] = settings.retry_after
        return response
    if fault is FaultKind.SLOW:
        faults.wait(settings.slow_seconds)
    body = read_json(required=True, bad=bad_string)
    try:
        report = sandbox.accept_report(body, request.get_data(as_text=True))
    except ReportRejected as exc:
        return string_response(400, exc.message)
    answer = json_response(200, report.to_api())
    if fault is FaultKind.LOST_ANSWER:
        sandbox.reports.mark_answer_lost(report.report_id)
        connection = request.environ.get("werkzeug.socket")
        if settings.lost_answer_mode == "drop" and isinstance(connection, socket.socket):
            # The server's write of the answer then fails, which it takes for a client that
            # went away; the client sees its connection closed without an answer.
            connection.shutdown(socket.SHUT_RDWR)
        else:
            faults.wait(settings.lost_answer_seconds)
    return answer
