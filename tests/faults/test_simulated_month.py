"""A simulated month, full size: 200 resources at 50 locations in five neighbourhoods, a
curve for each every day of October 2026 (summer time ends on the 25th; some changed later
the day) and an LPC event of each kind, played hour by hour into November on the sandbox's
clock and the CLI's `--now`, with a tenth of POST /reports answered 500, 429 or not at all,
and on four days a real worker's send cut off (`kill -9` of the whole worker or of its pool
process, or of its Redis, started again) while it is sending a report: the sandbox holds the
POST (its `slow` fault) so that the kill lands mid-send. What the month plays, checks and
prints is tests/simulation/month.py; the reduced month in `make test` is
tests/simulation/test_simulated_month.py.

The month runs on a PostgreSQL server of its own, stopped and started again on four more days
(RESTARTS): stopped fast under a worker's reports.sweep (the task fails while PostgreSQL is
down, is retried by the same worker, and its pool reconnects), stopped fast under the CLI's
`reports send --due` (the run fails; the next hour's goes on), crashed (`-m immediate`) under
a worker's sweep, and crashed as an hour's readings come in (the CLI's import refuses; the
readings queued to a worker are stored once PostgreSQL is back).
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from devstack.servers import PostgresServer, RedisServer
from shared.queues import INGEST_QUEUE
from shared.readings import INGEST_READINGS_TASK
from tests.fixtures.sandbox import SandboxHandle
from tests.fixtures.services import WorkerProcess
from tests.reports.support import OSLO, Tasks, cli, set_report_faults, spark_env, utc
from tests.simulation.month import (
    FULL,
    Importer,
    Interrupt,
    Month,
    Played,
    PostgresRestart,
    RestartPostgres,
    assert_month,
    attempts_by_event,
    check_month,
    plan_month,
    private_database,
    report_due,
    report_faults,
    report_sending,
    run_month,
)
from tests.waiting import wait_for
from worker.reports.tasks import SWEEP_TASK

# The days (of October) on which a report's send is cut off, and how: the whole worker or its
# pool process killed, or the worker's Redis (with AOF) killed and started again.
KILLS = {5: "worker", 12: "pool process", 19: "worker", 26: "redis"}
# The days on which PostgreSQL is restarted under a report's send, how, and whose send.
RESTARTS = {
    9: PostgresRestart("fast", "worker"),
    16: PostgresRestart("fast", "cli"),
    22: PostgresRestart("immediate", "worker"),
    29: PostgresRestart("immediate", "ingest"),
}


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
        if day in self.done or not report_due(self.database_url, now):
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
            while not report_sending(self.database_url):
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


class RestartUnderWorkers(RestartPostgres):
    """RestartPostgres, where a restart may also cut off a worker's send: a worker runs the
    hour's reports.sweep, PostgreSQL is stopped while the sandbox holds its POST, and is
    started again only once the task has failed and been retried (the worker stays up); the
    same worker then finishes the retried sweep on a new connection from its pool."""

    def __init__(
        self,
        *args: Any,
        redis: RedisServer,
        start_worker: Callable[..., WorkerProcess],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.redis = redis
        self.start_worker = start_worker

    def cut_off(self, now: datetime, restart: PostgresRestart) -> str:
        if restart.by == "cli":
            return super().cut_off(now, restart)
        env = spark_env(self.sandbox)
        worker = self.start_worker(self.database_url, self.redis.url, concurrency=1, **env)
        tasks = Tasks(self.redis.url)
        try:
            task_id = tasks.send("reports.sweep", now=utc(now))
            wait_for(lambda: report_sending(self.database_url), 60, "a report out to be cut off")
            self.server.stop(restart.mode)
            # Spark's answer comes while PostgreSQL is down.
            self.restore_faults()
            worker.wait_for_log(f"reports.sweep[{task_id}] retry", timeout=60)
            self.server.start()
            worker.wait_for_log(f"reports.sweep[{task_id}] succeeded", timeout=120)
        finally:
            tasks.close()
            worker.stop()
        return "a worker's send cut off; its task retried and done by the same worker"

    def importers(self) -> dict[datetime, Importer]:
        """The first hour with readings of each "ingest" restart's day."""
        found: dict[int, datetime] = {}
        for now in sorted(self.month.arrivals):
            day = now.astimezone(OSLO).day
            if (restart := self.restarts.get(day)) and restart.by == "ingest":
                found.setdefault(day, now)
        return {now: self.ingest for now in found.values()}

    def ingest(self, now: datetime, path: Path, played: Played) -> None:
        """PostgreSQL down while the hour's readings come in: the CLI's import refuses (it
        cannot connect), so they are queued to a worker as partner code queues them; its task
        is retried until PostgreSQL has been started again, and stores them once."""
        restart = self.restarts[now.astimezone(OSLO).day]
        env = spark_env(self.sandbox)
        worker = self.start_worker(self.database_url, self.redis.url, concurrency=1, **env)
        tasks = Tasks(self.redis.url)
        try:
            self.server.stop(restart.mode)
            refused = cli(self.database_url, "consumption", "import", str(path), "--now", utc(now))
            assert refused.exit_code == 1, refused.output
            assert "cannot connect to the database" in refused.output, refused.output
            readings = [item.row() for item in self.month.arrivals[now]]
            task = tasks.send(INGEST_READINGS_TASK, queue=INGEST_QUEUE, readings=readings,
                              now=utc(now))  # fmt: skip
            worker.wait_for_log(f"{INGEST_READINGS_TASK}[{task}] retry", timeout=60)
            self.server.start()
            worker.wait_for_log(f"{INGEST_READINGS_TASK}[{task}] succeeded", timeout=120)
            # The readings may complete a report: the sweep they wake runs to its end here.
            wait_for(lambda: sweeps_done(worker), 120, "the sweeps the readings woke")
        finally:
            tasks.close()
            worker.stop()
        played.postgres_restarts.append(
            f"{restart.mode} at {now:%m-%d %H:%M}Z (the hour's ingest: the CLI's import refused, "
            f"a worker's task retried until PostgreSQL was back)"
        )


def sweeps_done(worker: WorkerProcess) -> bool:
    """Every reports.sweep the worker received has succeeded or gone to a retry."""
    ends = Counter(re.findall(rf"Task {re.escape(SWEEP_TASK)}\[[^\]]+\] (\w+)", worker.log()))
    return ends["received"] == ends["succeeded"] + ends["retry"] + ends["failed"]


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of the test's own (it is killed), with AOF as production should run it."""
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    yield server
    server.stop()


@pytest.fixture
def month_postgres(tmp_path: Path) -> Iterator[tuple[PostgresServer, str]]:
    with private_database(tmp_path / "postgres") as found:
        yield found


def test_it_reports_every_period_of_a_month_once_and_in_time(
    sandbox: SandboxHandle,
    month_postgres: tuple[PostgresServer, str],
    private_redis: RedisServer,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    server, database_url = month_postgres
    month = plan_month(FULL)
    assert len(month.targets) >= 200
    assert len({t.location_id for t in month.targets}) >= 50
    assert not set(KILLS) & set(RESTARTS)
    kill = KillMidSend(sandbox, database_url, private_redis, start_worker, month)
    restart = RestartUnderWorkers(
        sandbox, database_url, server, month, RESTARTS,
        redis=private_redis, start_worker=start_worker,
    )  # fmt: skip
    interrupts: dict[datetime, Interrupt] = {
        now: kill for now in month.ticks if now.astimezone(OSLO).day in KILLS
    }
    interrupts.update(restart.ticks())
    played = run_month(
        sandbox, database_url, month, tmp_path, interrupts, importers=restart.importers()
    )
    outcome = check_month(sandbox, database_url, month, played)
    print("\n" + outcome.summary(month, played))
    assert len([done for done in played.interrupts if done]) == len(KILLS)
    assert len(played.postgres_restarts) == len(RESTARTS)
    assert_month(outcome, month, played, attempts_by_event(database_url))
