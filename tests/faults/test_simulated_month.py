"""A simulated month, full size: 200 resources at 50 locations in five neighbourhoods, a
curve for each every day of October 2026 (summer time ends on the 25th; some changed later
the day) and an LPC event of each kind, played hour by hour into November on the sandbox's
clock and the CLI's `--now`, with a tenth of POST /reports answered 500, 429 or not at all,
and on four days a real worker's send cut off (`kill -9` of the whole worker or of its pool
process, or of its Redis, started again) while it is sending a report: the sandbox holds the
POST (its `slow` fault) so that the kill lands mid-send. What the month plays, checks and
prints is tests/simulation/month.py; the reduced month in `make test` is
tests/simulation/test_simulated_month.py.

TODO: a PostgreSQL restart inside the month (the database is the session's shared one here;
the other tests under tests/faults/ stop a private one under load).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from devstack.servers import RedisServer
from shared.db import connect
from tests.fixtures.sandbox import SandboxHandle
from tests.fixtures.services import WorkerProcess
from tests.reports.support import OSLO, Tasks, rows, set_report_faults, spark_env, utc
from tests.simulation.month import (
    FULL,
    Interrupt,
    Month,
    Played,
    assert_month,
    attempts_by_event,
    check_month,
    plan_month,
    report_faults,
    run_month,
)
from worker.reports import ledger
from worker.reports.ledger import ReportRules

# The days (of October) on which a report's send is cut off, and how: the whole worker or its
# pool process killed, or the worker's Redis (with AOF) killed and started again.
KILLS = {5: "worker", 12: "pool process", 19: "worker", 26: "redis"}


class KillMidSend:
    """At the first hour of each of KILLS' days with a report due: a worker runs that hour's
    reports.sweep, and is killed while its POST /reports is held by the sandbox. The hour's
    CLI sweep runs after it as usual; the report left `sending` is taken back when its lease
    has run out, an hour later, and sent again byte for byte."""

    def __init__(
        self,
        sandbox: SandboxHandle,
        database_url: str,
        redis: RedisServer,
        start_worker: Callable[..., WorkerProcess],
        month: Month,
    ) -> None:
        self.sandbox = sandbox
        self.database_url = database_url
        self.redis = redis
        self.start_worker = start_worker
        self.month = month
        self.done: set[int] = set()

    def __call__(self, now: datetime, played: Played) -> str:
        day = now.astimezone(OSLO).day
        if day in self.done or not self._due(now):
            return ""
        self.done.add(day)
        # The random faults drawn so far are counted; then every POST is held for 3 s.
        played.faults.update(self.sandbox.control.report_faults()["drawn"])
        set_report_faults(self.sandbox, errorRate=1, slowShare=1, slowSeconds=3)
        env = spark_env(self.sandbox)
        worker = self.start_worker(self.database_url, self.redis.url, concurrency=1, **env)
        tasks = Tasks(self.redis.url)
        try:
            tasks.send("reports.sweep", now=utc(now))
            deadline = time.monotonic() + 60
            while not self._sending():
                assert time.monotonic() < deadline, "no report went out to be killed"
                time.sleep(0.05)
            assert worker.process is not None
            if KILLS[day] == "worker":
                os.killpg(worker.process.pid, signal.SIGKILL)
                worker.process.wait(10)
            elif KILLS[day] == "redis":
                self.redis.kill()
                self.redis.start()
                worker.stop()
            else:
                os.kill(worker.children()[0], signal.SIGKILL)
                worker.wait_for_log("SIGKILL")
                worker.stop()
        finally:
            tasks.close()
        set_report_faults(self.sandbox, **report_faults(self.month))
        return f"{KILLS[day]} at {now:%m-%d %H:%M}Z"

    def _due(self, now: datetime) -> bool:
        """The hour's sweep (idempotent: the CLI's runs it again) leaves a report due."""
        with connect(self.database_url) as conn:
            ledger.sweep(conn, ReportRules(timezone=OSLO), now=now)
        return bool(rows(self.database_url, "SELECT 1 FROM reports WHERE status = 'due'"))

    def _sending(self) -> bool:
        return bool(rows(self.database_url, "SELECT 1 FROM reports WHERE status = 'sending'"))


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of the test's own (it is killed), with AOF as production should run it."""
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    yield server
    server.stop()


def test_it_reports_every_period_of_a_month_once_and_in_time(
    sandbox: SandboxHandle,
    database_url: str,
    private_redis: RedisServer,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    month = plan_month(FULL)
    assert len(month.targets) >= 200
    assert len({t.location_id for t in month.targets}) >= 50
    kill = KillMidSend(sandbox, database_url, private_redis, start_worker, month)
    interrupts: dict[datetime, Interrupt] = {
        now: kill for now in month.ticks if now.astimezone(OSLO).day in KILLS
    }
    played = run_month(sandbox, database_url, month, tmp_path, interrupts)
    outcome = check_month(sandbox, database_url, month, played)
    print("\n" + outcome.summary(month, played))
    assert len([done for done in played.interrupts if done]) == len(KILLS)
    assert_month(outcome, month, played, attempts_by_event(database_url))
