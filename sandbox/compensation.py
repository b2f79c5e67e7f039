"""`GET /users/{userId}/compensation`: what a user has earned this month, per location.

Spark does not publish its formula; the sandbox uses this one:

- The month is the current local month of the sandbox clock (in the sandbox's time zone);
  `period` runs from its first to its last day. A report counts for the month of its event
  (the local month of the event's first point), whenever it arrived.
- Per accepted report payload, for each reported hour whose delta is negative (the curve
  invited usage then): kWh x |delta|, the delta taken per kWh (a curve in MWh is divided by
  1000). Hours with a positive or zero delta earn nothing. When an event was reported more
  than once for the same resource and location, only the latest report counts.
- The amount of a payload goes to the location of its target. It is `activeAmount`, unless a
  problem blocks it, and then it is `blockedAmount`:
  - `MissingMpidOnLocation`: the location has no meter point id, so nothing of it can be paid
    (listed even before anything is reported);
  - `CompensationMpidDoesNotMatchLocation`: the payload's `meterPointId` is not one of the
    location's, so that payload's amount is blocked.
- `currency` is that of the location's reported curves, else that of its neighbourhood's price
  area, else NOK. Amounts are rounded to 2 decimals.
- Every current location of the user is listed, with 0 when nothing was reported.
- A user deleted during the month gets nothing: no locations (it may have been created again
  under the same id). A user that does not exist and was not deleted this month is a 404.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sandbox.directory import NotFound, UserDirectory
from sandbox.price_areas import DEFAULT_PRICE_AREA, currency_of
from sandbox.reports import EnergyUsage, PriceCurveEvent, Report
from sandbox.state import Event, JSONObject
from sandbox.users import Location

MISSING_MPID = "MissingMpidOnLocation"
MPID_MISMATCH = "CompensationMpidDoesNotMatchLocation"


@dataclass
class _Tally:
    location: Location
    active: float = 0.0
    blocked: float = 0.0
    currency: str | None = None
    problems: list[JSONObject] = field(default_factory=list)

    def to_api(self, fallback_currency: str) -> JSONObject:
        """LocationCompensation."""
        return {
            "locationId": self.location.location_id,
            "meterPointIds": list(self.location.meter_point_ids),
            "activeAmount": round(self.active, 2),
            "blockedAmount": round(self.blocked, 2),
            "currency": self.currency or fallback_currency,
            "problems": self.problems,
        }


def user_compensation(
    user_id: str,
    *,
    directory: UserDirectory,
    reports: list[Report],
    find_event: Callable[[str], Event | None],
    now: datetime,
    timezone: ZoneInfo,
) -> JSONObject | None:
    """GetUserCompensationForCurrentMonthResponse, or None for an unknown user."""
    month = now.astimezone(timezone).date().replace(day=1)
    last_day = (month.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    body: JSONObject = {
        "userId": user_id,
        "period": {"from": month.isoformat(), "to": last_day.isoformat()},
        "locationCompensations": [],
    }
    deleted_this_month = any(
        gone.user.user_id == user_id
        and gone.user.deleted_at is not None
        and gone.user.deleted_at.astimezone(timezone).date().replace(day=1) == month
        for gone in directory.deleted_users()
    )
    try:
        locations = directory.locations_of(user_id)
    except NotFound:
        return body if deleted_this_month else None
    if deleted_this_month:
        return body
    tallies = {loc.location_id: _Tally(loc) for loc in locations}
    for loc in locations:
        if not loc.meter_point_ids:
            tallies[loc.location_id].problems.append(
                {
                    "problemType": MISSING_MPID,
                    "message": f"Location {loc.location_id} has no meter point id; "
                    "compensation needs one.",
                }
            )
    for event, usage in _latest_usages(reports, tallies, find_event, timezone, month):
        _add(tallies[usage.location_id], event, usage)
    body["locationCompensations"] = [
        tally.to_api(_area_currency(directory, tally.location)) for tally in tallies.values()
    ]
    return body


def _latest_usages(
    reports: list[Report],
    tallies: dict[str, _Tally],
    find_event: Callable[[str], Event | None],
    timezone: ZoneInfo,
    month: date,
) -> list[tuple[PriceCurveEvent, EnergyUsage]]:
    """The usages at these locations for events of this month, the latest per event and
    target, in order of arrival."""
    events: dict[str, PriceCurveEvent | None] = {}
    latest: dict[tuple[str, str, str], tuple[PriceCurveEvent, EnergyUsage]] = {}
    for report in reports:
        # An LPC acknowledgement carries no usage (and its event is no price curve).
        if not report.usages:
            continue
        if report.event_id not in events:
            stored = find_event(report.event_id)
            events[report.event_id] = (
                None if stored is None else PriceCurveEvent.of(stored, timezone)
            )
        event = events[report.event_id]
        if event is None or event.month != month:
            continue
        for usage in report.usages:
            if usage.location_id in tallies:
                key = (report.event_id, usage.resource_id, usage.location_id)
                latest.pop(key, None)
                latest[key] = (event, usage)
    return list(latest.values())


def _add(tally: _Tally, event: PriceCurveEvent, usage: EnergyUsage) -> None:
    amount = 0.0
    for point in usage.points:
        delta = event.delta_per_kwh(point.at)
        if delta < 0:
            amount += point.kilowatt_hours * -delta
    if tally.currency is None:
        tally.currency = event.currency
    location = tally.location
    mpid = usage.meter_point_id
    if mpid is not None and location.meter_point_ids and mpid not in location.meter_point_ids:
        problem = {
            "problemType": MPID_MISMATCH,
            "message": f"Meter point {mpid} reported for resource {usage.resource_id} is not "
            f"one of location {location.location_id}'s meter points.",
        }
        if problem not in tally.problems:
            tally.problems.append(problem)
        tally.blocked += amount
    elif not location.meter_point_ids:
        tally.blocked += amount
    else:
        tally.active += amount


def _area_currency(directory: UserDirectory, location: Location) -> str:
    for nh_id in location.neighbourhood_ids:
        nh = directory.neighbourhoods.get(nh_id)
        if nh is not None:
            return currency_of(nh.price_area)
    return currency_of(DEFAULT_PRICE_AREA)
