"""The table of contents of the worker: which handler runs for which `notificationType`.

A handler runs once per event, inside the transaction that stored the event, so its effects
commit together with the inbox row or not at all. It returns the follow-up work (the tasks
to send) as data; the inbox sends it only after that commit.

Types without a handler (`Unknown`, anything new) are stored as `unhandled`
and acknowledged; `spark-partner events replay ID` processes them once a handler exists.
"""

from __future__ import annotations

from worker.curves.handler import handle_price_curve_created
from worker.eligibility.handler import handle_user_eligibility_updated
from worker.events.handling import Handler
from worker.lpc.location_handler import handle_location_lpc_requested
from worker.lpc.reservation_handler import handle_lpc_reservation_created
from worker.lpc.resource_handler import handle_resource_lpc_requested

HANDLERS: dict[str, Handler] = {
    "UserEligibilityUpdated": handle_user_eligibility_updated,
    "PriceCurveCreated": handle_price_curve_created,
    "ResourceLPCRequested": handle_resource_lpc_requested,
    "LocationLPCRequested": handle_location_lpc_requested,
    # Stored and shown only: Spark documents no meaning for it.
    "LPCReservationCreated": handle_lpc_reservation_created,
}


def handler_for(notification_type: str) -> Handler | None:
    return HANDLERS.get(notification_type)
