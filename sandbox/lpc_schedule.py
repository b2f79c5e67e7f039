"""The sandbox's LPC schedule: `ResourceLPC` and `LocationLPC` events for enrolled targets,
as a DSO in Spark's LPC program would send them. Off until switched on
(`POST /_sandbox/lpc/schedule {"enabled": true}` or `python -m sandbox --lpc-every SECONDS`).

A run happens each time the sandbox clock passes a multiple of `everySeconds` (counted from
the Unix epoch, so hourly runs fall on whole UTC hours): real ticking (a background thread
looks at least once a second), `advanceSeconds`, or `now` set later. The latest
`MAX_CATCH_UP_RUNS` runs passed are run, in order, each once (a run time is remembered, so
moving the clock back and forward again does not repeat it; `reset` forgets). Moving the
clock back, or back to real time, sends nothing. `POST /_sandbox/lpc/schedule/run` runs once
at the current sandbox time.

Each run takes its targets from `UserDirectory.lpc_targets` (enrolled users' locations in a
neighbourhood with a meter point id: their resources with location and meter point, and each
of their meter points) and picks up to `eventsPerRun` of them, each for one event with one
target (Spark: "one event per resource, or per MPID for behind-the-meter locations"). For
each event it draws:

- the timing: `justInTime` with probability `justInTimeShare`, else `ahead`. An ahead event's
  first period starts `aheadHours` (48) after the run's hour; a just-in-time event's first
  period is one the run lies in: it starts at the run time or has already begun, less than
  one resolution ago (periods start on whole hours, or on whole steps of a resolution under
  an hour). An event sent late by a catch-up keeps its run's periods;
- the resolution, one of `resolutions` (`02:00:00` and `01:00:00`);
- one to four consecutive periods, each with its own cap: a resource 1.4 to 7.4 kW (a
  charger held between one phase at 6 A and 32 A), or 0 (paused) one time in ten; a
  location (a whole household behind the meter) 2 to 12 kW. One decimal.

All draws come from a generator seeded with `seed` and the run's time, so a run at a given
sandbox time with the same targets always makes the same events, whatever ran before (the
event ids are random, as Spark's). The cap values and shares are our model: Spark documents
none of them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any

from sandbox.clock import Clock, spark_timestamp
from sandbox.directory import UserDirectory
from sandbox.report_parts import format_time_span, parse_time_span
from sandbox.state import Event, JSONObject

log = logging.getLogger(__name__)

AHEAD = "ahead"
JUST_IN_TIME = "justInTime"
KINDS = ("resources", "locations")
MAX_CATCH_UP_RUNS = 24
MAX_PERIODS = 4
POLL_INTERVAL = 1.0
HOUR = timedelta(hours=1)
DEFAULT_RESOLUTIONS = (timedelta(hours=2), timedelta(hours=1))


@dataclass(frozen=True)
class LpcSwitches:
    """Set through `POST /_sandbox/lpc/schedule`; a reset restores the configured ones."""

    enabled: bool = False
    every_seconds: int = 3600
    events_per_run: int = 2
    just_in_time_share: float = 0.5
    ahead_hours: int = 48
    resolutions: tuple[timedelta, ...] = DEFAULT_RESOLUTIONS
    kinds: tuple[str, ...] = KINDS
    seed: int = 0

    def to_control(self) -> JSONObject:
        return {
            "enabled": self.enabled,
            "everySeconds": self.every_seconds,
            "eventsPerRun": self.events_per_run,
            "justInTimeShare": self.just_in_time_share,
            "aheadHours": self.ahead_hours,
            "resolutions": [format_time_span(r) for r in self.resolutions],
            "kinds": list(self.kinds),
            "seed": self.seed,
        }


def parse_switches(body: dict[str, Any], current: LpcSwitches) -> LpcSwitches:
    """`current` with the camelCase fields of `body` given; ValueError says what is wrong."""
    changes: dict[str, Any] = {}
    enabled = body.get("enabled")
    if enabled is not None:
        if not isinstance(enabled, bool):
            raise ValueError("enabled must be a boolean")
        changes["enabled"] = enabled
    for name, field, low, high in (
        ("everySeconds", "every_seconds", 60, 7 * 86400),
        ("eventsPerRun", "events_per_run", 0, 1000),
        ("aheadHours", "ahead_hours", 1, 7 * 24),
        ("seed", "seed", -(2**63), 2**63 - 1),
    ):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{name} must be a whole number from {low} to {high}")
        changes[field] = value
    share = body.get("justInTimeShare")
    if share is not None:
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
            raise ValueError("justInTimeShare must be a number from 0 to 1")
        changes["just_in_time_share"] = float(share)
    resolutions = body.get("resolutions")
    if resolutions is not None:
        changes["resolutions"] = _resolutions(resolutions)
    kinds = body.get("kinds")
    if kinds is not None:
        if not isinstance(kinds, list) or not kinds or not set(kinds) <= set(KINDS):
            raise ValueError('kinds must be a non-empty array of "resources", "locations"')
        changes["kinds"] = tuple(k for k in KINDS if k in kinds)
    return replace(current, **changes)


def _resolutions(value: Any) -> tuple[timedelta, ...]:
    message = (
        "resolutions must be a non-empty array of time spans from 00:15:00 to 1.00:00:00 "
        'that divide an hour or are whole hours, e.g. ["02:00:00", "01:00:00"]'
    )
    if not isinstance(value, list) or not value:
        raise ValueError(message)
    found = []
    for text in value:
        try:
            span = parse_time_span(text) if isinstance(text, str) else None
        except ValueError:
            span = None
        if span is None or not timedelta(minutes=15) <= span <= timedelta(days=1):
            raise ValueError(message)
        if (HOUR % span if span < HOUR else span % HOUR) != timedelta(0):
            raise ValueError(message)
        found.append(span)
    return tuple(dict.fromkeys(found))


# One run, decided


@dataclass(frozen=True)
class PlannedLpc:
    kind: str
    timing: str
    resolution: timedelta
    first_start: datetime
    payload: JSONObject


def plan_run(
    run_at: datetime,
    switches: LpcSwitches,
    resources: list[tuple[str, str, str]],
    locations: list[tuple[str, str]],
) -> list[PlannedLpc]:
    """The events of the run at `run_at`: a function of the seed, the run time and the
    targets only."""
    rng = Random(f"lpc-schedule|{switches.seed}|{run_at.isoformat()}")
    candidates: list[tuple[str, tuple[str, ...]]] = []
    if "resources" in switches.kinds:
        candidates += (("resources", target) for target in resources)
    if "locations" in switches.kinds:
        candidates += (("locations", target) for target in locations)
    chosen = rng.sample(candidates, min(switches.events_per_run, len(candidates)))
    return [_plan_event(kind, ids, run_at, switches, rng) for kind, ids in chosen]


def _plan_event(
    kind: str, ids: tuple[str, ...], run_at: datetime, switches: LpcSwitches, rng: Random
) -> PlannedLpc:
    timing = JUST_IN_TIME if rng.random() < switches.just_in_time_share else AHEAD
    resolution = rng.choice(switches.resolutions)
    # Periods start on whole hours (on whole steps for a resolution under an hour).
    step = min(resolution, HOUR)
    current = _floor(run_at, step)
    if timing == AHEAD:
        first = current + timedelta(hours=switches.ahead_hours)
    else:
        # The first period is the one the run lies in: begun now or a few steps ago.
        first = current - step * rng.randrange(resolution // step)
    points = []
    for n in range(rng.randint(1, MAX_PERIODS)):
        if kind == "resources":
            cap = 0.0 if rng.random() < 0.1 else round(rng.uniform(1.4, 7.4), 1)
        else:
            cap = round(rng.uniform(2.0, 12.0), 1)
        points.append(
            {"maxPowerInKiloWatts": cap, "timestamp": spark_timestamp(first + n * resolution)}
        )
    if kind == "resources":
        resource_id, location_id, meter_point_id = ids
        target: JSONObject = {
            "locationId": location_id,
            "resourceId": resource_id,
            "meterPointId": meter_point_id,
        }
        payload_type = "ResourceLPC"
    else:
        location_id, meter_point_id = ids
        target = {"locationId": location_id, "meterPointId": meter_point_id}
        payload_type = "LocationLPC"
    target |= {"resolution": format_time_span(resolution), "points": points}
    payload = {"targets": [target], "payloadType": payload_type}
    return PlannedLpc(kind, timing, resolution, first, payload)


def _floor(when: datetime, step: timedelta) -> datetime:
    seconds = int(when.timestamp())
    size = int(step.total_seconds())
    return datetime.fromtimestamp(seconds - seconds % size, UTC)


# The schedule


@dataclass(frozen=True)
class ScheduledLpc:
    """One event the schedule sent."""

    event_id: str
    run_at: datetime
    sent_at: datetime
    planned: PlannedLpc

    def to_control(self) -> JSONObject:
        target = self.planned.payload["targets"][0]
        return {
            "eventId": self.event_id,
            "runAt": spark_timestamp(self.run_at),
            "sentAt": spark_timestamp(self.sent_at),
            "kind": self.planned.kind,
            "timing": self.planned.timing,
            "resolution": format_time_span(self.planned.resolution),
            "firstPeriodStart": spark_timestamp(self.planned.first_start),
            "target": {k: v for k, v in target.items() if k not in ("resolution", "points")},
            "periods": len(target["points"]),
        }


class LpcSchedule:
    """All methods are safe to call from any thread."""

    def __init__(
        self,
        directory: UserDirectory,
        clock: Clock,
        publish: Callable[[JSONObject], Event],
        *,
        switches: LpcSwitches,
    ) -> None:
        self._directory = directory
        self._clock = clock
        self._publish = publish
        self._defaults = switches
        self._switches = switches
        # Held while runs are decided and sent, so they never interleave or repeat.
        self._lock = threading.RLock()
        self._seen = clock.now()
        self._done: set[datetime] = set()
        self._sent: list[ScheduledLpc] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-lpc", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def switches(self) -> LpcSwitches:
        with self._lock:
            return self._switches

    def configure(self, body: dict[str, Any]) -> LpcSwitches:
        """Change the switches named in `body` (camelCase); ValueError says what is wrong."""
        with self._lock:
            self._switches = parse_switches(body, self._switches)
            return self._switches

    def sent(self) -> list[ScheduledLpc]:
        with self._lock:
            return list(self._sent)

    def runs(self) -> list[datetime]:
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
        """Forget the runs and events sent; default switches; rebase."""
        with self._lock:
            self._switches = self._defaults
            self._done.clear()
            self._sent.clear()
            self._seen = self._clock.now()

    def catch_up(self) -> list[Event]:
        """Run what the clock's move since the last look has passed; the events sent."""
        with self._lock:
            now = self._clock.now()
            seen, self._seen = self._seen, now
            if now <= seen or not self._switches.enabled:
                return []
            sent: list[Event] = []
            for run_at in self._run_times_between(seen, now):
                sent += self._run_once(run_at)
            return sent

    def run_now(self) -> list[Event]:
        """Run once at the current sandbox time (unless a run had this very time)."""
        with self._lock:
            return self._run_once(self._clock.now())

    # Internals (the lock is held)

    def _run_times_between(self, after: datetime, until: datetime) -> list[datetime]:
        every = self._switches.every_seconds
        first = int(after.timestamp()) // every + 1
        last = int(until.timestamp()) // every
        first = max(first, last - MAX_CATCH_UP_RUNS + 1)
        times = (datetime.fromtimestamp(k * every, UTC) for k in range(first, last + 1))
        return [t for t in times if after < t <= until]

    def _run_once(self, run_at: datetime) -> list[Event]:
        if run_at in self._done:
            return []
        self._done.add(run_at)
        resources, locations = self._directory.lpc_targets()
        sent = []
        for planned in plan_run(run_at, self._switches, resources, locations):
            event = self._publish(planned.payload)
            self._sent.append(ScheduledLpc(event.event_id, run_at, event.created_at, planned))
            sent.append(event)
        log.info("sandbox LPC schedule run at %s: %d events", spark_timestamp(run_at), len(sent))
        return sent

    def _run(self) -> None:
        while not self._stop.wait(POLL_INTERVAL):
            try:
                self.catch_up()
            except Exception:
                log.exception("sandbox LPC schedule failed")
