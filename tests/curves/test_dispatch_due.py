"""A dispatch run (what `curves.dispatch_curve` and `curves.dispatch_due` do): plans out,
decisions recorded, retries with backoff, supersession, one run at a time. The clock is ours."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import DictRow

from shared.db import Connection
from tests.curves.control import HANG, ControlSystem
from tests.curves.support import (
    Target,
    curve_event,
    curve_payload,
    decisions,
    local_hours,
    points,
    store,
    targets,
)
from tests.db_faults import CancelTheNextWrite
from worker.curves.dispatch import CurvePlans, DispatchReport, RetryPolicy, run_dispatch
from worker.curves.dispatchers import HttpDispatcher, LogDispatcher, Outcome, Plan
from worker.plan_kinds import PLAN_KINDS

SECRET = b"our-own-dispatch-secret"
HOURS = local_hours(date(2026, 3, 4))
EARLY = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
LATE = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=3, first_delay=timedelta(seconds=30))


class Clock:
    """The runs' clock. It starts a minute ahead of the real one, which stamps what the
    handler stores, so every plan stored during the test is due."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC) + timedelta(minutes=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def http(control: ControlSystem) -> Iterator[HttpDispatcher]:
    dispatcher = HttpDispatcher(control.url, SECRET, timeout=0.5)
    yield dispatcher
    dispatcher.close()


def run(database_url: str, dispatcher: Any, clock: Clock, batch_size: int = 100) -> DispatchReport:
    return run_dispatch(
        database_url,
        dispatcher,
        POLICY,
        kinds=PLAN_KINDS,
        batch_size=batch_size,
        lease=timedelta(seconds=60),
        clock=clock,
    )


def day_curve(
    named: list[Target], price: float = -0.2, created: datetime = EARLY
) -> dict[str, Any]:
    return curve_event(curve_payload(points(HOURS, [price] * 24), named), created)


def by_target(plans: list[dict[str, Any]]) -> dict[tuple[str, str, int], dict[str, Any]]:
    return {(p["eventId"], p["resourceId"], p["revision"]): p for p in plans}


def test_it_sends_each_targets_plan_once_in_batches(
    db: Connection, database_url: str, control: ControlSystem, http: HttpDispatcher, clock: Clock
) -> None:
    named = targets(10)
    document = day_curve(named)
    store(db, document)

    report = run(database_url, http, clock, batch_size=3)

    assert (report.sent, report.batches, report.failed, report.busy) == (10, 4, 0, False)
    assert len(control.received) == 4
    sent = control.plans()
    assert sorted(p["resourceId"] for p in sent) == [r for r, _ in named]
    assert all(len(p["periods"]) == 24 for p in sent)
    rows = decisions(db, document["eventId"])
    assert {row["status"] for row in rows.values()} == {"sent"}
    assert {row["sent_revision"] for row in rows.values()} == {1}
    assert {row["dispatcher"] for row in rows.values()} == {"http"}
    # Nothing is due any more: a second run sends nothing.
    assert run(database_url, http, clock).sent == 0
    assert len(control.received) == 4


def test_it_retries_with_backoff_until_the_plan_gets_through(
    db: Connection, database_url: str, control: ControlSystem, http: HttpDispatcher, clock: Clock
) -> None:
    document = day_curve(targets(2))
    store(db, document)
    control.answer(500, 500)

    first = run(database_url, http, clock)
    rows = decisions(db, document["eventId"]).values()
    assert first.retrying == 2
    assert {row["status"] for row in rows} == {"pending"}
    assert all(row["reason"].startswith("HTTP 500") for row in rows)
    assert all(row["reason"].endswith("(attempt 1)") for row in rows)
    # Full jitter, each plan on its own: any time up to the first delay (30 s), then up to
    # twice that.
    retries = [row["next_attempt_at"] for row in rows]
    assert all(clock.now <= at <= clock.now + timedelta(seconds=30) for at in retries)

    # Before the earliest retry is due: nothing happens.
    if min(retries) - clock.now > timedelta(seconds=1):
        clock.advance((min(retries) - clock.now).total_seconds() - 1)
        assert run(database_url, http, clock).batches == 0
    clock.advance((max(retries) - clock.now).total_seconds() + 1)
    assert run(database_url, http, clock).retrying == 2
    rows = decisions(db, document["eventId"]).values()
    assert all(
        clock.now <= row["next_attempt_at"] <= clock.now + timedelta(seconds=60) for row in rows
    )
    clock.advance(61)
    assert run(database_url, http, clock).sent == 2

    rows = decisions(db, document["eventId"]).values()
    assert {(r["status"], r["attempts"], r["reason"]) for r in rows} == {("sent", 3, None)}
    assert len(control.received) == 3


def test_it_records_the_plan_as_failed_with_the_reason_after_the_last_attempt(
    db: Connection, database_url: str, control: ControlSystem, http: HttpDispatcher, clock: Clock
) -> None:
    document = day_curve(targets(2))
    store(db, document)
    control.default = HANG

    for _ in range(POLICY.max_attempts):
        run(database_url, http, clock)
        clock.advance(3600)
    control.release()

    rows = decisions(db, document["eventId"]).values()
    assert {(r["status"], r["attempts"]) for r in rows} == {("failed", 3)}
    assert {r["reason"] for r in rows} == {"no answer within 0.5s (attempt 3)"}
    # Failed is final: later runs leave it alone, and the plan is still there to resend.
    assert run(database_url, http, clock).batches == 0
    assert len(control.received) == 3


def test_it_fails_a_refused_plan_at_once(
    db: Connection, database_url: str, control: ControlSystem, http: HttpDispatcher, clock: Clock
) -> None:
    document = day_curve(targets(1))
    store(db, document)
    control.answer(422)

    report = run(database_url, http, clock)

    assert report.failed == 1
    [row] = decisions(db, document["eventId"]).values()
    assert row["status"] == "failed"
    assert row["reason"].startswith("HTTP 422")


def test_it_sends_the_older_curves_new_plan_after_a_supersession(
    db: Connection, database_url: str, control: ControlSystem, http: HttpDispatcher, clock: Clock
) -> None:
    named = targets(6)
    half = named[:3]
    original = day_curve(named, price=-0.2)
    store(db, original)
    run(database_url, http, clock)
    assert len(control.plans()) == 6

    # The change covers every period of the original for half its targets.
    changed = day_curve(half, price=0.4, created=LATE)
    store(db, changed)
    rows = decisions(db, original["eventId"])
    assert {t for t, r in rows.items() if r["status"] == "pending"} == set(half)
    assert {rows[t]["revision"] for t in half} == {2}

    report = run(database_url, http, clock)

    assert report.sent == 6  # 3 plans of the changed curve, 3 new revisions of the original
    sent = by_target(control.plans()[6:])
    for resource_id, _ in half:
        # The original's revision 2 withdraws what revision 1 asked: nothing is left in force.
        withdrawn = sent[(original["eventId"], resource_id, 2)]
        assert withdrawn["periods"] == []
        assert {p["supersededBy"] for p in withdrawn["supersededPeriods"]} == {changed["eventId"]}
        assert len(sent[(changed["eventId"], resource_id, 1)]["periods"]) == 24
    rows = decisions(db, original["eventId"])
    assert {rows[t]["sent_revision"] for t in half} == {2}
    assert {rows[t]["sent_revision"] for t in named[3:]} == {1}


def test_it_skips_the_late_older_curve_where_a_newer_one_covers_everything(
    db: Connection, database_url: str, control: ControlSystem, http: HttpDispatcher, clock: Clock
) -> None:
    named = targets(4)
    changed = curve_event(curve_payload(points(HOURS, [0.4] * 24), named[:2]), LATE)
    store(db, changed)
    run(database_url, http, clock)
    original = day_curve(named)
    store(db, original)

    report = run(database_url, http, clock)

    assert (report.sent, report.skipped) == (2, 2)
    rows = decisions(db, original["eventId"])
    for target in named[:2]:
        assert rows[target]["status"] == "skipped"
        assert rows[target]["reason"] == (
            f"every period is superseded by newer curve(s) {changed['eventId']}"
        )
    assert {rows[t]["status"] for t in named[2:]} == {"sent"}
    assert sorted(p["resourceId"] for p in control.plans()[2:]) == [r for r, _ in named[2:]]


def test_it_drops_the_result_for_a_revision_replaced_while_it_was_in_flight(
    db: Connection, database_url: str, control: ControlSystem, http: HttpDispatcher, clock: Clock
) -> None:
    # A generous timeout: the request hangs until the new curve is stored.
    slow = HttpDispatcher(control.url, SECRET, timeout=10)
    named = targets(1)
    original = day_curve(named)
    store(db, original)
    control.answer(HANG)
    result: list[DispatchReport] = []
    runner = threading.Thread(target=lambda: result.append(run(database_url, slow, clock)))
    runner.start()
    control.wait_for(1)

    changed = curve_event(curve_payload(points(HOURS[:2], [0.4] * 2), named), LATE)
    store(db, changed)
    control.release()
    runner.join(timeout=15)
    slow.close()

    plans = control.plans()
    revisions = [(p["eventId"], p["revision"], len(p["periods"])) for p in plans]
    assert (original["eventId"], 1, 24) in revisions
    assert (original["eventId"], 2, 22) in revisions
    [row] = decisions(db, original["eventId"]).values()
    assert (row["status"], row["revision"], row["sent_revision"]) == ("sent", 2, 2)


def test_it_runs_one_dispatch_at_a_time(
    db: Connection, database_url: str, control: ControlSystem, clock: Clock
) -> None:
    slow = HttpDispatcher(control.url, SECRET, timeout=10)
    store(db, day_curve(targets(1)))
    control.answer(HANG)
    runner = threading.Thread(target=lambda: run(database_url, slow, clock))
    runner.start()
    control.wait_for(1)

    second = run(database_url, LogDispatcher(), clock)

    control.release()
    runner.join(timeout=15)
    slow.close()
    assert second.busy
    assert second.batches == 0


def test_it_takes_back_a_plan_whose_worker_died_mid_call(
    db: Connection, database_url: str, control: ControlSystem, http: HttpDispatcher, clock: Clock
) -> None:
    document = day_curve(targets(1))
    store(db, document)
    # A worker claimed the plan and died before recording anything.
    db.execute(
        "UPDATE curve_dispatches SET status = 'sending', attempts = 1, next_attempt_at = %s",
        (clock.now + timedelta(seconds=60),),
    )
    db.commit()
    assert run(database_url, http, clock).batches == 0

    clock.advance(61)
    report = run(database_url, http, clock)

    assert report.sent == 1
    [row] = decisions(db, document["eventId"]).values()
    assert (row["status"], row["attempts"]) == ("sent", 2)


class FaultAfterTheCall:
    """The http dispatcher, after whose call `fault` strikes the database: the plans are out,
    their outcome not yet recorded."""

    name = "http"

    def __init__(self, http: HttpDispatcher, fault: Callable[[], object]) -> None:
        self.http = http
        self.fault = fault

    def dispatch(self, plans: Sequence[Plan]) -> list[Outcome]:
        outcomes = self.http.dispatch(plans)
        self.fault()
        return outcomes

    def close(self) -> None:
        pass


def drop_connections(database_url: str, keep_pid: int) -> None:
    """PostgreSQL drops the run's pooled connection (a restart): every backend of the test's
    database but `keep_pid` (the test's own) and the one holding the dispatch lock."""
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a"
            " WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()"
            " AND a.pid <> %s AND NOT EXISTS (SELECT 1 FROM pg_locks l"
            " WHERE l.pid = a.pid AND l.locktype = 'advisory')",
            (keep_pid,),
        )


def test_it_keeps_the_outcome_when_the_database_drops_the_connection_after_the_call(
    db: Connection, database_url: str, control: ControlSystem, http: HttpDispatcher, clock: Clock
) -> None:
    document = day_curve(targets(3))
    store(db, document)
    pid = db.info.backend_pid
    dropping = FaultAfterTheCall(http, lambda: drop_connections(database_url, pid))

    # The outcome is recorded on a new connection; the run then ends on its broken one, and
    # its task would be retried.
    with pytest.raises(psycopg.OperationalError):
        run(database_url, dropping, clock)

    rows = decisions(db, document["eventId"]).values()
    assert {(row["status"], row["attempts"]) for row in rows} == {("sent", 1)}
    clock.advance(3600)
    assert run(database_url, http, clock).sent == 0
    assert len(control.plans()) == 3


def test_it_records_the_outcome_again_when_the_database_cancels_the_record(
    db: Connection, database_url: str, control: ControlSystem, http: HttpDispatcher, clock: Clock
) -> None:
    document = day_curve(targets(3))
    store(db, document)
    cancel = CancelTheNextWrite(database_url, "curve_dispatches")

    report = run(database_url, FaultAfterTheCall(http, cancel.start), clock)

    assert cancel.errors == []
    assert cancel.cancelled.is_set()
    assert report.sent == 3
    rows = decisions(db, document["eventId"]).values()
    assert {(row["status"], row["attempts"]) for row in rows} == {("sent", 1)}
    clock.advance(3600)
    assert run(database_url, http, clock).sent == 0
    assert len(control.plans()) == 3


class LosesItsConnectionWhilePlanning(CurvePlans):
    """The curves' plans, whose connection PostgreSQL drops (a restart) between the claim and
    the plan."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def plans(self, conn: Connection, claimed: list[DictRow]) -> list[tuple[DictRow, Plan | str]]:
        with psycopg.connect(self.database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
        return super().plans(conn, claimed)


def test_it_hands_back_plans_it_could_not_compute_when_the_database_went_away(
    db: Connection, database_url: str, control: ControlSystem, http: HttpDispatcher, clock: Clock
) -> None:
    document = day_curve(targets(3))
    store(db, document)

    with pytest.raises(psycopg.OperationalError):
        run_dispatch(
            database_url,
            http,
            POLICY,
            kinds=[LosesItsConnectionWhilePlanning(database_url)],
            batch_size=100,
            lease=timedelta(seconds=600),
            clock=clock,
        )

    # Not left leased for ten minutes: pending again within the policy's first delay, the
    # failed attempt and its reason kept.
    assert control.received == []
    rows = decisions(db, document["eventId"]).values()
    assert {(row["status"], row["attempts"]) for row in rows} == {("pending", 1)}
    assert all(row["reason"].startswith("not sent: the plan could not be computed") for row in rows)
    assert all(row["next_attempt_at"] <= clock.now + POLICY.first_delay for row in rows)
    clock.advance(POLICY.first_delay.total_seconds())
    assert run(database_url, http, clock).sent == 3
    rows = decisions(db, document["eventId"]).values()
    assert {(row["status"], row["attempts"]) for row in rows} == {("sent", 2)}
