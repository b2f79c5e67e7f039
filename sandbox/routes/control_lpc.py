"""`/_sandbox/lpc/`: the LPC schedule and what became of each LPC event (not part of Spark,
no authentication):

- `GET /_sandbox/lpc/schedule`: the switches (`sandbox.lpc_schedule`), the run times
  (`runs`) and every event the schedule sent (`{"eventId", "runAt", "sentAt", "kind",
  "timing", "resolution", "firstPeriodStart", "target", "periods"}`).
- `POST /_sandbox/lpc/schedule`: `{"enabled": bool, "everySeconds": n, "eventsPerRun": n,
  "justInTimeShare": 0..1, "aheadHours": n, "resolutions": ["02:00:00", ...],
  "kinds": ["resources", "locations"], "seed": n}`, each optional; the view after the change.
- `POST /_sandbox/lpc/schedule/run`: one run at the current sandbox time, enabled or not;
  `{"events": [...]}` sent (GetEventResponse).
- `GET /_sandbox/lpc/events[?eventId=...]`: `{"events": [...]}`, every resource and location
  LPC event with its deliveries, acknowledgements and energy reports (`sandbox.lpc_inspection`).
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from sandbox.clock import spark_timestamp
from sandbox.core import current_sandbox
from sandbox.lpc_inspection import lpc_events_view
from sandbox.parsing import control_body
from sandbox.paths import CONTROL_PREFIX
from sandbox.responses import control_error, json_response
from sandbox.state import JSONObject

control_lpc = Blueprint("control_lpc", __name__, url_prefix=CONTROL_PREFIX)


@control_lpc.get("/lpc/schedule")
def get_schedule() -> Response:
    return json_response(200, _schedule_view())


@control_lpc.post("/lpc/schedule")
def set_schedule() -> Response:
    try:
        current_sandbox().lpc_schedule.configure(control_body())
    except ValueError as exc:
        return control_error(str(exc))
    return json_response(200, _schedule_view())


@control_lpc.post("/lpc/schedule/run")
def run_schedule() -> Response:
    sent = current_sandbox().lpc_schedule.run_now()
    return json_response(200, {"events": [event.to_api() for event in sent]})


@control_lpc.get("/lpc/events")
def get_lpc_events() -> Response:
    sandbox = current_sandbox()
    wanted = request.args.get("eventId") or None
    events, _ = sandbox.state.events_newest_first(0, sandbox.state.event_count())
    if wanted is not None:
        events = [e for e in events if e.event_id == wanted]
    view = lpc_events_view(
        events[::-1],
        sandbox.reports.reports(wanted),
        sandbox.state.attempts(),
        {scheduled.event_id for scheduled in sandbox.lpc_schedule.sent()},
    )
    return json_response(200, {"events": view})


def _schedule_view() -> JSONObject:
    schedule = current_sandbox().lpc_schedule
    return {
        **schedule.switches().to_control(),
        "runs": [spark_timestamp(run) for run in schedule.runs()],
        "events": [scheduled.to_control() for scheduled in schedule.sent()],
    }
