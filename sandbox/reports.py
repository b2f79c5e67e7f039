"""`POST /reports`: checking an energy-usage report against Spark's rules, and the reports kept.

A report (`PostReportRequest`) answers one `PriceCurve` event. The sandbox accepts it only when:

- `eventId` names an event the sandbox sent, and that event is a price curve;
- `payloads` holds `EnergyUsage` payloads (the only report Spark officially supports), each
  with a `resourceId`, the `locationId` (may be left out when the event targets the resource at
  one location only), an optional `meterPointId`, `resolution` and either `points` or the
  deprecated `curvePoints` (not both);
- each (resourceId, locationId) pair is one of the event's targets, at most once per report;
- `resolution` is the event's (compared as a duration, so "01:00:00" is "1:00:00");
- every point's timestamp is one of the event's point timestamps (compared as instants, so
  `Z` and `+00:00` or the number of fraction digits do not matter), once per payload;
- every `kiloWattHours` is a finite number >= 0;
- it arrives (sandbox clock) before the deadline: the end of the event's month, in the
  sandbox's time zone, plus the grace. The event's month is the local month of its first
  point (of its creation time when it has none).

Beyond the documented rules, the sandbox refuses (400, naming the resource) a payload whose
resource or location belonged to a user deleted since, and a payload whose `meterPointId` is
not one of its location's meter point ids (when the location has any). This is our model of
Spark, not documented Spark behaviour: Spark's compensation feedback has a problem type for a
mismatched meter (`CompensationMpidDoesNotMatchLocation`), which suggests it may accept such
a payload and block its compensation instead.

A report on an LPC event (its acknowledgement, or its `EnergyUsage` / `LocationEnergyUsage`
energy report) is checked by `sandbox.lpc_reports` instead.

Anything else is a 400 with a message saying what is wrong. A second report for the same
event is accepted and kept beside the first (both are listed and counted); compensation uses
the latest one per event, resource and location.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.clock import parse_timestamp, spark_timestamp
from sandbox.directory import UserDirectory
from sandbox.lpc_reports import ENERGY, LPC_PAYLOAD_TYPES, check_lpc_report
from sandbox.report_parts import (
    ReportRejected,
    UsagePoint,
    check_in_time,
    check_resolution,
    energy_points,
    parse_time_span,
)
from sandbox.state import Event, JSONObject

__all__ = ["ReportRejected", "UsagePoint"]

ENERGY_USAGE = "EnergyUsage"


# What a report is checked against


@dataclass(frozen=True)
class PriceCurveEvent:
    """The parts of a stored PriceCurve event that reports and compensation depend on."""

    event_id: str
    targets: tuple[tuple[str, str], ...]
    # Point start (UTC) -> delta, in `currency` per `energy_unit`.
    deltas: dict[datetime, float]
    resolution: timedelta | None
    energy_unit: str
    currency: str | None
    # The first day of the event's local month.
    month: date

    @classmethod
    def of(cls, event: Event, timezone: ZoneInfo) -> PriceCurveEvent:
        payload = event.payload
        curve = payload.get("priceCurveDelta") or {}
        deltas = {parse_timestamp(p["timestamp"]): float(p["price"]) for p in curve["points"]}
        first = min(deltas, default=event.created_at)
        resolution = curve.get("resolution")
        return cls(
            event_id=event.event_id,
            targets=tuple((t["resourceId"], t["locationId"]) for t in payload["targets"]),
            deltas=deltas,
            resolution=None if resolution is None else parse_time_span(resolution),
            energy_unit=curve.get("energyUnit") or "kWh",
            currency=curve.get("currency"),
            month=first.astimezone(timezone).date().replace(day=1),
        )

    def delta_per_kwh(self, at: datetime) -> float:
        delta = self.deltas[at]
        return delta / 1000 if self.energy_unit == "MWh" else delta


# Accepted reports


@dataclass(frozen=True)
class EnergyUsage:
    """One EnergyUsage payload as accepted: its target resolved, its points parsed."""

    resource_id: str
    location_id: str
    meter_point_id: str | None
    points: tuple[UsagePoint, ...]


@dataclass(frozen=True)
class Report:
    report_id: str
    event_id: str
    received_at: datetime
    # The body exactly as sent, parsed and raw.
    body: Any
    raw_body: str
    usages: tuple[EnergyUsage, ...]
    # ACKNOWLEDGEMENT or ENERGY, and when (sandbox clock) the event was made, so the control
    # surface can say how long after the event a report came.
    kind: str
    event_created_at: datetime
    # Stored, but the sandbox's lost-answer fault kept the answer from the client.
    answer_lost: bool = False

    @property
    def seconds_after_event(self) -> float:
        return (self.received_at - self.event_created_at).total_seconds()

    def to_api(self) -> JSONObject:
        """GetReportResponse."""
        return {
            "id": self.report_id,
            "eventId": self.event_id,
            "createdAt": spark_timestamp(self.received_at),
        }

    def to_control(self) -> JSONObject:
        return {
            **self.to_api(),
            "kind": self.kind,
            "eventCreatedAt": spark_timestamp(self.event_created_at),
            "secondsAfterEvent": self.seconds_after_event,
            "answerLost": self.answer_lost,
            "body": self.body,
            "rawBody": self.raw_body,
        }


class ReportBook:
    """The accepted reports, in order of arrival. Safe to use from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reports: list[Report] = []
        self._lost = 0

    def reset(self) -> None:
        with self._lock:
            self._reports = []
            self._lost = 0

    def add(self, report: Report) -> None:
        with self._lock:
            self._reports.append(report)

    def mark_answer_lost(self, report_id: str) -> None:
        with self._lock:
            for index, report in enumerate(self._reports):
                if report.report_id == report_id:
                    self._reports[index] = replace(report, answer_lost=True)
                    self._lost += 1
                    return

    def reports(self, event_id: str | None = None) -> list[Report]:
        with self._lock:
            found = list(self._reports)
        return found if event_id is None else [r for r in found if r.event_id == event_id]

    def counts_by_event(self) -> dict[str, int]:
        with self._lock:
            return dict(Counter(report.event_id for report in self._reports))

    @property
    def lost_answers(self) -> int:
        with self._lock:
            return self._lost


# Checking a report


@dataclass(frozen=True)
class CheckedReport:
    event: Event
    kind: str
    # The EnergyUsage payloads of a price-curve report (what compensation counts); none for
    # a report on an LPC event.
    usages: list[EnergyUsage]


def check_report(
    body: Any,
    *,
    find_event: Callable[[str], Event | None],
    now: datetime,
    timezone: ZoneInfo,
    grace_seconds: float,
) -> CheckedReport:
    """What an acceptable PostReportRequest answers; ReportRejected says why a report is not
    acceptable."""
    if not isinstance(body, dict):
        raise ReportRejected("The request body must be a JSON object.")
    event_id = body.get("eventId")
    if not isinstance(event_id, str) or not event_id.strip():
        raise ReportRejected("eventId is required: a report answers one event.")
    payloads = body.get("payloads")
    if not isinstance(payloads, list) or not payloads:
        raise ReportRejected("payloads must be a non-empty array.")
    stored = find_event(event_id)
    if stored is None:
        raise ReportRejected(f"Event {event_id} was not found.")
    if stored.payload_type in LPC_PAYLOAD_TYPES:
        kind = check_lpc_report(
            stored, payloads, now=now, timezone=timezone, grace_seconds=grace_seconds
        )
        return CheckedReport(stored, kind, [])
    if stored.payload_type != "PriceCurve":
        raise ReportRejected(
            f"Event {event_id} is a {stored.payload_type} event; "
            "EnergyUsage reports answer PriceCurve events."
        )
    event = PriceCurveEvent.of(stored, timezone)
    check_in_time(event_id, event.month, now, timezone, grace_seconds)
    usages = [_check_payload(p, n, event) for n, p in enumerate(payloads)]
    _check_distinct((u.resource_id, u.location_id) for u in usages)
    return CheckedReport(stored, ENERGY, usages)


def check_targets_known(usages: list[EnergyUsage], directory: UserDirectory) -> None:
    """Our model of what Spark does with payloads it cannot credit (see the module's
    docstring): ReportRejected naming the first offending resource."""
    for index, usage in enumerate(usages):
        where = f"payloads[{index}]"
        deleted = directory.deleted_owner(usage.resource_id, usage.location_id)
        if deleted is not None:
            raise ReportRejected(
                f"{where}: resource {usage.resource_id} at location {usage.location_id} "
                f"belongs to user {deleted.user.user_id}, which was deleted."
            )
        location = directory.find_location(usage.location_id)
        mpid = usage.meter_point_id
        if (
            mpid is not None
            and location is not None
            and location.meter_point_ids
            and mpid not in location.meter_point_ids
        ):
            raise ReportRejected(
                f"{where}: meterPointId {mpid} of resource {usage.resource_id} is not one of "
                f"the meter point ids of location {usage.location_id}."
            )


def _check_payload(payload: Any, index: int, event: PriceCurveEvent) -> EnergyUsage:
    where = f"payloads[{index}]"
    if not isinstance(payload, dict):
        raise ReportRejected(f"{where} must be an object.")
    payload_type = payload.get("payloadType")
    if payload_type != ENERGY_USAGE:
        raise ReportRejected(
            f"{where}.payloadType must be EnergyUsage (the only report a price curve takes), "
            f"got {payload_type!r}."
        )
    resource_id = payload.get("resourceId")
    if not isinstance(resource_id, str) or not resource_id:
        raise ReportRejected(f"{where}.resourceId is required.")
    location_id = payload.get("locationId")
    if location_id is not None and not isinstance(location_id, str):
        raise ReportRejected(f"{where}.locationId must be a string.")
    meter_point_id = payload.get("meterPointId")
    if meter_point_id is not None and not isinstance(meter_point_id, str):
        raise ReportRejected(f"{where}.meterPointId must be a string.")
    location_id = _target_location(resource_id, location_id, event, where)
    check_resolution(payload.get("resolution"), event.resolution, where)
    points = energy_points(
        payload,
        event.deltas,
        where,
        outside=f"the points of event {event.event_id}",
        allow_curve_points=True,
    )
    return EnergyUsage(resource_id, location_id, meter_point_id, points)


def _target_location(
    resource_id: str, location_id: str | None, event: PriceCurveEvent, where: str
) -> str:
    locations = [loc for res, loc in event.targets if res == resource_id]
    if not locations:
        raise ReportRejected(
            f"{where}: resource {resource_id} is not among the targets of event {event.event_id}."
        )
    if location_id is None:
        if len(set(locations)) > 1:
            raise ReportRejected(
                f"{where}.locationId is required: event {event.event_id} targets resource "
                f"{resource_id} at several locations."
            )
        return locations[0]
    if location_id not in locations:
        raise ReportRejected(
            f"{where}: resource {resource_id} at location {location_id} is not among the "
            f"targets of event {event.event_id}."
        )
    return location_id


def _check_distinct(targets: Iterable[tuple[str, str]]) -> None:
    seen: set[tuple[str, str]] = set()
    for resource_id, location_id in targets:
        if (resource_id, location_id) in seen:
            raise ReportRejected(
                f"Resource {resource_id} at location {location_id} is reported twice; "
                "send one payload per target."
            )
        seen.add((resource_id, location_id))
