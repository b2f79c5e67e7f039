"""Sending due plans to the dispatcher, with every decision kept in PostgreSQL.

Plans come in kinds (`PlanKind`): a price curve's plan per target (`CURVE_PLANS`, table
curve_dispatches) and an LPC event's caps per target (`worker.lpc.dispatch.LPC_PLANS`, table
lpc_dispatches). Each kind brings its own queries; the run below (claim, lease, call,
backoff, record) is the same for all.

1. One run at a time, under an advisory lock: however many dispatch tasks are queued, a
   hanging control system holds one worker process, never the ones that store events.
2. The run claims due decisions in batches of one kind (`FOR UPDATE SKIP LOCKED`, then
   'sending' with a lease), the first kind with any due first (worker.plan_kinds orders them:
   LPC before curves, since an acknowledgement waits on LPC answers), computes each target's
   plan, and ends the transaction.
3. It calls the dispatcher outside any transaction, then records each outcome: sent;
   skipped (nothing left to say); pending again with a backoff; or failed with the reason
   after the last attempt. A batch whose plans could not be computed (PostgreSQL went away
   after the claim) is handed back at once as such a failed attempt, not left leased. A
   worker that dies mid-call leaves 'sending' rows whose lease expires, and they are claimed
   again. So does an outcome that could not be recorded, and the control system then gets
   those plans twice: a database error while recording is retried, on a new connection if
   the old one broke, until the lease runs out (a PostgreSQL that hung past
   `statement_timeout` cancels the statement it was running when it wakes up;
   tests/faults/test_postgres_hung.py met it).
4. Outcomes for a revision that a newer curve replaced meanwhile are dropped; the new
   revision is sent by this or the next run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import psycopg
from celery.exceptions import SoftTimeLimitExceeded
from psycopg.rows import DictRow

from shared.backoff import backoff_seconds
from shared.config import CurveSettings
from shared.db import (
    Connection,
    connect,
    connection,
    execute,
    fetch_all,
    fetch_one,
    record_with_retries,
)
from shared.timeutil import utcnow
from worker.curves.dispatchers import Dispatcher, Outcome, Plan, describe
from worker.curves.plans import TargetPlan, plans_for_targets
from worker.curves.store import NO_PERIODS_REASON

log = logging.getLogger(__name__)

# Any constant works; it only has to differ from the other advisory locks (migrations).
DISPATCH_LOCK_KEY = 0x5BA2C0E5
MAX_RETRY_DELAY = timedelta(hours=1)
CUT_OFF_REASON = "cut off by the task's time limit"

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    first_delay: timedelta
    max_delay: timedelta = MAX_RETRY_DELAY

    @classmethod
    def from_settings(cls, settings: CurveSettings) -> RetryPolicy:
        return cls(
            settings.dispatch_max_attempts, timedelta(seconds=settings.dispatch_retry_seconds)
        )

    def delay(self, attempts: int) -> timedelta:
        """After the `attempts`-th failure: up to the first delay, doubled each time, capped;
        with full jitter (shared/backoff.py)."""
        seconds = backoff_seconds(
            attempts,
            base=self.first_delay.total_seconds(),
            cap=self.max_delay.total_seconds(),
        )
        return timedelta(seconds=seconds)


@dataclass
class DispatchReport:
    # Another run held the lock; it sends whatever is due, this run's work included.
    busy: bool = False
    batches: int = 0
    sent: int = 0
    skipped: int = 0
    retrying: int = 0
    failed: int = 0
    # The time budget ran out with work left.
    more: bool = False
    next_due_at: datetime | None = None
    # LPC events whose every plan has an answer now: their acknowledgements are due.
    answered: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Decision:
    """What became of one claimed decision row (the kind's own claim row)."""

    row: DictRow
    status: str
    reason: str | None
    next_attempt_at: datetime

    @property
    def event_id(self) -> str:
        event_id: str = self.row["event_id"]
        return event_id


class PlanKind(Protocol):
    """One kind of plan: its decision table's queries and how a claimed row becomes a plan."""

    name: str

    def claim(
        self, conn: Connection, *, now: datetime, lease_until: datetime, limit: int, dispatcher: str
    ) -> list[DictRow]: ...

    def plans(self, conn: Connection, claimed: list[DictRow]) -> list[tuple[DictRow, Plan | str]]:
        """Each claimed row's plan, or the reason to skip it (nothing to say)."""
        ...

    def record(self, conn: Connection, decisions: list[Decision], now: datetime) -> list[str]:
        """Record the outcomes (in the caller's transaction); the LPC events now answered."""
        ...

    def next_due(self, conn: Connection) -> datetime | None: ...

    def target(self, row: DictRow) -> str:
        """The target of a decision row, for log lines."""
        ...


def run_dispatch(
    database_url: str,
    dispatcher: Dispatcher,
    policy: RetryPolicy,
    *,
    kinds: Sequence[PlanKind],
    batch_size: int,
    lease: timedelta,
    budget_seconds: float = 120.0,
    clock: Clock = utcnow,
) -> DispatchReport:
    """Send what is due of `kinds` (worker.plan_kinds.PLAN_KINDS: every kind)."""
    report = DispatchReport()
    started = time.monotonic()
    # The lock's own connection, outside the pool: closing it (or the process dying) frees
    # the lock, and it never holds a transaction open.
    with connect(database_url, autocommit=True) as lock_conn, connection(database_url) as conn:
        while not report.more:
            if not _lock(lock_conn):
                report.busy = True
                break
            claimed_any = False
            try:
                while True:
                    if time.monotonic() - started > budget_seconds:
                        report.more = True
                        break
                    kind, claimed = _claim(
                        conn,
                        kinds,
                        dispatcher=dispatcher,
                        batch_size=batch_size,
                        lease=lease,
                        clock=clock,
                    )
                    if not claimed:
                        break
                    claimed_any = True
                    _dispatch_batch(
                        database_url,
                        conn,
                        kind,
                        dispatcher,
                        claimed,
                        lease=lease,
                        policy=policy,
                        clock=clock,
                        report=report,
                    )
            finally:
                fetch_one(lock_conn, "release_dispatch_lock", {"key": DISPATCH_LOCK_KEY})
            # Work committed while this run held the lock may have found it busy: look again
            # after letting go. Stop when a pass finds nothing it can claim.
            if not claimed_any or not _due(conn, kinds, clock()):
                break
        report.next_due_at = _next_due(conn, kinds)
    return report


def _lock(lock_conn: Connection) -> bool:
    row = fetch_one(lock_conn, "try_dispatch_lock", {"key": DISPATCH_LOCK_KEY})
    return bool(row and row["locked"])


def _claim(
    conn: Connection,
    kinds: Sequence[PlanKind],
    *,
    dispatcher: Dispatcher,
    batch_size: int,
    lease: timedelta,
    clock: Clock,
) -> tuple[PlanKind, list[DictRow]]:
    """A batch of the first kind with any due, looked for again before every batch: LPC plans
    stored while a large curve goes out do not wait for all of it."""
    now = clock()
    for kind in kinds:
        with conn.transaction():
            claimed = kind.claim(
                conn, now=now, lease_until=now + lease, limit=batch_size, dispatcher=dispatcher.name
            )
        if claimed:
            return kind, claimed
    return kinds[0], []


def _next_due(conn: Connection, kinds: Sequence[PlanKind]) -> datetime | None:
    times = [due for kind in kinds if (due := kind.next_due(conn)) is not None]
    conn.commit()
    return min(times) if times else None


def _due(conn: Connection, kinds: Sequence[PlanKind], now: datetime) -> bool:
    due = _next_due(conn, kinds)
    return due is not None and due <= now


def _dispatch_batch(
    database_url: str,
    conn: Connection,
    kind: PlanKind,
    dispatcher: Dispatcher,
    claimed: list[DictRow],
    *,
    lease: timedelta,
    policy: RetryPolicy,
    clock: Clock,
    report: DispatchReport,
) -> None:
    lease_ends = time.monotonic() + lease.total_seconds()
    try:
        planned = kind.plans(conn, claimed)
        # No transaction stays open while the dispatcher is called.
        conn.commit()
    except Exception as exc:
        _hand_back(
            database_url, conn, kind, claimed, exc, policy=policy, clock=clock, until=lease_ends
        )
        raise
    decisions: list[Decision] = []
    to_send: list[tuple[DictRow, Plan]] = []
    for row, plan in planned:
        if isinstance(plan, str):
            decisions.append(Decision(row, "skipped", plan, clock()))
        else:
            to_send.append((row, plan))
    outcomes, cut_off = _call(dispatcher, [plan for _, plan in to_send])
    now = clock()
    for (row, _), outcome in zip(to_send, outcomes, strict=True):
        decisions.append(_after(row, outcome, policy, now))
    report.answered.extend(_record(database_url, conn, kind, decisions, now, until=lease_ends))
    _count(report, kind, decisions)
    report.batches += 1
    log.info(
        "dispatched %d %s plan(s) via %s: %d sent, %d skipped, %d to retry, %d failed",
        len(claimed),
        kind.name,
        dispatcher.name,
        *(sum(d.status == s for d in decisions) for s in ("sent", "skipped", "pending", "failed")),
    )
    if cut_off:
        raise SoftTimeLimitExceeded(CUT_OFF_REASON)


def _record(
    database_url: str,
    conn: Connection,
    kind: PlanKind,
    decisions: list[Decision],
    now: datetime,
    *,
    until: float,
) -> list[str]:
    """Records the decisions, again on a database error until the lease ends (monotonic
    `until`), on a connection from the pool if the run's own one broke."""

    def record() -> list[str]:
        with _usable(conn, database_url) as usable, usable.transaction():
            return kind.record(usable, decisions, now)

    return record_with_retries(record, until=until)


def _hand_back(
    database_url: str,
    conn: Connection,
    kind: PlanKind,
    claimed: list[DictRow],
    exc: Exception,
    *,
    policy: RetryPolicy,
    clock: Clock,
    until: float,
) -> None:
    """Records a batch whose plans could not be computed (PostgreSQL went away meanwhile) as
    an attempt that failed before any call: pending again after the policy's backoff, not
    leased until `until`. Left leased, nothing but beat's sweep looks at it again, up to a
    minute after the lease (100 s by default) runs out: an LPC cap would wait that long."""
    if not conn.closed:
        # The failed statement's transaction, if the connection survived it; if the rollback
        # breaks it, the record below takes a pooled one.
        with suppress(psycopg.Error):
            conn.rollback()
    now = clock()
    reason = f"not sent: the plan could not be computed ({describe(exc)})"
    decisions = [_after(row, Outcome(False, reason), policy, now) for row in claimed]
    _record(database_url, conn, kind, decisions, now, until=until)
    log.warning("%d %s plan(s) handed back unsent: %s", len(claimed), kind.name, reason)


def _usable(conn: Connection, database_url: str) -> AbstractContextManager[Connection]:
    """The run's connection, or one from the pool if it broke (PostgreSQL restarted)."""
    return nullcontext(conn) if not conn.closed else connection(database_url)


def _call(dispatcher: Dispatcher, plans: list[Plan]) -> tuple[list[Outcome], bool]:
    """The dispatcher's outcomes, one per plan, whatever it does; and whether the task's time
    limit cut it off."""
    if not plans:
        return [], False
    try:
        outcomes = dispatcher.dispatch(plans)
    except SoftTimeLimitExceeded:
        return [Outcome(False, CUT_OFF_REASON)] * len(plans), True
    except Exception as exc:
        log.exception("dispatcher %s failed on %d plan(s)", dispatcher.name, len(plans))
        return [Outcome(False, describe(exc))] * len(plans), False
    if len(outcomes) != len(plans):
        reason = f"dispatcher returned {len(outcomes)} outcome(s) for {len(plans)} plan(s)"
        return [Outcome(False, reason)] * len(plans), False
    return outcomes, False


def _after(row: DictRow, outcome: Outcome, policy: RetryPolicy, now: datetime) -> Decision:
    attempts: int = row["attempts"]
    if outcome.sent:
        return Decision(row, "sent", None, now)
    reason = outcome.reason or "failed without a reason"
    if not outcome.retry or attempts >= policy.max_attempts:
        return Decision(row, "failed", f"{reason} (attempt {attempts})", now)
    return Decision(row, "pending", f"{reason} (attempt {attempts})", now + policy.delay(attempts))


def _count(report: DispatchReport, kind: PlanKind, decisions: list[Decision]) -> None:
    for decision in decisions:
        if decision.status == "sent":
            report.sent += 1
        elif decision.status == "skipped":
            report.skipped += 1
        elif decision.status == "pending":
            report.retrying += 1
        else:
            report.failed += 1
    failed = [d for d in decisions if d.status == "failed"]
    if failed:
        log.error(
            "%d plan(s) finally failed, e.g. %s %s target %s: %s",
            len(failed),
            kind.name,
            failed[0].event_id,
            kind.target(failed[0].row),
            failed[0].reason,
        )
    retrying = [d for d in decisions if d.status == "pending"]
    if retrying:
        log.warning(
            "%d plan(s) will be retried from %s: %s",
            len(retrying),
            min(d.next_attempt_at for d in retrying).isoformat(),
            retrying[0].reason,
        )


class CurvePlans:
    """A price curve's plan per target (curve_dispatches), computed from the curve tables each
    time it is sent, so it reflects supersession."""

    name = "curve"

    def claim(
        self, conn: Connection, *, now: datetime, lease_until: datetime, limit: int, dispatcher: str
    ) -> list[DictRow]:
        return fetch_all(
            conn,
            "claim_due_dispatches",
            {"now": now, "lease_until": lease_until, "limit": limit, "dispatcher": dispatcher},
        )

    def plans(self, conn: Connection, claimed: list[DictRow]) -> list[tuple[DictRow, Plan | str]]:
        by_event: dict[str, list[DictRow]] = {}
        for row in claimed:
            by_event.setdefault(row["event_id"], []).append(row)
        planned: list[tuple[DictRow, Plan | str]] = []
        for event_id, rows in by_event.items():
            targets = [(row["resource_id"], row["location_id"]) for row in rows]
            for row, plan in zip(rows, plans_for_targets(conn, event_id, targets), strict=True):
                # Nothing left in force and nothing said before: nothing to withdraw either.
                if not plan.periods and row["sent_revision"] is None:
                    planned.append((row, _skip_reason(plan)))
                else:
                    planned.append((row, plan.with_revision(row["revision"])))
        return planned

    def record(self, conn: Connection, decisions: list[Decision], now: datetime) -> list[str]:
        execute(
            conn,
            "finish_dispatches",
            {
                "now": now,
                "event_ids": [d.event_id for d in decisions],
                "resource_ids": [d.row["resource_id"] for d in decisions],
                "location_ids": [d.row["location_id"] for d in decisions],
                "revisions": [d.row["revision"] for d in decisions],
                "statuses": [d.status for d in decisions],
                "reasons": [d.reason for d in decisions],
                "next_attempts": [d.next_attempt_at for d in decisions],
            },
        )
        return []

    def next_due(self, conn: Connection) -> datetime | None:
        row = fetch_one(conn, "next_dispatch_due")
        return row["due_at"] if row else None

    def target(self, row: DictRow) -> str:
        return f"{row['resource_id']}/{row['location_id']}"


CURVE_PLANS = CurvePlans()


def _skip_reason(plan: TargetPlan) -> str:
    newer = sorted({p.superseded_by for p in plan.superseded})
    if not newer:
        return NO_PERIODS_REASON
    return "every period is superseded by newer curve(s) " + ", ".join(newer)
