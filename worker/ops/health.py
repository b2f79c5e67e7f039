"""What `spark-partner status` and `spark-partner serve-metrics` look at, gathered once.

`gather` reads Redis (queues, beat's heartbeat), asks the workers for a ping and reads the
ledgers in PostgreSQL; `judge` turns that into lines that each say ok, warn or act.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import redis

from shared.config import Settings
from shared.db import Connection, fetch_all, fetch_one
from worker.ops.beat import last_beat_tick
from worker.ops.marks import DELIVERY_LOG_CHECK, Mark, marks
from worker.ops.queues import QueueState, queue_states
from worker.reports.deadlines import (
    MonthDeadline,
    describe_time_left,
    month_deadlines,
)
from worker.reports.ledger import ReportRules

OK, WARN, ACT = "ok", "warn", "act"
LEVELS = (OK, WARN, ACT)

# Beat ticks at least every 20 s (beat_max_loop_interval): three missed ticks mean it is gone.
BEAT_SILENT_AFTER = timedelta(seconds=45)
QUEUE_WARN_AGE = timedelta(minutes=5)
QUEUE_ACT_AGE = timedelta(minutes=30)
# Beat runs the backfill every 15 minutes; two missed runs are worth a look.
BACKFILL_WARN_AGE = timedelta(minutes=35)
DELIVERY_LOG_WARN_AGE = timedelta(minutes=35)
# Spark sends at least a price curve a day to a partner with enrolled users.
WEBHOOK_WARN_AGE = timedelta(hours=26)
# The full reconcile runs daily.
RECONCILE_WARN_AGE = timedelta(hours=26)
RECONCILE_LATE = timedelta(minutes=10)
REPORT_ACT_BEFORE = timedelta(hours=6)
REPORT_WARN_BEFORE = timedelta(hours=24)
PING_TIMEOUT = 1.0
# Spark asks for an LPC acknowledgement "as soon as possible"; after this it is late.
LPC_ACK_ACT_AFTER = timedelta(minutes=15)


@dataclass
class Snapshot:
    now: datetime
    tomorrow: date
    local_now: datetime
    errors: dict[str, str] = field(default_factory=dict)
    queues: list[QueueState] = field(default_factory=list)
    workers: list[str] | None = None
    beat_tick: datetime | None = None
    marks: dict[str, Mark] = field(default_factory=dict)
    last_webhook: datetime | None = None
    last_backfill: dict[str, Any] | None = None
    events_24h: dict[str, int] = field(default_factory=dict)
    dead_letters_open: int = 0
    dead_letters_total: int = 0
    conflicts_24h: int = 0
    users_eligible: int = 0
    users_enrolled: int = 0
    last_reconcile: dict[str, Any] | None = None
    reconcile_waiting_due_at: datetime | None = None
    tomorrow_areas: list[str] = field(default_factory=list)
    tomorrow_check: str | None = None
    tomorrow_missing: list[str] = field(default_factory=list)
    last_curve_at: datetime | None = None
    failed_plans: int = 0
    failed_plan_curves: int = 0
    months: list[MonthDeadline] = field(default_factory=list)
    compensation_problems: int = 0
    compensation_problem_users: int = 0
    lpc_unacknowledged: int = 0
    lpc_oldest_unacknowledged: datetime | None = None

    @property
    def database_ok(self) -> bool:
        return "database" not in self.errors

    def webhook_healthy(self) -> bool | None:
        """Spark's view of our webhook, as the delivery-log check last recorded it."""
        check = self.marks.get(DELIVERY_LOG_CHECK)
        if check is None or not check.detail or "webhook_healthy" not in check.detail:
            return None
        return bool(check.detail["webhook_healthy"])


def ping_workers(settings: Settings, timeout: float = PING_TIMEOUT) -> list[str]:
    """The workers on this Redis that answer a ping within `timeout` seconds."""
    from celery import Celery

    # An app of its own, on the configured Redis: the worker app is configured once per
    # process, from whatever environment it was first imported in.
    app = Celery("spark_partner_status", broker=settings.redis_url, set_as_current=False)
    try:
        replies = app.control.ping(timeout=timeout) or []
    finally:
        app.close()
    return sorted(name for reply in replies for name in reply)


def gather(
    settings: Settings,
    conn: Connection | None,
    client: redis.Redis,
    *,
    now: datetime,
    ping: Callable[[Settings], list[str]] = ping_workers,
) -> Snapshot:
    local_now = now.astimezone(settings.timezone)
    snapshot = Snapshot(now=now, tomorrow=local_now.date() + timedelta(days=1), local_now=local_now)
    try:
        snapshot.queues = queue_states(client)
        snapshot.beat_tick = last_beat_tick(client)
    except redis.RedisError as exc:
        snapshot.errors["redis"] = _error(exc)
    try:
        snapshot.workers = ping(settings)
    except Exception as exc:  # any broker failure: the workers' state is then unknown
        snapshot.errors["workers"] = _error(exc)
    if conn is None:
        snapshot.errors.setdefault("database", "not reachable")
        return snapshot
    try:
        with conn.transaction():
            _read_ledgers(conn, settings, snapshot)
        snapshot.months = month_deadlines(conn, ReportRules.from_settings(settings), now=now)
    except Exception as exc:  # a database error must show as a line, not stop the rest
        snapshot.errors["database"] = _error(exc)
    return snapshot


def _error(exc: BaseException) -> str:
    first = (str(exc).splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"


def _one(conn: Connection, name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    row = fetch_one(conn, name, params)
    assert row is not None  # aggregates always answer one row
    return dict(row)


def _read_ledgers(conn: Connection, settings: Settings, snapshot: Snapshot) -> None:
    now = snapshot.now
    since = now - timedelta(hours=24)
    snapshot.marks = marks(conn)
    snapshot.last_webhook = _one(conn, "ops_last_webhook")["at"]
    row = fetch_one(conn, "ops_last_backfill")
    snapshot.last_backfill = dict(row) if row else None
    events = fetch_all(conn, "ops_events_by_status", {"since": since})
    snapshot.events_24h = {r["status"]: int(r["n"]) for r in events}
    dead = _one(conn, "ops_dead_letters")
    snapshot.dead_letters_open, snapshot.dead_letters_total = int(dead["open"]), int(dead["total"])
    snapshot.conflicts_24h = int(_one(conn, "ops_delivery_conflicts", {"since": since})["n"])
    users = _one(conn, "ops_users")
    snapshot.users_eligible = int(users["eligible"])
    snapshot.users_enrolled = int(users["enrolled"])
    reconcile = _one(conn, "ops_last_reconcile")
    snapshot.last_reconcile = reconcile["last"]
    snapshot.reconcile_waiting_due_at = reconcile["oldest_waiting_due_at"]
    curves = _one(conn, "ops_curves_for_day", {"day": snapshot.tomorrow})
    snapshot.tomorrow_areas = list(curves["areas"])
    snapshot.tomorrow_check = curves["check_status"]
    snapshot.tomorrow_missing = list(curves["missing_areas"] or [])
    snapshot.last_curve_at = curves["last_curve_at"]
    plans = _one(conn, "ops_failed_plans", {"now": now})
    snapshot.failed_plans, snapshot.failed_plan_curves = int(plans["n"]), int(plans["curves"])
    problems = _one(conn, "ops_compensation_problems", {"now": now, "tz": str(settings.timezone)})
    snapshot.compensation_problems = int(problems["n"])
    snapshot.compensation_problem_users = int(problems["users"])
    lpc = _one(conn, "ops_lpc_unacknowledged", {"now": now})
    snapshot.lpc_unacknowledged = int(lpc["n"])
    snapshot.lpc_oldest_unacknowledged = lpc["oldest"]


@dataclass(frozen=True)
class Line:
    name: str
    level: str
    summary: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "level": self.level, "summary": self.summary, **self.data}


def overall(lines: list[Line]) -> str:
    return max((line.level for line in lines), key=LEVELS.index, default=OK)


def exit_code(lines: list[Line]) -> int:
    return LEVELS.index(overall(lines))


def _age(now: datetime, at: datetime | None) -> timedelta | None:
    return None if at is None else max(now - at, timedelta(0))


def _ago(age: timedelta | None) -> str:
    if age is None:
        return "never"
    seconds = int(age.total_seconds())
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def _seconds(age: timedelta | None) -> float | None:
    return None if age is None else age.total_seconds()


def judge(snapshot: Snapshot, settings: Settings) -> list[Line]:
    now = snapshot.now
    lines: list[Line] = []
    for source, error in snapshot.errors.items():
        lines.append(Line(f"{source} reachable", ACT, f"cannot read: {error}"))

    for queue in snapshot.queues:
        age = _age(now, queue.oldest_sent_at)
        level = OK
        if age is not None and queue.depth:
            level = ACT if age >= QUEUE_ACT_AGE else WARN if age >= QUEUE_WARN_AGE else OK
        oldest = f", oldest waiting since {_ago(age)}" if queue.depth and age is not None else ""
        lines.append(
            Line(
                f"queue {queue.name}",
                level,
                f"{queue.depth} waiting{oldest}",
                {"depth": queue.depth, "oldestAgeSeconds": _seconds(age) if queue.depth else None},
            )
        )

    if snapshot.workers is not None:
        workers = snapshot.workers
        lines.append(
            Line(
                "workers",
                ACT if not workers else OK,
                f"{len(workers)} answer ping: {', '.join(workers)}"
                if workers
                else "no worker answers ping",
                {"workers": workers},
            )
        )

    if "redis" not in snapshot.errors:
        age = _age(now, snapshot.beat_tick)
        silent = age is None or age > BEAT_SILENT_AFTER
        lines.append(
            Line(
                "beat",
                ACT if silent else OK,
                f"last tick {_ago(age)}" + (" (beat is silent)" if silent else ""),
                {"lastTick": snapshot.beat_tick, "ageSeconds": _seconds(age)},
            )
        )

    if snapshot.database_ok:
        lines.extend(_ledger_lines(snapshot, settings))
    return lines


def _ledger_lines(snapshot: Snapshot, settings: Settings) -> list[Line]:
    now = snapshot.now
    lines: list[Line] = []

    age = _age(now, snapshot.last_webhook)
    lines.append(
        Line(
            "last webhook",
            WARN if age is not None and age > WEBHOOK_WARN_AGE else OK,
            f"received {_ago(age)}" if age is not None else "none received yet",
            {"at": snapshot.last_webhook, "ageSeconds": _seconds(age)},
        )
    )

    backfill = snapshot.last_backfill
    started = backfill["started_at"] if backfill else None
    age = _age(now, started)
    if backfill is None:
        level, summary = WARN, "never ran"
    elif backfill["error"]:
        level, summary = WARN, f"ran {_ago(age)} and failed: {backfill['error']}"
    else:
        level = WARN if age is not None and age > BACKFILL_WARN_AGE else OK
        summary = f"ran {_ago(age)}, queued {backfill['enqueued']}"
    lines.append(
        Line("last backfill", level, summary, {"at": started, "ageSeconds": _seconds(age)})
    )

    lines.append(_delivery_log_line(snapshot))

    events = snapshot.events_24h
    counts = ", ".join(f"{status} {n}" for status, n in sorted(events.items())) or "none"
    lines.append(
        Line(
            "events (24 h)",
            WARN if events.get("failed") else OK,
            counts,
            {"byStatus": events},
        )
    )

    lines.append(
        Line(
            "dead letters",
            ACT if snapshot.dead_letters_open else OK,
            f"{snapshot.dead_letters_open} not replayed ({snapshot.dead_letters_total} in all)",
            {"open": snapshot.dead_letters_open, "total": snapshot.dead_letters_total},
        )
    )
    lines.append(
        Line(
            "delivery conflicts (24 h)",
            WARN if snapshot.conflicts_24h else OK,
            f"{snapshot.conflicts_24h} deliveries whose body differs from the stored event's",
            {"count": snapshot.conflicts_24h},
        )
    )

    reconcile = snapshot.last_reconcile
    finished = datetime.fromisoformat(reconcile["finished_at"]) if reconcile else None
    age = _age(now, finished)
    waiting = snapshot.reconcile_waiting_due_at
    late = waiting is not None and now - waiting > RECONCILE_LATE
    if reconcile and reconcile["status"] == "failed":
        level, summary = ACT, f"last reconcile failed {_ago(age)}: {reconcile['error']}"
    elif late:
        level, summary = WARN, f"a reconcile due {_ago(_age(now, waiting))} has not run"
    elif reconcile is None:
        level, summary = OK, "no reconcile yet"
    else:
        level = WARN if age is not None and age > RECONCILE_WARN_AGE else OK
        summary = f"last reconcile {_ago(age)}"
    lines.append(
        Line(
            "users and reconcile",
            level,
            f"{snapshot.users_eligible} eligible, {snapshot.users_enrolled} enrolled; {summary}",
            {
                "eligible": snapshot.users_eligible,
                "enrolled": snapshot.users_enrolled,
                "lastReconcileAt": finished,
                "lastReconcileStatus": reconcile["status"] if reconcile else None,
            },
        )
    )

    lines.append(_curve_line(snapshot, settings))

    lines.append(
        Line(
            "dispatch plans failed",
            ACT if snapshot.failed_plans else OK,
            f"{snapshot.failed_plans} failed plans of {snapshot.failed_plan_curves} curves "
            "still in force (curves redispatch EVENT_ID)"
            if snapshot.failed_plans
            else "none",
            {"failed": snapshot.failed_plans, "curves": snapshot.failed_plan_curves},
        )
    )

    for month in snapshot.months:
        lines.append(_month_line(month, now))

    lines.append(
        Line(
            "compensation problems",
            WARN if snapshot.compensation_problems else OK,
            f"{snapshot.compensation_problems} locations of "
            f"{snapshot.compensation_problem_users} users this month"
            if snapshot.compensation_problems
            else "none this month",
            {
                "locations": snapshot.compensation_problems,
                "users": snapshot.compensation_problem_users,
            },
        )
    )
    lines.append(_lpc_line(snapshot))
    return lines


def _lpc_line(snapshot: Snapshot) -> Line:
    count = snapshot.lpc_unacknowledged
    age = _age(snapshot.now, snapshot.lpc_oldest_unacknowledged)
    if not count:
        level, summary = OK, "none in the last 7 days"
    else:
        level = ACT if age is not None and age >= LPC_ACK_ACT_AFTER else WARN
        summary = (
            f"{count} resource/location event(s) of the last 7 days, oldest received "
            f"{_ago(age)}, not yet accepted by Spark: see spark-partner lpc show EVENT_ID"
        )
    return Line(
        "LPC events unacknowledged",
        level,
        summary,
        {"events": count, "oldestAgeSeconds": _seconds(age)},
    )


def _delivery_log_line(snapshot: Snapshot) -> Line:
    now = snapshot.now
    check = snapshot.marks.get(DELIVERY_LOG_CHECK)
    age = _age(now, check.at if check else None)
    healthy = snapshot.webhook_healthy()
    detail = (check.detail if check else None) or {}
    if check is None:
        level, summary = OK, "never ran"
    elif healthy is False:
        level, summary = ACT, f"ran {_ago(age)}: Spark reports our webhook as not healthy"
    elif detail.get("error"):
        level, summary = WARN, f"ran {_ago(age)} and stopped: {detail['error']}"
    else:
        level = WARN if age is not None and age > DELIVERY_LOG_WARN_AGE else OK
        summary = (
            f"ran {_ago(age)}, recovered {int(detail.get('recovered') or 0)} "
            f"({int(detail.get('recovered_total') or 0)} in all)"
        )
    return Line(
        "last delivery-log check",
        level,
        summary,
        {
            "at": check.at if check else None,
            "ageSeconds": _seconds(age),
            "detail": check.detail if check else None,
            "webhookHealthy": healthy,
        },
    )


def _curve_line(snapshot: Snapshot, settings: Settings) -> Line:
    curves = settings.curves
    local_time = snapshot.local_now.time()
    day = snapshot.tomorrow.isoformat()
    data: dict[str, Any] = {
        "date": day,
        "present": bool(snapshot.tomorrow_areas),
        "areas": snapshot.tomorrow_areas,
        "check": snapshot.tomorrow_check,
        "missingAreas": snapshot.tomorrow_missing,
    }
    expected = set(curves.expected_areas)
    missing_expected = sorted(expected - set(snapshot.tomorrow_areas))
    if snapshot.tomorrow_check == "missing":
        return Line(
            "tomorrow's curve",
            ACT,
            f"missing for {day}: {', '.join(snapshot.tomorrow_missing)}",
            data,
        )
    if snapshot.tomorrow_areas and not missing_expected:
        return Line(
            "tomorrow's curve", OK, f"present for {day}: {', '.join(snapshot.tomorrow_areas)}", data
        )
    if missing_expected and local_time >= curves.check_until:
        level = ACT
    elif missing_expected and local_time >= curves.check_time:
        level = WARN
    else:
        level = OK
    summary = f"not yet for {day}" + (
        f" (expected: {', '.join(missing_expected)})" if missing_expected else ""
    )
    return Line("tomorrow's curve", level, summary, data)


def _month_line(month: MonthDeadline, now: datetime) -> Line:
    counts = {status: n for status, n in month.counts.items() if n}
    described = ", ".join(f"{status} {n}" for status, n in counts.items()) or "none"
    # Spark does not say whether it counts the month in the area's zone or in UTC: the
    # earlier of the two ends (the aim the sweeps work to) is the one that can be missed.
    left = month.aim - now
    if month.counts["missed"] or (month.open and left <= REPORT_ACT_BEFORE):
        level = ACT
    elif (month.open and left <= REPORT_WARN_BEFORE) or month.counts["rejected"]:
        level = WARN
    else:
        level = OK
    deadline = f"; deadline {month.aim.isoformat()}, {describe_time_left(left)}"
    return Line(
        f"reports {month.month:%Y-%m} {month.zone}",
        level,
        described + (deadline if month.open else ""),
        {**month.to_json(), "secondsToAim": left.total_seconds()},
    )


def redis_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=3)


def snapshot_now(settings: Settings, now: datetime) -> Snapshot:
    """Everything, read now, on a connection of its own (no pool: a scrape every 15 s or a
    status command in cron needs no connection kept open, nor a pool's retries when the
    database is down)."""
    from shared.db import connect

    client = redis_client(settings)
    try:
        try:
            conn = connect(settings.database_url)
        except Exception as exc:  # the database is down or refuses us: an act line
            snapshot = gather(settings, None, client, now=now)
            snapshot.errors["database"] = _error(exc)
            return snapshot
        with conn:
            return gather(settings, conn, client, now=now)
    finally:
        client.close()
