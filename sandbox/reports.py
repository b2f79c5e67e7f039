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

An acknowledgement of an LPC event is checked by `sandbox.lpc_reports` instead.

Anything else is a 400 with a message saying what is wrong. A second report for the same
event is accepted and kept beside the first (both are listed and counted); compensation uses
the latest one per event, resource and location.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from datetime import time as wall_time
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.clock import parse_timestamp, spark_timestamp
from sandbox.directory import UserDirectory
from sandbox.lpc_reports import LPC_PAYLOAD_TYPES, AcknowledgementRejected, check_acknowledgement
from sandbox.state import Event, JSONObject

ENERGY_USAGE = "EnergyUsage"
TIME_SPAN_PARTS = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2}(?:\.\d{1,7})?)$")


class ReportRejected(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


def month_end(month: date, timezone: ZoneInfo) -> datetime:
    """The first instant of the local month after `month` (its first day)."""
    following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    return datetime.combine(following, wall_time(0), tzinfo=timezone)


def report_deadline(month: date, timezone: ZoneInfo, grace_seconds: float) -> datetime:
    return month_end(month, timezone) + timedelta(seconds=grace_seconds)


def parse_time_span(text: str) -> timedelta:
    """A .NET TimeSpan string ([d.]hh:mm:ss[.fffffff]); ValueError when it is not one."""
    found = TIME_SPAN_PARTS.match(text)
    if found is None:
        raise ValueError(f"not a time span: {text!r}")
    days, hours, minutes, seconds = found.groups()
    return timedelta(
        days=int(days or 0), hours=int(hours), minutes=int(minutes), seconds=float(seconds)
    )


# Accepted reports


@dataclass(frozen=True)
class UsagePoint:
    at: datetime
    kilowatt_hours: float


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
    # Stored, but the sandbox's lost-answer fault kept the answer from the client.
    answer_lost: bool = False

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


def check_report(
    body: Any,
    *,
    find_event: Callable[[str], Event | None],
    now: datetime,
    timezone: ZoneInfo,
    grace_seconds: float,
) -> tuple[str, list[EnergyUsage]]:
    """The event id and the usages of an acceptable PostReportRequest; ReportRejected says
    why a report is not acceptable."""
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
        try:
            check_acknowledgement(stored, payloads)
        except AcknowledgementRejected as exc:
            raise ReportRejected(str(exc)) from None
        return event_id, []
    if stored.payload_type != "PriceCurve":
        raise ReportRejected(
            f"Event {event_id} is a {stored.payload_type} event; "
            "EnergyUsage reports answer PriceCurve events."
        )
    event = PriceCurveEvent.of(stored, timezone)
    deadline = report_deadline(event.month, timezone, grace_seconds)
    if now >= deadline:
        raise ReportRejected(
            f"Reports for event {event_id} were due by {spark_timestamp(deadline)} "
            f"(the end of {event.month:%Y-%m} plus {grace_seconds:g} s of grace); "
            f"this one came at {spark_timestamp(now)}."
        )
    usages = [_check_payload(p, n, event) for n, p in enumerate(payloads)]
    _check_distinct((u.resource_id, u.location_id) for u in usages)
    return event_id, usages


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
    _check_resolution(payload.get("resolution"), event, where)
    points = _usage_points(payload, event, where)
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


def _check_resolution(resolution: Any, event: PriceCurveEvent, where: str) -> None:
    if not isinstance(resolution, str):
        raise ReportRejected(f"{where}.resolution is required, e.g. 01:00:00.")
    try:
        given = parse_time_span(resolution)
    except ValueError:
        raise ReportRejected(f"{where}.resolution must be a time span like 01:00:00.") from None
    if event.resolution is not None and given != event.resolution:
        raise ReportRejected(
            f"{where}.resolution {resolution} does not match the event's resolution "
            f"{_time_span(event.resolution)}."
        )


def _usage_points(
    payload: JSONObject, event: PriceCurveEvent, where: str
) -> tuple[UsagePoint, ...]:
    points, old_points = payload.get("points"), payload.get("curvePoints")
    if points is not None and old_points is not None:
        raise ReportRejected(f"{where}: give points or the deprecated curvePoints, not both.")
    name = "points" if old_points is None else "curvePoints"
    raw = points if old_points is None else old_points
    if raw is None:
        raise ReportRejected(f"{where}.points is required.")
    if not isinstance(raw, list):
        raise ReportRejected(f"{where}.{name} must be an array.")
    parsed = []
    seen: set[datetime] = set()
    for n, point in enumerate(raw):
        at = f"{where}.{name}[{n}]"
        if not isinstance(point, dict):
            raise ReportRejected(f"{at} must be an object with timestamp and kiloWattHours.")
        timestamp, energy = point.get("timestamp"), point.get("kiloWattHours")
        if not isinstance(timestamp, str):
            raise ReportRejected(f"{at}.timestamp is required.")
        try:
            when = parse_timestamp(timestamp)
        except ValueError:
            raise ReportRejected(
                f"{at}.timestamp {timestamp!r} is not a timestamp with an offset."
            ) from None
        if not isinstance(energy, int | float) or isinstance(energy, bool):
            raise ReportRejected(f"{at}.kiloWattHours must be a number.")
        if not math.isfinite(energy):
            raise ReportRejected(f"{at}.kiloWattHours must be a finite number.")
        if energy < 0:
            raise ReportRejected(f"{at}.kiloWattHours must be 0 or more, got {energy}.")
        if when not in event.deltas:
            raise ReportRejected(
                f"{at}.timestamp {timestamp} is not one of the points of event {event.event_id}."
            )
        if when in seen:
            raise ReportRejected(f"{at}.timestamp {timestamp} is reported twice.")
        seen.add(when)
        parsed.append(UsagePoint(when, float(energy)))
    return tuple(parsed)


def _check_distinct(targets: Iterable[tuple[str, str]]) -> None:
    seen: set[tuple[str, str]] = set()
    for resource_id, location_id in targets:
        if (resource_id, location_id) in seen:
            raise ReportRejected(
                f"Resource {resource_id} at location {location_id} is reported twice; "
                "send one payload per target."
            )
        seen.add((resource_id, location_id))


def _time_span(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    days, seconds = divmod(seconds, 86400)
    text = f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return f"{days}.{text}" if days else text
