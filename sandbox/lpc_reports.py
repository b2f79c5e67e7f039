"""`POST /reports` for an LPC event: the acknowledgement, or the energy used, checked against
the event's targets and periods.

A report on an LPC event is either its acknowledgement or its energy report, never both in
one body (our model: Spark documents them as two reports, sent at different times).

Acknowledgement. A `ResourceLPC` event takes `ResourceLPCAcknowledgement` payloads
(`acknowledgedTargets` and `declinedTargets` of `{meterPointId, locationId, resourceId}`), a
`LocationLPC` event `LocationLPCAcknowledgement` payloads (of `{locationId, meterPointId}`).
Across the report's payloads every target of the event must appear exactly once, acknowledged
or declined; a target the event does not name, one named twice, or one left out is a 400
naming them.

Energy. A `ResourceLPC` event takes `EnergyUsage` payloads, a `LocationLPC` event
`LocationEnergyUsage` payloads (`locationId`, `meterPointId`, `resolution`, `points`). Each
payload names one target of the event (a resource at its location, optionally with its
`meterPointId`, which must then be the event's; a location with its meter point id), at most
once per report; a location, meter point or resource the event does not name is a 400 naming
it. The `resolution` is that target's in the event (compared as a duration), and every point's
timestamp is the start of one of that target's periods (compared as instants), once, with a
finite `kiloWattHours` >= 0. Not every target or period has to be reported (Spark: report the
periods you reacted to). Deadline as for price curves: the end of the local month of the
event's first period, plus the grace. Reporting a period before it ended is not refused
(Spark does not say); the control surface shows it (`beforeEventEnd`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.clock import parse_timestamp
from sandbox.report_parts import (
    ReportRejected,
    check_in_time,
    check_resolution,
    energy_points,
    parse_time_span,
)
from sandbox.state import Event

ACKNOWLEDGEMENTS = {
    "ResourceLPC": ("ResourceLPCAcknowledgement", ("meterPointId", "locationId", "resourceId")),
    "LocationLPC": ("LocationLPCAcknowledgement", ("locationId", "meterPointId")),
}
ENERGY_REPORTS = {"ResourceLPC": "EnergyUsage", "LocationLPC": "LocationEnergyUsage"}
LPC_PAYLOAD_TYPES = frozenset(ACKNOWLEDGEMENTS)
ACKNOWLEDGEMENT = "acknowledgement"
ENERGY = "energy"

Target = tuple[str, ...]


@dataclass(frozen=True)
class LpcTarget:
    resolution: timedelta | None
    # Period starts (UTC).
    periods: frozenset[datetime]


@dataclass(frozen=True)
class LpcEvent:
    """The parts of a stored ResourceLPC or LocationLPC event that its reports depend on."""

    event_id: str
    payload_type: str
    # The target's ids in ACKNOWLEDGEMENTS' field order -> its resolution and periods.
    targets: dict[Target, LpcTarget]
    first_start: datetime | None
    end: datetime | None

    @classmethod
    def of(cls, event: Event) -> LpcEvent:
        fields = ACKNOWLEDGEMENTS[event.payload_type][1]
        targets: dict[Target, LpcTarget] = {}
        starts: list[datetime] = []
        ends: list[datetime] = []
        for item in event.payload.get("targets") or []:
            try:
                resolution: timedelta | None = parse_time_span(str(item.get("resolution")))
            except ValueError:
                resolution = None
            periods = frozenset(parse_timestamp(p["timestamp"]) for p in item.get("points") or [])
            targets[_key(item, fields)] = LpcTarget(resolution, periods)
            starts += periods
            ends += (start + (resolution or timedelta(0)) for start in periods)
        return cls(
            event_id=event.event_id,
            payload_type=event.payload_type,
            targets=targets,
            first_start=min(starts, default=None),
            end=max(ends, default=None),
        )

    def month(self, created_at: datetime, timezone: ZoneInfo) -> date:
        """The local month whose end (plus grace) is the energy report's deadline."""
        first = self.first_start or created_at
        return first.astimezone(timezone).date().replace(day=1)


def report_kind(event: Event, payloads: list[Any]) -> str:
    """ACKNOWLEDGEMENT or ENERGY: what the report's payloads are for this LPC event;
    ReportRejected when they are neither, or a mix."""
    ack_type = ACKNOWLEDGEMENTS[event.payload_type][0]
    energy_type = ENERGY_REPORTS[event.payload_type]
    kinds = {ack_type: ACKNOWLEDGEMENT, energy_type: ENERGY}
    found = []
    for index, payload in enumerate(payloads):
        payload_type = payload.get("payloadType") if isinstance(payload, dict) else None
        if payload_type not in kinds:
            raise ReportRejected(
                f"payloads[{index}].payloadType must be {ack_type} or {energy_type} for a "
                f"{event.payload_type} event, got {payload_type!r}."
            )
        found.append(kinds[payload_type])
    if len(set(found)) > 1:
        raise ReportRejected(
            f"A report on a {event.payload_type} event is its acknowledgement ({ack_type}) or "
            f"its energy report ({energy_type}), not both: send them as two reports."
        )
    return found[0]


def check_lpc_report(
    event: Event,
    payloads: list[Any],
    *,
    now: datetime,
    timezone: ZoneInfo,
    grace_seconds: float,
) -> str:
    """What an acceptable report on an LPC event is (ACKNOWLEDGEMENT or ENERGY);
    ReportRejected says why it is not acceptable."""
    kind = report_kind(event, payloads)
    lpc = LpcEvent.of(event)
    if kind == ACKNOWLEDGEMENT:
        check_acknowledgement(lpc, payloads)
        return kind
    check_in_time(lpc.event_id, lpc.month(event.created_at, timezone), now, timezone, grace_seconds)
    if lpc.payload_type == "LocationLPC":
        named = [_location_usage(lpc, p, n) for n, p in enumerate(payloads)]
    else:
        named = [_resource_usage(lpc, p, n) for n, p in enumerate(payloads)]
    twice = sorted(t for t, n in Counter(named).items() if n > 1)
    if twice:
        fields = ACKNOWLEDGEMENTS[lpc.payload_type][1]
        raise ReportRejected(
            f"Targets reported more than once: {_names(twice, fields)}; "
            "send one payload per target."
        )
    return kind


# Acknowledgements


def check_acknowledgement(event: LpcEvent, payloads: list[Any]) -> None:
    fields = ACKNOWLEDGEMENTS[event.payload_type][1]
    named: list[Target] = []
    for index, payload in enumerate(payloads):
        where = f"payloads[{index}]"
        for side in ("acknowledgedTargets", "declinedTargets"):
            items = payload.get(side)
            if not isinstance(items, list):
                raise ReportRejected(f"{where}.{side} must be an array.")
            for number, item in enumerate(items):
                if not isinstance(item, dict) or not all(
                    isinstance(item.get(f), str) and item.get(f) for f in fields
                ):
                    raise ReportRejected(
                        f"{where}.{side}[{number}] needs string {', '.join(fields)}."
                    )
                named.append(_key(item, fields))
    unknown = sorted({t for t in named if t not in event.targets})
    if unknown:
        raise ReportRejected(f"Not targets of event {event.event_id}: {_names(unknown, fields)}.")
    twice = sorted(t for t, n in Counter(named).items() if n > 1)
    if twice:
        raise ReportRejected(
            f"Targets acknowledged or declined more than once: {_names(twice, fields)}."
        )
    missing = sorted(set(event.targets) - set(named))
    if missing:
        raise ReportRejected(
            f"Targets neither acknowledged nor declined: {_names(missing, fields)}."
        )


# Energy reports


def _location_usage(event: LpcEvent, payload: dict[str, Any], index: int) -> Target:
    """A LocationEnergyUsage payload checked; its (locationId, meterPointId)."""
    where = f"payloads[{index}]"
    location_id = _required_string(payload, "locationId", where)
    meter_point_id = _required_string(payload, "meterPointId", where)
    meters = sorted(mpid for loc, mpid in event.targets if loc == location_id)
    if not meters:
        raise ReportRejected(
            f"{where}: location {location_id} is not a target of event {event.event_id}."
        )
    if meter_point_id not in meters:
        raise ReportRejected(
            f"{where}: meterPointId {meter_point_id} is not a meter point of location "
            f"{location_id} in event {event.event_id} (it has {', '.join(meters)})."
        )
    key = (location_id, meter_point_id)
    _check_target_periods(
        event, key, payload, where, f"location {location_id}, meter point {meter_point_id}"
    )
    return key


def _resource_usage(event: LpcEvent, payload: dict[str, Any], index: int) -> Target:
    """An EnergyUsage payload on a resource LPC event checked; its target's key
    (meterPointId, locationId, resourceId)."""
    where = f"payloads[{index}]"
    resource_id = _required_string(payload, "resourceId", where)
    location_id = _optional_string(payload, "locationId", where)
    meter_point_id = _optional_string(payload, "meterPointId", where)
    found = sorted(key for key in event.targets if key[2] == resource_id)
    if not found:
        raise ReportRejected(
            f"{where}: resource {resource_id} is not a target of event {event.event_id}."
        )
    if location_id is not None:
        found = [key for key in found if key[1] == location_id]
        if not found:
            raise ReportRejected(
                f"{where}: resource {resource_id} at location {location_id} is not a target "
                f"of event {event.event_id}."
            )
    if meter_point_id is not None:
        meters = sorted({key[0] for key in found})
        found = [key for key in found if key[0] == meter_point_id]
        if not found:
            raise ReportRejected(
                f"{where}: meterPointId {meter_point_id} is not the meter point of resource "
                f"{resource_id} in event {event.event_id} ({', '.join(meters)})."
            )
    if len(found) > 1:
        raise ReportRejected(
            f"{where}: event {event.event_id} targets resource {resource_id} more than once; "
            "name its locationId and meterPointId."
        )
    key = found[0]
    _check_target_periods(event, key, payload, where, f"resource {resource_id}")
    return key


def _check_target_periods(
    event: LpcEvent, key: Target, payload: dict[str, Any], where: str, what: str
) -> None:
    target = event.targets[key]
    check_resolution(payload.get("resolution"), target.resolution, where)
    energy_points(
        payload,
        target.periods,
        where,
        outside=f"the periods of {what} in event {event.event_id}",
        allow_curve_points=payload.get("payloadType") == "EnergyUsage",
    )


def _required_string(payload: dict[str, Any], name: str, where: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise ReportRejected(f"{where}.{name} is required.")
    return value


def _optional_string(payload: dict[str, Any], name: str, where: str) -> str | None:
    value = payload.get(name)
    if value is not None and not isinstance(value, str):
        raise ReportRejected(f"{where}.{name} must be a string.")
    return value or None


def _key(item: Any, fields: tuple[str, ...]) -> Target:
    return tuple(str(item.get(f)) for f in fields)


def _names(targets: list[Target], fields: tuple[str, ...]) -> str:
    return "; ".join(", ".join(f"{f}={v}" for f, v in zip(fields, t, strict=True)) for t in targets)
