"""A simulated month of price curves, LPC events, readings and reports, and an independent
check of what the sandbox accepted.

`plan_month(size)` generates the month from a seed: users and their targets, daily curves per
neighbourhood (some changed later the day: a new event that takes over all but the first
period), eligibility changes (a few users leave or join their neighbourhood's curves from a
day on), an LPC event of each kind (resource, location), readings at 15-minute and hourly
resolution with their arrival times (on time, late, after the report was built, never, sent
again, corrected, twice in one file), one user deleted mid-month and one deferred to the
month's end. `run_month` plays it hour by hour on both clocks: the sandbox's (frozen at each
hour) and our CLI's and tasks' `now` (events made by the sandbox and stored as the worker's
handlers store them, `consumption import`, `users delete [--at-month-end]`, `reports send
--due`, and the beat's LPC acknowledgement sweep and `users.run_due_deletions`). It runs on a
PostgreSQL server of its own (`private_database`), which `RestartPostgres` stops (fast, or
immediate: a crash) and starts again while a report is being sent or readings come in.
`check_month` computes every (event, target, period)'s energy in plain Python from the
generated readings, as known when each report was built (the ledger's `built_at`: readings
after that are not reported, corrections being off by default), and compares it with the
sandbox's record of accepted reports. A body accepted twice, byte for byte, is one report sent
again after a lost answer (same Idempotency-Key); the same (event, target, period) in two
different bodies is a duplicate.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from devstack.servers import PostgresServer
from shared.db import close_pools, connect
from shared.db.migrate import upgrade
from shared.spark_api import SparkClient
from tests.fixtures.sandbox import SandboxHandle
from tests.lpc.energy import store_lpc_event
from tests.reports.support import (
    HOUR,
    OSLO,
    cli,
    cli_json,
    curve,
    hours_of_local_day,
    import_readings,
    local,
    rows,
    set_report_faults,
    utc,
    write_readings,
)
from tests.users.helpers import user_document, write_json
from tests.waiting import wait_for
from worker.lpc import ack
from worker.lpc.handling import plan_reaction
from worker.lpc.payload import Kind
from worker.reports import ledger
from worker.reports.ledger import ReportRules
from worker.users.deletion import run_due_deletions

MAX_WAIT = timedelta(hours=24)  # SPARK_REPORT_MAX_WAIT's default
QUARTER = timedelta(minutes=15)
# Where a report's energy is compared: float sums in PostgreSQL and here differ far below this.
EXACT = 1e-6


@dataclass(frozen=True)
class Size:
    """How big a month: `locations` users with one location each and `per_location`
    resources at it, in `neighbourhoods` groups that each get a daily curve; `days` are the
    days of October 2026 that have curves; `fault_rate` is the share of POST /reports that
    the sandbox answers 500, 429 or not at all (stored, answer dropped)."""

    locations: int
    per_location: int
    neighbourhoods: int
    days: tuple[int, ...]
    fault_rate: float
    seed: int = 2026

    @property
    def resources(self) -> int:
        return self.locations * self.per_location


REDUCED = Size(locations=8, per_location=3, neighbourhoods=2, days=(24, 25, 31), fault_rate=0.4)
FULL = Size(
    locations=50, per_location=4, neighbourhoods=5, days=tuple(range(1, 32)), fault_rate=0.1
)


@dataclass(frozen=True)
class Target:
    user_id: str
    location_id: str
    resource_id: str
    quarter_hourly: bool


@dataclass
class PlannedCurve:
    """A price curve, or an LPC event (`kind` "resource" or "location", with two-hour
    periods; a location event's `targets` are the resources at its locations)."""

    key: str  # ours, until the sandbox gives the event its id
    created_at: datetime
    starts: list[datetime]
    targets: list[Target]
    price: float
    changed: bool = False
    event_id: str = ""
    kind: str = "curve"
    period: timedelta = HOUR

    @property
    def end(self) -> datetime:
        return self.starts[-1] + self.period


@dataclass(frozen=True)
class Reading:
    reading_id: str
    target: Target
    start: datetime
    end: datetime
    kwh: float

    def row(self) -> dict[str, Any]:
        return {
            "resourceId": self.target.resource_id,
            "locationId": self.target.location_id,
            "start": utc(self.start),
            "end": utc(self.end),
            "kWh": self.kwh,
            "readingId": self.reading_id,
        }


@dataclass
class Month:
    size: Size
    users: list[str]
    targets: list[Target]
    curves: list[PlannedCurve]
    lpc: list[PlannedCurve]
    # Readings by the (whole) hour they arrive at, in the order they are sent.
    arrivals: dict[datetime, list[Reading]]
    deleted_user: str
    deleted_at: datetime
    deferred_user: str
    deferred_at: datetime
    ticks: list[datetime]
    kinds: Counter[str] = field(default_factory=Counter)
    eligibility_changes: int = 0


def _days(size: Size) -> list[datetime]:
    return [local(2026, 10, day) for day in size.days]


def plan_month(size: Size) -> Month:
    rng = random.Random(size.seed)
    targets: list[Target] = []
    users: list[str] = []
    for n in range(size.locations):
        user = f"sim-{n:03d}"
        users.append(user)
        for k in range(size.per_location):
            targets.append(Target(user, f"{user}-home", f"{user}-r{k}", k % 2 == 0))
    days = _days(size)
    # Users 0 and 1: deleted mid-month, and deferred to the month's end (asked mid-month).
    deleted_user, deferred_user = users[0], users[1]
    deleted_at = (days[len(days) // 2] + timedelta(hours=12)).astimezone(UTC)
    deferred_at = (days[0] + timedelta(hours=10)).astimezone(UTC)
    eligible = _eligibility(rng, users[2:], days)
    curves: list[PlannedCurve] = []
    for day in days:
        created = (day - timedelta(days=1)).replace(hour=13)
        for group in range(size.neighbourhoods):
            members = [
                t
                for t in targets
                if int(t.user_id[-3:]) % size.neighbourhoods == group
                and day in eligible.get(t.user_id, days)
                and not (t.user_id == deleted_user and created >= deleted_at)
            ]
            if members:
                curves += _day_curves(rng, size, day, group, members, last=day == days[-1])
    changes = sum(len(v) < len(days) for v in eligible.values())
    lpc = _plan_lpc(targets, days[0])
    kinds: Counter[str] = Counter()
    arrivals = _plan_readings(
        rng, targets, curves=curves + lpc, kinds=kinds, deleted_user=deleted_user,
        deleted_at=deleted_at,
    )  # fmt: skip
    moments = set(arrivals) | {deleted_at, deferred_at}
    return Month(
        size, users, targets, curves, lpc, arrivals, deleted_user, deleted_at, deferred_user,
        deferred_at, _ticks(curves + lpc, moments), kinds, changes,
    )  # fmt: skip


def _plan_lpc(targets: list[Target], day: datetime) -> list[PlannedCurve]:
    """An LPC event of each kind for `day`'s two two-hour periods from 16:00, sent at 18:00
    the day before: one capping three resources, one two locations (behind their meters)."""
    starts = [day.replace(hour=16).astimezone(UTC), day.replace(hour=18).astimezone(UTC)]
    created = (day - timedelta(days=1)).replace(hour=18)
    # Users 0 and 1 are deleted; the others' first resources, and two more users' homes.
    resources = [t for t in targets if t.user_id >= "sim-002" and t.resource_id.endswith("-r0")]
    homes = {t.location_id for t in targets if t.user_id >= "sim-005"}
    at_homes = [t for t in targets if t.location_id in sorted(homes)[:2]]
    two_hours = 2 * HOUR
    return [
        PlannedCurve("lpc-resources", created, starts, resources[:3], 0.0, kind="resource",
                     period=two_hours),
        PlannedCurve("lpc-locations", created, starts, at_homes, 0.0, kind="location",
                     period=two_hours),
    ]  # fmt: skip


def _eligibility(
    rng: random.Random, users: list[str], days: list[datetime]
) -> dict[str, list[datetime]]:
    """The days a user is eligible, for the users whose eligibility changes: a few leave
    their neighbourhood's curves from a day on, a few join only later (Spark targets
    eligible, enrolled users only)."""
    eligible: dict[str, list[datetime]] = {}
    for user in users:
        draw = rng.random()
        if draw < 0.2 and len(days) > 1:
            change = rng.choice(days[1:])
            eligible[user] = [d for d in days if (d < change) == (draw < 0.1)]
    return eligible


def _day_curves(
    rng: random.Random, size: Size, day: datetime, group: int, members: list[Target], *, last: bool
) -> list[PlannedCurve]:
    """A neighbourhood's curve for `day`, made at 13:00 the day before, and sometimes a
    changed one at 15:00 (a new event) that takes over all but its first period."""
    hours = hours_of_local_day(day)
    created = (day - timedelta(days=1)).replace(hour=13)
    length = rng.randint(2, 5)
    if day.day == 25 and group == 0:
        begin = 1  # 01:00 CEST to 03:00 CET: both 02:00s of the day summer time ends
        length = 4
    elif last and group == size.neighbourhoods - 1:
        begin = len(hours) - length  # up to the month's last midnight
    else:
        begin = rng.randint(0, len(hours) - 7)
    price = round(-rng.uniform(0.1, 1.0), 2)
    base = PlannedCurve(f"{day:%m%d}-{group}", created, hours[begin : begin + length], members,
                        price)  # fmt: skip
    if begin + length >= len(hours) or not (rng.random() < 0.3 or (day.day == 24 and group == 0)):
        return [base]
    later = hours[begin + 1 : begin + length + 1]
    changed = PlannedCurve(base.key + "-changed", created.replace(hour=15), later, members,
                           price / 2, changed=True)  # fmt: skip
    return [base, changed]


def _plan_readings(
    rng: random.Random,
    targets: list[Target],
    *,
    curves: list[PlannedCurve],
    kinds: Counter[str],
    deleted_user: str,
    deleted_at: datetime,
) -> dict[datetime, list[Reading]]:
    """Every targeted resource reads the hours of its day's curves, at its own resolution;
    how and when the readings arrive varies. By arrival hour, in the order sent."""
    arrivals: dict[datetime, list[Reading]] = defaultdict(list)
    windows: dict[tuple[str, datetime], tuple[datetime, datetime]] = {}
    for planned in curves:
        day = planned.starts[0].astimezone(OSLO).replace(hour=0, minute=0)
        for target in planned.targets:
            start, end = windows.get((target.resource_id, day), (planned.starts[0], planned.end))
            windows[(target.resource_id, day)] = (
                min(start, planned.starts[0]),
                max(end, planned.end),
            )
    by_resource = {t.resource_id: t for t in targets}
    for (resource_id, _day), (start, end) in sorted(windows.items()):
        target = by_resource[resource_id]
        if target.user_id == deleted_user and end > deleted_at:
            continue  # its meter is not ours any more
        step = QUARTER if target.quarter_hourly else HOUR
        readings: list[Reading] = []
        at = start.astimezone(UTC)
        while at < end:
            kwh = 0.0 if rng.random() < 0.2 else round(rng.uniform(0.01, 3.0) * step / HOUR, 4)
            readings.append(Reading(f"{resource_id}@{at:%m%dT%H%M}", target, at, at + step, kwh))
            at += step
        kinds["readings"] += len(readings)
        _send(rng, readings, end.astimezone(UTC), arrivals, kinds)
    return dict(arrivals)


def _send(
    rng: random.Random,
    readings: list[Reading],
    end: datetime,
    arrivals: dict[datetime, list[Reading]],
    kinds: Counter[str],
) -> None:
    """When and how one resource's readings of a day arrive: an hour after its last period
    mostly; some late (before SPARK_REPORT_MAX_WAIT), some after the report was built, some
    never; some sent again, corrected, or with one reading twice in the file."""
    draw = rng.random()
    if draw < 0.05:
        kinds["silent"] += 1
        return
    if draw < 0.13:
        kinds["late"] += 1
        arrival = end + HOUR * rng.randint(3, 20)
    elif draw < 0.16:
        kinds["after the report"] += 1
        arrival = end + MAX_WAIT + 6 * HOUR
    else:
        arrival = end + HOUR
    sent = list(readings)
    if rng.random() < 0.05:
        # Twice in one file: a wrong value first, the right one last (the last one counts).
        kinds["twice in one file"] += 1
        n = rng.randrange(len(sent))
        sent.insert(n, replace(sent[n], kwh=9.75))
    arrivals[arrival] += sent
    if rng.random() < 0.08:
        kinds["sent again"] += 1
        arrivals[arrival + HOUR * rng.randint(1, 10)] += readings
    if rng.random() < 0.08:
        # A corrected reading: before the report is built, or long after it.
        kinds["corrected"] += 1
        fixed = rng.choice(readings)
        corrected = replace(fixed, kwh=round(fixed.kwh + 0.5 * (fixed.end - fixed.start) / HOUR, 4))
        arrivals[arrival + HOUR * rng.choice((1, 30))].append(corrected)


def _ticks(curves: list[PlannedCurve], moments: set[datetime]) -> list[datetime]:
    """The hours played: every hour from the first curve to two hours after October's last
    deadline (UTC's month end plus the day of grace), when the deferred deletion can run. A
    month with few days skips the quiet hours between them."""
    busy = set(moments)
    for planned in curves:
        at = planned.created_at.astimezone(UTC)
        while at <= planned.end + MAX_WAIT + 8 * HOUR:
            busy.add(at)
            at += HOUR
    at = min(c.created_at for c in curves).astimezone(UTC)
    ticks: list[datetime] = []
    while at <= datetime(2026, 11, 2, 2, tzinfo=UTC):
        if at in busy or at >= datetime(2026, 11, 1, 12, tzinfo=UTC):
            ticks.append(at)
        at += HOUR
    return ticks


def register_users(sandbox: SandboxHandle, database_url: str, month: Month, tmp_path: Path) -> None:
    """The month's users, in our registry and at Spark (`users import` pushes them)."""
    documents = []
    for n, user in enumerate(month.users):
        resources = tuple(
            (t.resource_id, "Charger" if t.quarter_hourly else "HVAC")
            for t in month.targets
            if t.user_id == user
        )
        documents.append(user_document(user, mpids=(f"7070575{n:011d}",), resources=resources))
    path = write_json(tmp_path / "users.json", documents)
    cli_json(database_url, "users", "import", str(path), sandbox=sandbox)


@dataclass
class Played:
    """What happened while playing the month, beyond the sandbox's record."""

    deletions: dict[str, datetime] = field(default_factory=dict)
    sweeps: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    # Faults injected by `interrupt` hooks (worker kills), as they describe them.
    interrupts: list[str] = field(default_factory=list)
    # PostgreSQL restarts (RestartPostgres), as they describe them.
    postgres_restarts: list[str] = field(default_factory=list)


# Called at an hour before the CLI's sweep, e.g. to kill a worker mid-sweep; says what it did.
Interrupt = Callable[[datetime, "Played"], str]
# Stores an hour's readings file instead of the CLI's `consumption import`.
Importer = Callable[[datetime, Path, "Played"], None]


def report_faults(month: Month) -> dict[str, Any]:
    """The random faults of POST /reports during the month."""
    return {
        "errorRate": month.size.fault_rate,
        "status500Share": 1,
        "status429Share": 1,
        "lostAnswerShare": 1,
        "lostAnswerMode": "drop",
        "seed": month.size.seed,
    }


@contextmanager
def private_database(directory: Path) -> Iterator[tuple[PostgresServer, str]]:
    """A PostgreSQL server of the month's own, since the month restarts it (the session's is
    shared), and the URL of a database on it with every migration applied."""
    server = PostgresServer(directory, sync_initdb=False).start()
    try:
        with psycopg.connect(server.url, autocommit=True) as admin:
            admin.execute("CREATE DATABASE month")
        url = server.url.rsplit("/", 1)[0] + "/month"
        with connect(url) as conn:
            upgrade(conn)
        yield server, url
    finally:
        close_pools()
        server.stop("immediate")


def report_due(database_url: str, now: datetime) -> bool:
    """The hour's sweep (idempotent: the CLI's runs it again) leaves an energy report due
    (what `reports send --due` and reports.sweep send; LPC acknowledgements go by ack.send_due)."""
    with connect(database_url) as conn:
        ledger.sweep(conn, ReportRules(timezone=OSLO), now=now)
    return _energy_report(database_url, "due")


def report_sending(database_url: str) -> bool:
    return _energy_report(database_url, "sending")


def _energy_report(database_url: str, status: str) -> bool:
    found = rows(
        database_url,
        "SELECT 1 FROM reports WHERE status = %s AND kind IN ('energy', 'lpc_energy')",
        (status,),
    )
    return bool(found)


@dataclass(frozen=True)
class PostgresRestart:
    """How PostgreSQL is restarted on a day: stopped `mode` "fast" (a clean shutdown that ends
    every session) or "immediate" (a crash, recovered from the WAL on the next start), while
    `by` sends a report: "cli" (`reports send --due`) or "worker" (a worker's reports.sweep),
    or while the hour's readings come in: "ingest" (tests/faults/test_simulated_month.py has
    the last two)."""

    mode: str
    by: str = "cli"


# The reduced month's restart: a crash while the CLI sends the 26th's first report (the
# 25th's curves, summer time's end).
REDUCED_RESTARTS = {26: PostgresRestart("immediate")}
# How long the sandbox holds each POST /reports at most while PostgreSQL is restarted under
# it; RestartPostgres lets the held one go on as soon as the restart is done.
HOLD_SECONDS = 60


class RestartPostgres:
    """At the first hour of each of `restarts`' days with a report due, that hour's send is
    started, and once a report is `sending` (its POST held by the sandbox) PostgreSQL is
    stopped and started again under it, and the POST let go. The send's connection is gone
    when Spark's answer comes: the CLI run fails (exit with the OperationalError; the next
    hourly run goes on), the report left `sending` is taken back when its lease has run out
    and sent again byte for byte. The hour's CLI sweep then runs as usual, on new
    connections."""

    def __init__(
        self,
        sandbox: SandboxHandle,
        database_url: str,
        server: PostgresServer,
        month: Month,
        restarts: dict[int, PostgresRestart],
    ) -> None:
        self.sandbox = sandbox
        self.database_url = database_url
        self.server = server
        self.month = month
        self.restarts = restarts
        self.done: set[int] = set()

    def ticks(self) -> dict[datetime, Interrupt]:
        return {
            now: self
            for now in self.month.ticks
            if (restart := self.restarts.get(now.astimezone(OSLO).day)) and restart.by != "ingest"
        }

    def __call__(self, now: datetime, played: Played) -> str:
        day = now.astimezone(OSLO).day
        restart = self.restarts.get(day)
        if restart is None or day in self.done or not report_due(self.database_url, now):
            return ""
        self.done.add(day)
        # The random faults drawn so far are counted; then every POST is held.
        played.faults.update(self.sandbox.control.report_faults()["drawn"])
        set_report_faults(self.sandbox, errorRate=1, slowShare=1, slowSeconds=HOLD_SECONDS)
        what = self.cut_off(now, restart)
        played.postgres_restarts.append(f"{restart.mode} at {now:%m-%d %H:%M}Z ({what})")
        return ""

    def restart(self, mode: str) -> None:
        self.server.stop(mode)
        self.server.start()

    def restore_faults(self) -> None:
        """The month's random faults again, and the POST held meanwhile answered now."""
        set_report_faults(self.sandbox, **report_faults(self.month))
        self.sandbox.sandbox.report_faults.release()

    def cut_off(self, now: datetime, restart: PostgresRestart) -> str:
        """The hour's `reports send --due` (in a thread) cut off by the restart; says how."""
        assert restart.by == "cli", restart
        ended: list[object] = []

        def send() -> None:
            try:
                result = cli(self.database_url, "reports", "send", "--due", "--now", utc(now),
                             sandbox=self.sandbox)  # fmt: skip
                ended.append(f"exit {result.exit_code}: {result.output[-300:]}")
            except psycopg.OperationalError as exc:
                ended.append(exc)

        thread = threading.Thread(target=send, name="reports-send", daemon=True)
        thread.start()
        wait_for(lambda: report_sending(self.database_url), 60, "a report out to be cut off")
        self.restart(restart.mode)
        self.restore_faults()
        thread.join(60)
        assert not thread.is_alive(), "the CLI run did not end"
        # AdminShutdown (fast) or OperationalError (immediate: the server closed the connection).
        (error,) = ended
        assert isinstance(error, psycopg.OperationalError), error
        return f"the CLI's send cut off: {type(error).__name__}"


def run_month(
    sandbox: SandboxHandle,
    database_url: str,
    month: Month,
    tmp_path: Path,
    interrupts: dict[datetime, Interrupt] | None = None,
    *,
    importers: dict[datetime, Importer] | None = None,
) -> Played:
    register_users(sandbox, database_url, month, tmp_path)
    set_report_faults(sandbox, **report_faults(month))
    played = Played()
    created = defaultdict(list)
    for planned in month.curves + month.lpc:
        created[planned.created_at.astimezone(UTC)].append(planned)
    with SparkClient(
        sandbox.base_url, sandbox.token_url, sandbox.client_id, sandbox.client_secret
    ) as client:
        for now in month.ticks:
            for planned in created.get(now, []):
                if planned.kind != "curve":
                    planned.event_id = _lpc_event(sandbox, database_url, planned, now)
                    continue
                pairs = [(t.resource_id, t.location_id) for t in planned.targets]
                event = curve(sandbox, database_url, pairs, planned.starts,
                              created_at=now, price=planned.price)  # fmt: skip
                planned.event_id = event.event_id
            if now in month.arrivals:
                rows_ = [r.row() for r in month.arrivals[now]]
                path = write_readings(tmp_path / f"{now:%m%d%H}.csv", rows_)
                if importer := (importers or {}).get(now):
                    importer(now, path, played)
                else:
                    import_readings(database_url, path, now=now)
            if now == month.deleted_at:
                _delete(sandbox, database_url, month.deleted_user, now)
                played.deletions[month.deleted_user] = now
            if now == month.deferred_at:
                _delete(sandbox, database_url, month.deferred_user, now, "--at-month-end")
            sandbox.control.set_clock(now, frozen=True)
            interrupt = (interrupts or {}).get(now)
            if interrupt and (done := interrupt(now, played)):
                played.interrupts.append(done)
            cli_json(database_url, "reports", "send", "--due", "--now", utc(now), sandbox=sandbox)
            played.sweeps += 1
            # Beat's lpc.sweep_acks (every minute) and hourly users.run_due_deletions, at
            # the same `now`.
            with connect(database_url) as conn:
                ack.sweep(conn, now=now)
                ack.send_due(conn, client, now=now)
                for result in run_due_deletions(conn, client, now=now, tz=OSLO):
                    if result.outcome == "deleted":
                        played.deletions[result.user_id] = now
    played.faults.update(sandbox.control.report_faults()["drawn"])
    sandbox.control.clear_report_faults()
    return played


def mpid(user_id: str) -> str:
    return f"7070575{int(user_id[-3:]):011d}"


def _lpc_event(
    sandbox: SandboxHandle, database_url: str, planned: PlannedCurve, now: datetime
) -> str:
    """An LPC event made by the sandbox at `now` and stored as the worker's handler stores it
    (its acknowledgement planned); its id."""
    sandbox.control.set_clock(now, frozen=True)
    points = [{"maxPowerInKiloWatts": 3.5, "timestamp": utc(start)} for start in planned.starts]
    if planned.kind == "resource":
        path, key = "resources", "resources"
        items: list[dict[str, Any]] = [
            {"resource": {"locationId": t.location_id, "resourceId": t.resource_id,
                          "meterPointId": mpid(t.user_id)}, "points": points}
            for t in planned.targets
        ]  # fmt: skip
    else:
        path, key = "locations", "locations"
        homes = sorted({(t.location_id, mpid(t.user_id)) for t in planned.targets})
        items = [
            {"location": {"locationId": loc, "meterPointId": meter}, "points": points}
            for loc, meter in homes
        ]
    answer = sandbox.api("POST", f"/simulation/events/lpc/{path}", json={key: items})
    assert answer.status_code == 200, answer.text
    event = answer.json()["simulatedEvent"]
    kind: Kind = "resource" if planned.kind == "resource" else "location"
    event_id = store_lpc_event(
        database_url, kind, *event["payload"]["targets"], received_at=now, event_id=event["id"]
    )
    with connect(database_url) as conn, conn.transaction():
        plan_reaction(conn, event_id, within=timedelta(minutes=15), now=now)
    return event_id


def _delete(
    sandbox: SandboxHandle, database_url: str, user_id: str, now: datetime, *args: str
) -> None:
    cli_json(database_url, "users", "delete", user_id, "--yes", *args, "--now", utc(now),
             sandbox=sandbox)  # fmt: skip


# The independent computation


Key = tuple[str, str, str, datetime]  # event id, resource id, location id, period start


def _versions(month: Month) -> dict[str, list[tuple[datetime, Reading]]]:
    """Every reading id's versions in the order they were sent (the last one counts)."""
    versions: dict[str, list[tuple[datetime, Reading]]] = defaultdict(list)
    for arrival in sorted(month.arrivals):
        for item in month.arrivals[arrival]:
            versions[item.reading_id].append((arrival, item))
    return versions


def _owners(month: Month) -> dict[tuple[str, datetime], PlannedCurve]:
    """Which curve each (resource, period) belongs to: the newest that targets the resource
    and has the period (all periods here are whole hours, so a period is covered entirely
    or not at all)."""
    owners: dict[tuple[str, datetime], PlannedCurve] = {}
    for planned in sorted(month.curves, key=lambda c: c.created_at):
        for target in planned.targets:
            for start in planned.starts:
                owners[(target.resource_id, start.astimezone(UTC))] = planned
    return owners


def expected_energy(
    month: Month, built_at: dict[str, datetime], deletions: dict[str, datetime]
) -> dict[Key, float]:
    """Per (event, target, period), the kWh of the readings known when the event's report
    was built; periods without energy are left out, and so are the targets of a user deleted
    before the report was built (README: Spark refuses them, they are left out)."""
    by_resource: dict[str, list[Reading]] = defaultdict(list)
    known: dict[str, list[tuple[datetime, Reading]]] = _versions(month)
    for history in known.values():
        by_resource[history[0][1].target.resource_id].append(history[0][1])
    owners = _owners(month)
    energy: dict[Key, float] = defaultdict(float)
    for (resource_id, start), planned in owners.items():
        built = built_at.get(planned.event_id)
        if built is None:
            continue
        user_id = resource_id.rsplit("-", 1)[0]
        if user_id in deletions and built >= deletions[user_id]:
            continue
        for item in by_resource.get(resource_id, []):
            if not (start <= item.start and item.end <= start + HOUR):
                continue
            seen = [r for arrival, r in known[item.reading_id] if arrival <= built]
            if not seen:
                continue
            target = seen[-1].target
            energy[(planned.event_id, resource_id, target.location_id, start)] += seen[-1].kwh
    for planned in month.lpc:
        built = built_at.get(planned.event_id)
        if built is None:
            continue
        for target in planned.targets:
            for start in planned.starts:
                kwh = sum(
                    seen[-1].kwh
                    for item in by_resource.get(target.resource_id, [])
                    if start <= item.start and item.end <= start + planned.period
                    for seen in [[r for a, r in known[item.reading_id] if a <= built]]
                    if seen
                )
                resource_id = target.resource_id if planned.kind == "resource" else ""
                energy[(planned.event_id, resource_id, target.location_id, start)] += kwh
    return {key: kwh for key, kwh in energy.items() if kwh > 0}


@dataclass
class Outcome:
    events: int
    lpc_events: int
    acks: dict[str, int]
    lpc_points: int
    changed: int
    targets: int
    locations: int
    reports: int
    resent_bodies: int
    points: int
    kwh: float
    max_wait: timedelta
    waits: dict[str, timedelta]
    wrong: list[str]
    missing: list[Key]
    over: list[Key]
    duplicated: list[Key]
    after_deletion: list[str]
    statuses: Counter[str]
    lost_answers: int

    def summary(self, month: Month, played: Played) -> str:
        kinds = month.kinds
        deletions = ", ".join(
            f"{user} at {when:%m-%d %H:%M}Z" for user, when in sorted(played.deletions.items())
        )
        faults = ", ".join(f"{k} {v}" for k, v in sorted(played.faults.items()) if v)
        interrupts = "; ".join(played.interrupts) or "none"
        lines = [
            f"simulated month: October 2026 (Europe/Oslo, summer time ends on the 25th) into "
            f"November; days with curves {len(month.size.days)}, sweeps {played.sweeps}",
            f"targets: {len(month.targets)} resources at {len(month.users)} locations "
            f"({self.targets} and {self.locations} with energy reported), "
            f"{month.eligibility_changes} eligibility changes",
            f"events: {self.events} price curves ({self.changed} changed later the day), "
            f"{self.lpc_events} LPC events (resource, location): {sum(self.acks.values())} "
            f"acknowledgements",
            f"readings: {kinds['readings']} (15 min and 1 h); late {kinds['late']}, after the "
            f"report {kinds['after the report']}, silent {kinds['silent']}, sent again "
            f"{kinds['sent again']}, corrected {kinds['corrected']}, twice in one file "
            f"{kinds['twice in one file']}",
            f"reports accepted: {self.reports} (+{self.resent_bodies} identical re-sends after "
            f"lost answers or cut-off sends); ledger {dict(sorted(self.statuses.items()))}",
            f"energy: {self.points} (event, target, period) points ({self.lpc_points} of LPC "
            f"events), {self.kwh:.4f} kWh, "
            f"each equal to the independent sum (1e-6)",
            f"max wait from event end to acceptance: {self.max_wait / HOUR:.1f} h "
            f"(SPARK_REPORT_MAX_WAIT {MAX_WAIT / HOUR:.0f} h)",
            f"deletions: {deletions}; reported after deletion: {len(self.after_deletion)}",
            f"faults injected on POST /reports: {faults or 'none'}",
            f"sends cut off: {interrupts}",
            f"PostgreSQL restarts: {len(played.postgres_restarts)}"
            + "".join(f"; {restart}" for restart in played.postgres_restarts),
            f"lost {len(self.missing)}, over-reported {len(self.over)}, wrong "
            f"{len(self.wrong)}, duplicated {len(self.duplicated)}",
        ]
        return "\n".join(lines)


def check_month(sandbox: SandboxHandle, database_url: str, month: Month, played: Played) -> Outcome:
    ledger = rows(
        database_url,
        "SELECT event_id, part, status, built_at, attempts FROM reports"
        " WHERE kind IN ('energy', 'lpc_energy')",
    )
    built_at: dict[str, datetime] = {}
    for row in ledger:
        if row["built_at"] is not None:
            event_id = row["event_id"]
            built_at[event_id] = max(row["built_at"], built_at.get(event_id, row["built_at"]))
    record = sandbox.control.reports()
    accepted = [r for r in record["reports"] if r["kind"] == "energy"]
    acks = Counter(
        r["eventId"]
        for r in {r["rawBody"]: r for r in record["reports"]}.values()
        if r["kind"] == "acknowledgement"
    )
    # Distinct bodies: an identical body accepted again is the same report sent again after
    # a lost answer (the same Idempotency-Key); Spark counts the latest.
    bodies: dict[str, dict[str, Any]] = {}
    for report in accepted:
        bodies.setdefault(report["rawBody"], report)
    reported: dict[Key, list[float]] = defaultdict(list)
    first_accepted: dict[str, datetime] = {}
    after_deletion: list[str] = []
    for raw, report in bodies.items():
        event_id = report["eventId"]
        at = datetime.fromisoformat(report["createdAt"])
        first_accepted[event_id] = min(at, first_accepted.get(event_id, at))
        for payload in json.loads(raw)["payloads"]:
            for point in payload.get("points") or []:
                start = datetime.fromisoformat(point["timestamp"]).astimezone(UTC)
                resource_id = payload.get("resourceId", "")  # none in LocationEnergyUsage
                key = (event_id, resource_id, payload["locationId"], start)
                reported[key].append(float(point["kiloWattHours"]))
            for user, deleted in played.deletions.items():
                if payload["locationId"].startswith(user + "-") and at > deleted:
                    after_deletion.append(f"{event_id} {payload['resourceId']} at {at}")
    expected = expected_energy(month, built_at, played.deletions)
    wrong = [
        f"{key}: reported {values}, expected {expected[key]}"
        for key, values in reported.items()
        if key in expected and abs(values[0] - expected[key]) > EXACT
    ]
    over = [k for k, v in reported.items() if k not in expected and any(x > EXACT for x in v)]
    missing = [key for key in expected if key not in reported]
    duplicated = [key for key, values in reported.items() if len(values) > 1]
    ends = {c.event_id: c.end for c in month.curves + month.lpc}
    waits = {e: at - ends[e] for e, at in first_accepted.items()}
    return Outcome(
        events=len(month.curves),
        lpc_events=len(month.lpc),
        acks=dict(acks),
        changed=sum(c.changed for c in month.curves),
        targets=len({k[1] for k in reported if k[1]}),
        lpc_points=sum(1 for k in reported if k[0] in {c.event_id for c in month.lpc}),
        locations=len({k[2] for k in reported}),
        reports=len(bodies),
        resent_bodies=len(accepted) - len(bodies),
        points=sum(1 for v in reported.values() if v[0] > 0),
        kwh=sum(v[0] for v in reported.values()),
        max_wait=max(waits.values()),
        waits=waits,
        wrong=wrong,
        missing=missing,
        over=over,
        duplicated=duplicated,
        after_deletion=after_deletion,
        statuses=Counter(row["status"] for row in ledger),
        lost_answers=record["lostAnswers"],
    )


def assert_month(outcome: Outcome, month: Month, played: Played, attempts: dict[str, int]) -> None:
    """What the month must show: every (event, target, period) with energy reported once and
    exactly; nothing over-reported or reported for a user after their deletion; every report
    accepted within SPARK_REPORT_MAX_WAIT of its event's end plus an hour per attempt (the
    sweeps run hourly; a failed attempt waits for the next); none missed."""
    assert outcome.wrong == []
    assert outcome.missing == []
    assert outcome.over == []
    assert outcome.duplicated == []
    assert outcome.after_deletion == []
    # Each LPC event acknowledged once (identical re-sends after a lost answer aside).
    assert outcome.acks == {planned.event_id: 1 for planned in month.lpc}
    assert set(outcome.statuses) <= {"sent", "empty"}, outcome.statuses
    late = {
        event_id: wait
        for event_id, wait in outcome.waits.items()
        if wait > MAX_WAIT + HOUR * attempts[event_id]
    }
    assert late == {}
    assert set(played.deletions) == {month.deleted_user, month.deferred_user}
    assert played.deletions[month.deleted_user] == month.deleted_at
    # The deferred user goes once October is over everywhere: UTC's month end plus the grace.
    assert played.deletions[month.deferred_user] >= datetime(2026, 11, 2, tzinfo=UTC)


def attempts_by_event(database_url: str) -> dict[str, int]:
    """The POST attempts of each event's energy report(s), from the ledger."""
    found = rows(
        database_url,
        "SELECT event_id, max(attempts) AS attempts FROM reports"
        " WHERE kind IN ('energy', 'lpc_energy')"
        " GROUP BY event_id",
    )
    return {row["event_id"]: int(row["attempts"]) for row in found}
