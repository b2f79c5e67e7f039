"""The sandbox's daily price curves, as Spark sends its test areas one each day.

When the sandbox clock passes `hour` (13:00 by default) in the sandbox's time zone, every
neighbourhood with targets gets one `PriceCurve` event for the next local day: targets from
`UserDirectory.curve_targets` (resources of enrolled users in that NH), the NH's price area
and its currency, points from `sandbox.curve_shapes`. A neighbourhood without targets gets
nothing. With probability `changed_curve_probability` a curve is followed, `CHANGE_DELAY`
later the same day (15:00), by a changed curve for about half of its targets with some deltas
changed, under a new eventId.

"Passes" means any forward move of the sandbox clock: real ticking (a background thread
looks at least once a second), `advanceSeconds`, or `now` set to a later time. Each run hour
passed is run in order, at most `MAX_CATCH_UP_DAYS` of them (the latest) per move, so a jump
of a year does not send a year of curves. Every day run is remembered, so a day never gets
its curves twice, even when the clock is moved back and forward again; `reset` forgets them.
Moving the clock back, or back to real time (`rebase`), sends nothing.

`run_today` runs the current sandbox day at once (idempotent per day), for tests and demos;
its changed curves come at 15:00, or at once when that has passed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from datetime import time as wall_time
from random import Random
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.clock import Clock, spark_timestamp
from sandbox.curve_shapes import about_half, changed_points, daily_points
from sandbox.directory import UserDirectory
from sandbox.price_areas import currency_of
from sandbox.simulation import PriceCurveRequest, next_local_day_hours, price_curve_payload
from sandbox.state import Event, JSONObject

log = logging.getLogger(__name__)

CHANGE_DELAY = timedelta(hours=2)
MAX_CATCH_UP_DAYS = 31
POLL_INTERVAL = 1.0


@dataclass(frozen=True)
class CurveSwitches:
    """Set through `POST /_sandbox/curves/daily`; a reset restores the configured ones."""

    enabled: bool
    changed_curve_probability: float
    hour: int
    # Every hour of the day instead of a realistic subset.
    full_day: bool = False

    def to_control(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "changedCurveProbability": self.changed_curve_probability,
            "hour": self.hour,
            "fullDay": self.full_day,
        }


@dataclass(frozen=True)
class DailyCurve:
    """One daily curve sent, and the changed curve that follows it, if any."""

    day: date
    neighbourhood_id: str
    price_area: str
    event_id: str
    sent_at: datetime
    payload: JSONObject
    change_due: datetime | None = None
    changed_event_id: str | None = None

    def to_control(self) -> JSONObject:
        return {
            "day": self.day.isoformat(),
            "neighbourhoodId": self.neighbourhood_id,
            "priceArea": self.price_area,
            "eventId": self.event_id,
            "sentAt": spark_timestamp(self.sent_at),
            "targets": len(self.payload["targets"]),
            "changeDue": None if self.change_due is None else spark_timestamp(self.change_due),
            "changedEventId": self.changed_event_id,
        }


class DailyCurves:
    """All methods are safe to call from any thread."""

    def __init__(
        self,
        directory: UserDirectory,
        clock: Clock,
        publish: Callable[[JSONObject], Event],
        *,
        timezone: ZoneInfo,
        rng: Random,
        new_id: Callable[[], str],
        switches: CurveSwitches,
    ) -> None:
        self._directory = directory
        self._clock = clock
        self._publish = publish
        self._timezone = timezone
        self._rng = rng
        self._new_id = new_id
        self._defaults = switches
        self._switches = switches
        # Held while curves are decided and sent, so runs never interleave or repeat.
        self._lock = threading.RLock()
        self._seen = clock.now()
        self._done: set[date] = set()
        self._curves: list[DailyCurve] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-curves", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def switches(self) -> CurveSwitches:
        with self._lock:
            return self._switches

    def configure(
        self,
        *,
        enabled: bool | None = None,
        changed_curve_probability: float | None = None,
        hour: int | None = None,
        full_day: bool | None = None,
    ) -> CurveSwitches:
        with self._lock:
            current = self._switches
            self._switches = CurveSwitches(
                enabled=current.enabled if enabled is None else enabled,
                changed_curve_probability=(
                    current.changed_curve_probability
                    if changed_curve_probability is None
                    else changed_curve_probability
                ),
                hour=current.hour if hour is None else hour,
                full_day=current.full_day if full_day is None else full_day,
            )
            return self._switches

    def curves(self) -> list[DailyCurve]:
        with self._lock:
            return list(self._curves)

    def days_run(self) -> list[date]:
        with self._lock:
            return sorted(self._done)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Nothing is sent inside this block."""
        with self._lock:
            yield

    def rebase(self) -> None:
        """Take the clock's current time as seen, sending nothing for the time skipped."""
        with self._lock:
            self._seen = self._clock.now()

    def reset(self) -> None:
        """Forget the days run and the changes pending; default switches; rebase."""
        with self._lock:
            self._switches = self._defaults
            self._done.clear()
            self._curves.clear()
            self._seen = self._clock.now()

    def catch_up(self) -> list[Event]:
        """Send what the clock's move since the last look has made due; the events sent."""
        with self._lock:
            now = self._clock.now()
            seen, self._seen = self._seen, now
            if now <= seen:
                return []
            sent: list[Event] = []
            if self._switches.enabled:
                for day in self._run_days_between(seen, now):
                    run_at = self._run_time(day)
                    sent += self._send_changes_due(run_at)
                    sent += self._run_day(day, run_at)
            sent += self._send_changes_due(now)
            return sent

    def run_today(self) -> list[Event]:
        """Run the current sandbox day now unless it has run; the events sent."""
        with self._lock:
            now = self._clock.now()
            sent = self._run_day(now.astimezone(self._timezone).date(), now)
            return sent + self._send_changes_due(now)

    # Internals (the lock is held)

    def _run_time(self, day: date) -> datetime:
        return datetime.combine(day, wall_time(self._switches.hour), tzinfo=self._timezone)

    def _run_days_between(self, after: datetime, until: datetime) -> list[date]:
        """The local days whose run hour lies in (after, until], the latest few."""
        first = after.astimezone(self._timezone).date()
        last = until.astimezone(self._timezone).date()
        first = max(first, last - timedelta(days=MAX_CATCH_UP_DAYS))
        days = []
        day = first
        while day <= last:
            if after < self._run_time(day) <= until:
                days.append(day)
            day += timedelta(days=1)
        return days[-MAX_CATCH_UP_DAYS:]

    def _run_day(self, day: date, run_at: datetime) -> list[Event]:
        if day in self._done:
            return []
        self._done.add(day)
        switches = self._switches
        targets_by_nh = self._directory.curve_targets()
        hours = next_local_day_hours(run_at, self._timezone)
        sent = []
        for nh in self._directory.neighbourhoods.neighbourhoods:
            pairs = targets_by_nh.get(nh.neighbourhood_id)
            if not pairs:
                continue
            currency = currency_of(nh.price_area)
            targets = [{"resourceId": r, "locationId": loc} for r, loc in pairs]
            points = daily_points(
                hours, self._timezone, self._rng, currency, full_day=switches.full_day
            )
            curve = {
                "points": points,
                "energyUnit": "kWh",
                "currency": currency,
                "resolution": "01:00:00",
            }
            event = self._send(PriceCurveRequest(targets, curve, nh.price_area))
            change_due = None
            if self._rng.random() < switches.changed_curve_probability:
                # A day run late (run_today after 15:00) sends its change at once.
                change_due = max(self._run_time(day) + CHANGE_DELAY, run_at)
            self._curves.append(
                DailyCurve(
                    day=day,
                    neighbourhood_id=nh.neighbourhood_id,
                    price_area=nh.price_area,
                    event_id=event.event_id,
                    sent_at=event.created_at,
                    payload=dict(event.payload),
                    change_due=change_due,
                )
            )
            sent.append(event)
        log.info("sandbox daily price curves for %s: %d events", day, len(sent))
        return sent

    def _send_changes_due(self, until: datetime) -> list[Event]:
        due = [
            (index, curve)
            for index, curve in enumerate(self._curves)
            if curve.change_due is not None
            and curve.changed_event_id is None
            and curve.change_due <= until
        ]
        due.sort(key=lambda item: (item[1].change_due, item[0]))
        sent = []
        for index, curve in due:
            original = curve.payload
            delta = original["priceCurveDelta"]
            changed = {**delta, "points": changed_points(delta["points"], self._rng)}
            targets = about_half(list(original["targets"]), self._rng)
            event = self._send(PriceCurveRequest(targets, changed, original["priceArea"]))
            self._curves[index] = replace(curve, changed_event_id=event.event_id)
            sent.append(event)
        return sent

    def _send(self, wanted: PriceCurveRequest) -> Event:
        payload = price_curve_payload(
            wanted,
            now=self._clock.now(),
            timezone=self._timezone,
            rng=self._rng,
            new_id=self._new_id,
        )
        return self._publish(payload)

    def _run(self) -> None:
        while not self._stop.wait(POLL_INTERVAL):
            try:
                self.catch_up()
            except Exception:
                log.exception("sandbox daily price curves failed")
