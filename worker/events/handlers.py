"""The table of contents of the worker: which handler runs for which `notificationType`.

A handler runs once per event, inside the transaction that stored the event, so its effects
commit together with the inbox row or not at all. It returns follow-up actions (typically
enqueueing a task) that run only after that commit: a task never starts before the data it
needs is visible.

Types without a handler (the LPC types, `Unknown`, anything new) are stored as `unhandled`
and acknowledged; `spark-partner events replay ID` processes them once a handler exists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.db import Connection
from worker.curves.handler import handle_price_curve_created
from worker.eligibility.handler import handle_user_eligibility_updated


@dataclass(frozen=True)
class StoredEvent:
    event_id: str
    notification_type: str
    payload_type: str | None
    created_at: datetime | None
    payload: dict[str, Any]


AfterCommit = Callable[[], None]
Handler = Callable[[Connection, StoredEvent], list[AfterCommit]]

# Filled in by the eligibility and price-curve work:
#   "UserEligibilityUpdated": worker.eligibility.handler...
#   "PriceCurveCreated": worker.curves.handler...
HANDLERS: dict[str, Handler] = {
    "UserEligibilityUpdated": handle_user_eligibility_updated,
    "PriceCurveCreated": handle_price_curve_created,
}


def handler_for(notification_type: str) -> Handler | None:
    return HANDLERS.get(notification_type)
