"""`POST /reports` for an LPC event: the acknowledgement checked against the event's targets.

A `ResourceLPC` event takes `ResourceLPCAcknowledgement` payloads (`acknowledgedTargets` and
`declinedTargets` of `{meterPointId, locationId, resourceId}`), a `LocationLPC` event
`LocationLPCAcknowledgement` payloads (of `{locationId, meterPointId}`). Across the report's
payloads every target of the event must appear exactly once, acknowledged or declined; a
target the event does not name, one named twice, or one left out is a 400 naming them.
Energy reports after an LPC event (`EnergyUsage`, `LocationEnergyUsage`) are not checked by
this sandbox yet and are refused with a message saying so.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sandbox.state import Event

ACKNOWLEDGEMENTS = {
    "ResourceLPC": ("ResourceLPCAcknowledgement", ("meterPointId", "locationId", "resourceId")),
    "LocationLPC": ("LocationLPCAcknowledgement", ("locationId", "meterPointId")),
}
LPC_PAYLOAD_TYPES = frozenset(ACKNOWLEDGEMENTS)

Target = tuple[str, ...]


class AcknowledgementRejected(ValueError):
    pass


def check_acknowledgement(event: Event, payloads: list[Any]) -> None:
    """AcknowledgementRejected says why the payloads do not acknowledge `event`."""
    wanted_type, fields = ACKNOWLEDGEMENTS[event.payload_type]
    expected = {_key(t, fields) for t in event.payload.get("targets") or []}
    named: list[Target] = []
    for index, payload in enumerate(payloads):
        where = f"payloads[{index}]"
        if not isinstance(payload, dict) or payload.get("payloadType") != wanted_type:
            raise AcknowledgementRejected(
                f"{where}.payloadType must be {wanted_type} for a {event.payload_type} event "
                "(this sandbox does not check energy reports after an LPC event yet)."
            )
        for side in ("acknowledgedTargets", "declinedTargets"):
            items = payload.get(side)
            if not isinstance(items, list):
                raise AcknowledgementRejected(f"{where}.{side} must be an array.")
            for number, item in enumerate(items):
                if not isinstance(item, dict) or not all(
                    isinstance(item.get(f), str) and item.get(f) for f in fields
                ):
                    raise AcknowledgementRejected(
                        f"{where}.{side}[{number}] needs string {', '.join(fields)}."
                    )
                named.append(_key(item, fields))
    unknown = sorted({t for t in named if t not in expected})
    if unknown:
        raise AcknowledgementRejected(
            f"Not targets of event {event.event_id}: {_names(unknown, fields)}."
        )
    twice = sorted(t for t, n in Counter(named).items() if n > 1)
    if twice:
        raise AcknowledgementRejected(
            f"Targets acknowledged or declined more than once: {_names(twice, fields)}."
        )
    missing = sorted(expected - set(named))
    if missing:
        raise AcknowledgementRejected(
            f"Targets neither acknowledged nor declined: {_names(missing, fields)}."
        )


def _key(item: Any, fields: tuple[str, ...]) -> Target:
    return tuple(str(item.get(f)) for f in fields)


def _names(targets: list[Target], fields: tuple[str, ...]) -> str:
    return "; ".join(", ".join(f"{f}={v}" for f, v in zip(fields, t, strict=True)) for t in targets)
