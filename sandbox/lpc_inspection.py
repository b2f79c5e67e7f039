"""`GET /_sandbox/lpc/events`: every resource and location LPC event with when it was made,
delivered, acknowledged and reported, by the sandbox clock, so a test can assert "acknowledged
within N seconds" without timing anything itself.

Per event: `createdAt` (its emission), `source` (`schedule` or `simulation`), `timing`
(`justInTime` when its first period had begun at emission, else `ahead`), `firstPeriodStart`,
`end` (the end of its last period), its `targets` (ids only), `firstDeliveredAt` (the first
delivery a webhook answered with 2xx, or null), its `acknowledgements` and `energyReports`
in order of arrival, each with `receivedAt`, `secondsAfterEvent` (arrival minus emission),
`secondsAfterDelivery` (arrival minus first delivery, or null) and `answerLost`; an
acknowledgement also lists `acknowledged` and `declined` targets, an energy report its
`targets` and `beforeEventEnd`. `acknowledgedAfterSeconds` is the first acknowledgement's
`secondsAfterEvent` (null before one came).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sandbox.clock import spark_timestamp
from sandbox.lpc_reports import ACKNOWLEDGEMENT, ACKNOWLEDGEMENTS, LPC_PAYLOAD_TYPES, LpcEvent
from sandbox.reports import Report
from sandbox.state import DeliveryAttempt, Event, JSONObject


def lpc_events_view(
    events: Iterable[Event],
    reports: Iterable[Report],
    attempts: Iterable[DeliveryAttempt],
    scheduled: set[str],
) -> list[JSONObject]:
    """The LPC events among `events` (given oldest first), in order of creation, with their
    reports and deliveries; `scheduled` holds the ids of the events the LPC schedule sent."""
    lpc = [e for e in events if e.payload_type in LPC_PAYLOAD_TYPES]
    wanted = {e.event_id for e in lpc}
    by_event: dict[str, list[Report]] = {}
    for report in reports:
        if report.event_id in wanted:
            by_event.setdefault(report.event_id, []).append(report)
    delivered: dict[str, datetime] = {}
    for attempt in attempts:
        if attempt.event_id in wanted and attempt.succeeded:
            first = delivered.get(attempt.event_id)
            delivered[attempt.event_id] = min(first or attempt.sent_at, attempt.sent_at)
    return [
        _event_view(
            event,
            by_event.get(event.event_id, []),
            delivered.get(event.event_id),
            event.event_id in scheduled,
        )
        for event in sorted(lpc, key=lambda e: e.created_at)
    ]


def _event_view(
    event: Event, reports: list[Report], delivered_at: datetime | None, scheduled: bool
) -> JSONObject:
    lpc = LpcEvent.of(event)
    fields = ACKNOWLEDGEMENTS[event.payload_type][1]
    acknowledgements = []
    energy = []
    for report in reports:
        view: JSONObject = {
            "reportId": report.report_id,
            "receivedAt": spark_timestamp(report.received_at),
            "secondsAfterEvent": report.seconds_after_event,
            "secondsAfterDelivery": (
                None
                if delivered_at is None
                else (report.received_at - delivered_at).total_seconds()
            ),
            "answerLost": report.answer_lost,
        }
        payloads = report.body["payloads"]
        if report.kind == ACKNOWLEDGEMENT:
            view["acknowledged"] = _named(payloads, "acknowledgedTargets", fields)
            view["declined"] = _named(payloads, "declinedTargets", fields)
            acknowledgements.append(view)
        else:
            view["targets"] = [_ids(p, fields) for p in payloads]
            view["beforeEventEnd"] = lpc.end is not None and report.received_at < lpc.end
            energy.append(view)
    begun = lpc.first_start is not None and lpc.first_start <= event.created_at
    return {
        "eventId": event.event_id,
        "payloadType": event.payload_type,
        "createdAt": spark_timestamp(event.created_at),
        "source": "schedule" if scheduled else "simulation",
        "timing": "justInTime" if begun else "ahead",
        "firstPeriodStart": _timestamp(lpc.first_start),
        "end": _timestamp(lpc.end),
        "targets": [dict(zip(fields, key, strict=True)) for key in lpc.targets],
        "firstDeliveredAt": _timestamp(delivered_at),
        "acknowledgements": acknowledgements,
        "acknowledgedAfterSeconds": (
            acknowledgements[0]["secondsAfterEvent"] if acknowledgements else None
        ),
        "energyReports": energy,
    }


def _named(payloads: list[Any], side: str, fields: tuple[str, ...]) -> list[JSONObject]:
    return [_ids(item, fields) for payload in payloads for item in payload.get(side) or []]


def _ids(item: dict[str, Any], fields: tuple[str, ...]) -> JSONObject:
    return {f: item.get(f) for f in fields if f in item}


def _timestamp(when: datetime | None) -> str | None:
    return None if when is None else spark_timestamp(when)
