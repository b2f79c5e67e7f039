"""`/_sandbox/reports`: the reports the sandbox accepted, and the faults of `POST /reports`
(not part of Spark, no authentication):

- `GET /_sandbox/reports[?eventId=...]`: `{"reports": [{"id", "eventId", "createdAt",
  "kind", "eventCreatedAt", "secondsAfterEvent", "answerLost", "body", "rawBody"}],
  "countsByEventId": {eventId: n}, "lostAnswers": n}`, reports in order of arrival with
  their bodies exactly as sent; `createdAt` is the arrival by the sandbox clock, `kind`
  `energy` or `acknowledgement` (an LPC event's), `secondsAfterEvent` the arrival minus the
  event's creation. Counts and lost answers over all reports. Per LPC event, see
  `GET /_sandbox/lpc/events`.
- `DELETE /_sandbox/reports`: forget them.
- `GET|POST|DELETE /_sandbox/reports/faults`: the random faults (shape in
  `sandbox.report_faults`); a POST replaces them all, a DELETE switches them off. The answer
  also says how many of each kind were drawn (`drawn`).
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from sandbox.core import current_sandbox
from sandbox.parsing import control_body
from sandbox.paths import CONTROL_PREFIX
from sandbox.report_faults import parse_report_faults
from sandbox.responses import control_error, empty_response, json_response
from sandbox.state import JSONObject

control_reports = Blueprint("control_reports", __name__, url_prefix=CONTROL_PREFIX)


@control_reports.get("/reports")
def get_reports() -> Response:
    book = current_sandbox().reports
    found = book.reports(request.args.get("eventId") or None)
    body = {
        "reports": [report.to_control() for report in found],
        "countsByEventId": book.counts_by_event(),
        "lostAnswers": book.lost_answers,
    }
    return json_response(200, body)


@control_reports.delete("/reports")
def clear_reports() -> Response:
    current_sandbox().reports.reset()
    return empty_response(204)


@control_reports.get("/reports/faults")
def get_report_faults() -> Response:
    return json_response(200, _faults_view())


@control_reports.post("/reports/faults")
def set_report_faults() -> Response:
    try:
        settings = parse_report_faults(control_body())
    except ValueError as exc:
        return control_error(str(exc))
    current_sandbox().report_faults.configure(settings)
    return json_response(200, _faults_view())


@control_reports.delete("/reports/faults")
def clear_report_faults() -> Response:
    current_sandbox().report_faults.reset()
    return empty_response(204)


def _faults_view() -> JSONObject:
    faults = current_sandbox().report_faults
    return {**faults.settings().to_control(), "drawn": faults.drawn()}
