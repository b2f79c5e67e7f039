"""`/_sandbox/curves/`: the daily price curves (not part of Spark, no authentication):

- `GET /_sandbox/curves/daily`: the switches, the days run and every daily curve sent
  (`{"eventId", "day", "neighbourhoodId", "priceArea", "targets", "changeDue",
  "changedEventId", ...}`).
- `POST /_sandbox/curves/daily`: `{"enabled": bool, "changedCurveProbability": 0..1,
  "hour": 0..23, "fullDay": bool}`, each optional; the switches after the change.
- `POST /_sandbox/curves/run`: run the current sandbox day now (once per day: a second call,
  or the clock passing the hour later, sends nothing); `{"events": [...]}` sent.
"""

from __future__ import annotations

from flask import Blueprint, Response

from sandbox.core import current_sandbox
from sandbox.parsing import control_body, not_number
from sandbox.paths import CONTROL_PREFIX
from sandbox.responses import control_error, json_response
from sandbox.state import JSONObject

control_curves = Blueprint("control_curves", __name__, url_prefix=CONTROL_PREFIX)


@control_curves.get("/curves/daily")
def get_daily_curves() -> Response:
    return json_response(200, _daily_view())


@control_curves.post("/curves/daily")
def set_daily_curves() -> Response:
    body = control_body()
    flags: dict[str, bool] = {}
    for name in ("enabled", "fullDay"):
        value = body.get(name)
        if value is not None and not isinstance(value, bool):
            return control_error(f"{name} must be a boolean")
        if value is not None:
            flags[name] = value
    probability = body.get("changedCurveProbability")
    if probability is not None and (not_number(probability) or not 0 <= probability <= 1):
        return control_error("changedCurveProbability must be a number from 0 to 1")
    hour = body.get("hour")
    if hour is not None and (
        isinstance(hour, bool) or not isinstance(hour, int) or not 0 <= hour <= 23
    ):
        return control_error("hour must be a whole hour from 0 to 23")
    current_sandbox().curves.configure(
        enabled=flags.get("enabled"),
        changed_curve_probability=None if probability is None else float(probability),
        hour=hour,
        full_day=flags.get("fullDay"),
    )
    return json_response(200, _daily_view())


@control_curves.post("/curves/run")
def run_daily_curves() -> Response:
    sent = current_sandbox().curves.run_today()
    return json_response(200, {"events": [event.to_api() for event in sent]})


def _daily_view() -> JSONObject:
    curves = current_sandbox().curves
    return {
        **curves.switches().to_control(),
        "daysRun": [day.isoformat() for day in curves.days_run()],
        "curves": [curve.to_control() for curve in curves.curves()],
    }
