"""B5, eligibility reconcile: a million eligible users served by the sandbox.

A private sandbox (in this process) gets --users eligible users through its bulk path, and a
fresh database is migrated. The reconcile then runs twice, as `spark-partner eligibility sync`
runs it:

1. first: our registry is empty, so every user Spark lists is new to us: it is added (marked as
   not known locally) and gets a became-eligible transition;
2. again: nothing changed, which is what the daily reconcile finds on most days;
3. churn: a day of changes (--churn of the users, 1 % by default): that many lose eligibility
   (deleted in Spark) and as many of the partner's own registered users become eligible.

Each run is timed in two parts: paging /users/eligible over HTTP, and the database part, from
the start of its transaction to the commit. The database part is compared with a plain COPY
of the same ids into a fresh table with a primary key, timed in the same run (the median of
the copies between the runs); the target is at most twice that. Each run's ratio is printed;
the verdict is given for the runs a partner's database does every day (again, churn) and,
separately, for the first load, which writes a user row and a transition for every id; what
writing just those rows by COPY costs (in a database of its own) is printed beside it.

    .venv/bin/python -m bench.eligibility [--users 1000000]

--database-url names the server (a superuser connection); the benchmark creates its own
database there and drops it at the end.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import ExitStack
from dataclasses import dataclass

import psycopg

from bench.support import fresh_database, print_result
from sandbox.app import RunningSandbox, serve
from sandbox.config import SandboxConfig
from shared.db import connect
from shared.spark_api import SparkClient
from worker.eligibility.reconcile import ReconcileResult, reconcile_now

TARGET_RATIO = 2.0
CLIENT_ID = "bench-eligibility"
CLIENT_SECRET = "bench-eligibility-secret"  # noqa: S105 (a local sandbox's)


@dataclass(frozen=True)
class Timed:
    label: str
    result: ReconcileResult
    total: float


def checkpoint(database_url: str) -> None:
    """Start each timed part with no dirty buffers left by the one before."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def plain_copy(database_url: str, user_ids: list[str], table: str) -> float:
    """Seconds from the start of a transaction to its commit, for a COPY of `user_ids` into a
    fresh table with a primary key, written row by row as the reconcile writes them."""
    with connect(database_url) as conn:
        conn.execute(f"CREATE TABLE {table} (user_id text PRIMARY KEY)")
        conn.commit()
        checkpoint(database_url)
        started = time.perf_counter()
        with conn.transaction(), conn.cursor().copy(f"COPY {table} (user_id) FROM STDIN") as copy:
            for user_id in user_ids:
                copy.write_row((user_id,))
        seconds = time.perf_counter() - started
        conn.execute(f"DROP TABLE {table}")
        conn.commit()
    return seconds


def first_load_writes(database_url: str, user_ids: list[str]) -> float:
    """Seconds to write what a first load must write, by the fastest path there is: a COPY of
    every id into `users` and one into `eligibility_transitions` (their real indexes), in one
    transaction, in a database of its own. The least the first run could cost."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with connect(database_url) as conn:
        row = conn.execute(
            "INSERT INTO eligibility_reconciles (trigger, status) VALUES ('manual', 'running')"
            " RETURNING id"
        ).fetchone()
        conn.commit()
        assert row is not None
        reconcile_id = row["id"]
        checkpoint(database_url)
        started = time.perf_counter()
        with conn.transaction():
            cursor = conn.cursor()
            with cursor.copy(
                "COPY users (user_id, known_locally, eligible, eligible_changed_at, synced_at,"
                " created_at, updated_at) FROM STDIN"
            ) as copy:
                for user_id in user_ids:
                    copy.write_row((user_id, False, True, now, now, now, now))
            with cursor.copy(
                "COPY eligibility_transitions (user_id, became_eligible, at, reason,"
                " reconcile_id) FROM STDIN"
            ) as copy:
                for user_id in user_ids:
                    copy.write_row((user_id, True, now, "reconcile", reconcile_id))
        return time.perf_counter() - started


def timed_reconcile(label: str, database_url: str, client: SparkClient) -> Timed:
    checkpoint(database_url)
    started = time.perf_counter()
    result = reconcile_now(database_url, client)
    total = time.perf_counter() - started
    if result.outcome != "done":
        raise SystemExit(f"{label}: the reconcile ended {result.outcome}: {result.error}")
    return Timed(label, result, total)


def prepare_churn(
    server: RunningSandbox, database_url: str, user_ids: list[str], share: float
) -> tuple[int, int]:
    """Spark deletes every n-th user (they lose eligibility) and lists as many new users,
    which our registry already holds as not eligible (they become eligible). Untimed."""
    step = max(1, round(1 / share))
    leaving = user_ids[::step]
    now = server.sandbox.clock.now()
    for user_id in leaving:
        server.sandbox.directory.delete_user(user_id, now)
    joining = server.sandbox.bulk_add_users(len(leaving), prefix="bench-joining-")
    with (
        psycopg.connect(database_url) as conn,
        conn.cursor().copy("COPY users (user_id, synced_at) FROM STDIN") as copy,
    ):
        for user_id in joining:
            copy.write_row((user_id, now))
    return len(leaving), len(joining)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.eligibility", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--users", type=int, default=1_000_000, help="eligible users in Spark")
    parser.add_argument(
        "--churn", type=float, default=0.01, help="share of users that change in the churn run"
    )
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)

    with ExitStack() as stack:
        server = serve(SandboxConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET), quiet=True)
        stack.callback(server.stop)
        started = time.perf_counter()
        user_ids = server.sandbox.bulk_add_users(args.users, prefix="bench-user-")
        print(
            f"B5 eligibility reconcile: {len(user_ids):,} eligible users in the sandbox "
            f"(made in {time.perf_counter() - started:.1f} s)"
        )
        database_url = stack.enter_context(fresh_database(args.database_url, "eligibility"))
        client = stack.enter_context(
            SparkClient(server.base_url, server.token_url, CLIENT_ID, CLIENT_SECRET)
        )
        copies = [plain_copy(database_url, user_ids, "bench_copy_before")]
        first = timed_reconcile("first", database_url, client)
        copies.append(plain_copy(database_url, user_ids, "bench_copy_between"))
        again = timed_reconcile("again", database_url, client)
        copies.append(plain_copy(database_url, user_ids, "bench_copy_after"))
        leaving, joining = prepare_churn(server, database_url, user_ids, args.churn)
        churn = timed_reconcile("churn", database_url, client)
        copies.append(plain_copy(database_url, user_ids, "bench_copy_last"))
        expected = (joining, leaving)
        if (churn.result.became_eligible, churn.result.lost_eligibility) != expected:
            raise SystemExit(f"churn: expected +{joining:,} -{leaving:,}, got {churn.result}")
        with fresh_database(args.database_url, "eligibility_floor") as floor_url:
            floor = first_load_writes(floor_url, user_ids)

    copy_seconds = statistics.median(copies)
    print(
        f"plain COPY of the same ids into a table with a primary key: {copy_seconds:.2f} s "
        f"(median of {', '.join(f'{c:.2f}' for c in copies)})"
    )
    print()
    print(f"{'run':<6} {'changes':<34} {'paging':>8} {'database':>9} {'ratio':>6} {'total':>8}")
    ratios: dict[str, float] = {}
    for run in (first, again, churn):
        result = run.result
        ratios[run.label] = result.apply_seconds / copy_seconds
        changes = (
            f"+{result.became_eligible:,} ({result.unknown_users:,} new) "
            f"-{result.lost_eligibility:,}"
        )
        print(
            f"{run.label:<6} {changes:<34} {result.read_seconds:7.2f}s "
            f"{result.apply_seconds:8.2f}s {ratios[run.label]:5.2f}x {run.total:7.2f}s"
        )
    print()
    daily = max(ratios["again"], ratios["churn"])
    verdict = "meets" if daily <= TARGET_RATIO else "misses"
    print(f"daily reconciles (again, churn) / plain COPY: worst {daily:.2f}x, {verdict} the "
          f"target of {TARGET_RATIO:g}x")  # fmt: skip
    verdict = "meets" if ratios["first"] <= TARGET_RATIO else "misses"
    print(f"first load of {len(user_ids):,} users unknown to the registry / plain COPY: "
          f"{ratios['first']:.2f}x, {verdict} the target of {TARGET_RATIO:g}x")  # fmt: skip
    print(f"  its rows alone (COPY into users and eligibility_transitions): {floor:.2f} s, "
          f"{floor / copy_seconds:.2f}x")  # fmt: skip
    worst = max((again, churn), key=lambda run: run.result.apply_seconds)
    met = print_result(
        "bench.eligibility",
        (f"plain COPY of {len(user_ids):,} ids into a keyed table", copy_seconds, "s"),
        (f"daily reconcile ({worst.label}), its database part", worst.result.apply_seconds, "s"),
        daily,
        f"<= {TARGET_RATIO:g}",
    )
    return 0 if met else 2


if __name__ == "__main__":
    raise SystemExit(main())
