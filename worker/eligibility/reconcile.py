"""The eligibility reconcile: Spark's `GET /users/eligible` is the truth, compared set-wise.

One run:
1. Claim the reconcile row (a conditional UPDATE) while holding its advisory lock on a
   connection of its own. The lock lives as long as the attempt's connection, so a running row
   whose lock is free was left by an attempt that died, and the next caller claims it again.
2. Page Spark's list, outside any transaction.
3. In ONE transaction: COPY the ids into a temporary table, then set operations record who lost
   eligibility, who gained it, and whom Spark lists that we did not know, each change as a
   transition. A crash before the commit leaves nothing applied, and rerunning it after the
   commit finds nothing left to change.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, LiteralString

import psycopg

from shared.backoff import backoff_seconds
from shared.db import Connection, connect, execute, fetch_all, fetch_one
from shared.spark_api import MAX_PAGE_SIZE, SparkClient, SparkError, SparkHTTPError
from shared.timeutil import utcnow
from worker.eligibility import comparison

log = logging.getLogger(__name__)

RECONCILE_TASK = "eligibility.reconcile_eligibility"

Trigger = Literal["event", "daily", "manual"]
Outcome = Literal["done", "superseded", "retry", "failed"]

# The class (first key) of this module's advisory locks; the second key is the reconcile id,
# and 0 is the lock that lets one reconcile at a time apply its changes.
LOCK_CLASS = 0x0E11
# Attempts per reconcile, whatever ended them (Spark errors, crashed workers).
MAX_ATTEMPTS = 8
RETRY_BASE_SECONDS = 60.0
RETRY_MAX_SECONDS = 3600.0
# Full reads of Spark's list before one that did not add up counts as a failed attempt.
READ_ATTEMPTS = 3
# An attempt's advisory lock is what marks its reconcile as taken, so the server must drop the
# attempt's connection soon after the worker is gone, wherever that happens: within seconds
# during a statement or a lock wait, within about a minute while idle (a host that vanished
# sends no FIN; the default TCP keepalive would take over two hours).
SESSION_SETTINGS: LiteralString = (
    "SET client_connection_check_interval = '5s';"
    " SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10;"
    " SET tcp_keepalives_count = 3"
)
APPLY_WORK_MEM = "256MB"
# Up to this many changes, applying them looks each user up by key; above it, one pass over
# all users costs less (a day's churn of a million users is about 20,000 changes).
FEW_CHANGES = 100_000


class UnreliableRead(Exception):
    """Spark's list changed while it was paged, or a page was not what the spec says."""


@dataclass(frozen=True)
class Claim:
    reconcile_id: int
    trigger: str
    attempts: int
    started_at: datetime


@dataclass(frozen=True)
class ReconcileResult:
    reconcile_id: int
    outcome: Outcome
    trigger: str
    attempts: int
    spark_eligible: int = 0
    # Every user that became eligible, those we did not know included.
    became_eligible: int = 0
    lost_eligibility: int = 0
    unknown_users: int = 0
    # Our own consenting users that just became eligible and are not enrolled (only when
    # auto-enrollment is asked for): to enroll once this is committed.
    to_enroll: list[str] = field(default_factory=list)
    read_seconds: float = 0.0
    apply_seconds: float = 0.0
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        """What tasks return and the CLI prints (without the ids to enroll)."""
        return {
            "reconcileId": self.reconcile_id,
            "outcome": self.outcome,
            "trigger": self.trigger,
            "attempts": self.attempts,
            "sparkEligible": self.spark_eligible,
            "becameEligible": self.became_eligible,
            "lostEligibility": self.lost_eligibility,
            "unknownUsers": self.unknown_users,
            "toEnroll": len(self.to_enroll),
            "readSeconds": round(self.read_seconds, 3),
            "applySeconds": round(self.apply_seconds, 3),
            "error": self.error,
        }


def request_reconcile(
    conn: Connection, trigger: Trigger, *, due_at: datetime, now: datetime | None = None
) -> tuple[int, datetime]:
    """The pending reconcile, created or joined, due no later than `due_at`: (id, due_at).

    Runs in the caller's transaction; the pending row stays locked until it commits.
    """
    params = {"trigger": trigger, "now": now or utcnow(), "due_at": due_at}
    # The pending row can be claimed between the two statements; the next round creates one.
    for _ in range(3):
        row = fetch_one(conn, "insert_pending_reconcile", params)
        if row is None:
            row = fetch_one(conn, "join_pending_reconcile", params)
        if row is not None:
            return int(row["id"]), row["due_at"]
    raise RuntimeError("could neither create nor find the pending eligibility reconcile")


def claimable_reconciles(conn: Connection, now: datetime | None = None) -> list[int]:
    """Pending reconciles that are due, and running ones (claimable only if abandoned)."""
    rows = fetch_all(conn, "list_claimable_reconciles", {"now": now or utcnow()})
    return [int(row["id"]) for row in rows]


def run_due_reconciles(
    database_url: str,
    client: SparkClient,
    *,
    auto_enroll: bool = False,
    now: datetime | None = None,
) -> list[ReconcileResult]:
    """Run every due pending reconcile and every abandoned running one; the results of those
    that ran here (a reconcile another attempt is running is skipped)."""
    with connect(database_url) as conn:
        due = claimable_reconciles(conn, now)
    results = []
    for reconcile_id in due:
        result = run_reconcile(database_url, client, reconcile_id, auto_enroll=auto_enroll, now=now)
        if result is not None:
            results.append(result)
    return results


def run_reconcile(
    database_url: str,
    client: SparkClient,
    reconcile_id: int,
    *,
    auto_enroll: bool = False,
    now: datetime | None = None,
    page_size: int = MAX_PAGE_SIZE,
) -> ReconcileResult | None:
    """Claim and run one reconcile; None if it is not due, finished, or running elsewhere.

    `now` fixes the clock for the whole run (tests); by default each step reads the time.
    """
    # A connection of its own: the advisory lock must live exactly as long as this attempt.
    with connect(database_url) as conn:
        conn.execute(SESSION_SETTINGS)
        claim = _claim(conn, reconcile_id, now or utcnow())
        if claim is None:
            return None
        started = time.perf_counter()
        try:
            user_ids = read_eligible_users(client, page_size)
        except (SparkError, UnreliableRead) as exc:
            return _retry_or_fail(conn, claim, exc, now or utcnow())
        read_seconds = time.perf_counter() - started
        try:
            result = apply_eligible_users(
                conn, claim, user_ids, auto_enroll=auto_enroll, now=now or utcnow()
            )
        except psycopg.errors.UniqueViolation as exc:
            # The registry added a user Spark listed while we compared: compare again.
            return _retry_or_fail(conn, claim, exc, now or utcnow())
    result = replace(result, read_seconds=read_seconds)
    log.info(
        "eligibility reconcile %d (%s): %s; %d listed by Spark, %d became eligible "
        "(%d unknown), %d lost eligibility; read %.1fs, applied %.1fs",
        result.reconcile_id,
        result.trigger,
        result.outcome,
        result.spark_eligible,
        result.became_eligible,
        result.unknown_users,
        result.lost_eligibility,
        result.read_seconds,
        result.apply_seconds,
    )
    return result


def _claim(conn: Connection, reconcile_id: int, now: datetime) -> Claim | None:
    locked = fetch_one(conn, "try_lock_reconcile", {"lock_class": LOCK_CLASS, "id": reconcile_id})
    conn.commit()
    if locked is None or not locked["locked"]:
        return None
    params = {"id": reconcile_id, "now": now, "max_attempts": MAX_ATTEMPTS}
    with conn.transaction():
        row = fetch_one(conn, "claim_reconcile", params)
        if row is None:
            gave_up = fetch_one(conn, "give_up_reconcile", params)
            if gave_up is not None:
                log.error("eligibility reconcile %d abandoned too often; failed", reconcile_id)
    if row is None:
        return None
    return Claim(int(row["id"]), row["trigger"], int(row["attempts"]), row["started_at"])


def read_eligible_users(client: SparkClient, page_size: int = MAX_PAGE_SIZE) -> list[str]:
    """Every user id of `GET /users/eligible`, each once, in Spark's order.

    Pages are offsets into a list that may change while we page: a read whose total moved, or
    that does not add up to it, is repeated rather than trusted, because a page that shifted
    would drop users, and a dropped user would be recorded as having lost eligibility.
    """
    problem = ""
    for _ in range(READ_ATTEMPTS):
        user_ids, problem = _read_once(client, page_size)
        if not problem:
            return user_ids
        log.warning("reading /users/eligible again: %s", problem)
    raise UnreliableRead(problem)


def _read_once(client: SparkClient, page_size: int) -> tuple[list[str], str]:
    """One pass over the pages: the distinct ids, and what makes the pass untrustworthy."""
    seen: set[str] = set()
    user_ids: list[str] = []
    totals: set[int] = set()
    repeated = 0
    page: int | None = 1
    while page is not None:
        data = client.get_json("/users/eligible", params={"page": page, "pageSize": page_size})
        page_ids, pagination = _parse_page(data, page)
        if isinstance(pagination.get("totalRecords"), int):
            totals.add(pagination["totalRecords"])
        for user_id in page_ids:
            if user_id in seen:
                repeated += 1
            else:
                seen.add(user_id)
                user_ids.append(user_id)
        page = _next_page(pagination, page) if page_ids else None
    if repeated:
        return user_ids, f"{repeated} user(s) listed twice"
    if len(totals) > 1:
        return user_ids, f"totalRecords changed while paging ({sorted(totals)})"
    if totals and len(user_ids) != next(iter(totals)):
        return user_ids, f"{len(user_ids)} users read, totalRecords says {next(iter(totals))}"
    return user_ids, ""


def _parse_page(data: Any, page: int) -> tuple[list[str], dict[str, Any]]:
    """The user ids and the pagination of a GetEligibleUsersResponse."""
    if not isinstance(data, dict):
        raise UnreliableRead(f"page {page} is not a JSON object")
    pagination = data.get("pagination") or {}
    users = data.get("users") or []
    if not isinstance(pagination, dict) or not isinstance(users, list):
        raise UnreliableRead(f"page {page} is not a GetEligibleUsersResponse")
    user_ids = [user.get("userId") if isinstance(user, dict) else None for user in users]
    valid = [user_id for user_id in user_ids if isinstance(user_id, str) and user_id]
    if len(valid) != len(user_ids):
        raise UnreliableRead(f"page {page} lists a user without a userId")
    return valid, pagination


def _next_page(pagination: dict[str, Any], page: int) -> int | None:
    next_page = pagination.get("nextPage")
    total_pages = pagination.get("totalPages")
    # A next page that does not move forward would loop for ever.
    if not isinstance(next_page, int) or next_page <= page:
        return None
    if isinstance(total_pages, int) and next_page > total_pages:
        return None
    return next_page


def apply_eligible_users(
    conn: Connection,
    claim: Claim,
    user_ids: list[str],
    *,
    auto_enroll: bool = False,
    now: datetime | None = None,
) -> ReconcileResult:
    """Make the users table agree with `user_ids` (each id once), in one transaction."""
    now = now or utcnow()
    params = {"reconcile_id": claim.reconcile_id, "now": now, "auto_enroll": auto_enroll}
    started = time.perf_counter()
    with conn.transaction():
        execute(conn, "lock_reconcile_apply", {"lock_class": LOCK_CLASS})
        newer = fetch_one(conn, "newer_applied_reconcile", {"started_at": claim.started_at})
        if newer is not None:
            # What we read is older than what is applied already; applying it would undo
            # changes for a moment, and record them twice.
            note = f"superseded by reconcile {newer['id']}, which read Spark later"
            _finish(conn, claim.reconcile_id, now, note=note)
            return ReconcileResult(
                claim.reconcile_id, "superseded", claim.trigger, claim.attempts,
                spark_eligible=len(user_ids), error=note,
            )  # fmt: skip
        conn.execute(f"SET LOCAL work_mem = '{APPLY_WORK_MEM}'")
        conn.execute(comparison.CREATE_TABLES)
        with conn.cursor().copy(comparison.COPY_SPARK_ELIGIBLE) as copy:
            for user_id in user_ids:
                copy.write_row((user_id,))
        conn.execute(comparison.ANALYZE_SPARK_ELIGIBLE)
        found = conn.execute(comparison.FIND_CHANGES).rowcount
        conn.execute(comparison.ANALYZE_CHANGES)
        few = found <= FEW_CHANGES
        if few:
            conn.execute(comparison.LOOK_UP_EACH_CHANGE)
        conn.execute(comparison.FLIP_CHANGES, params)
        if few:
            conn.execute(comparison.PLAN_FREELY)
        changes = conn.execute(comparison.APPLY_CHANGES, params).fetchone()
        if changes is None:
            raise RuntimeError("the comparison returned no counts")
        result = ReconcileResult(
            claim.reconcile_id,
            "done",
            claim.trigger,
            claim.attempts,
            spark_eligible=len(user_ids),
            became_eligible=changes["became_known"] + changes["unknown_users"],
            lost_eligibility=changes["lost_eligibility"],
            unknown_users=changes["unknown_users"],
            to_enroll=list(changes["to_enroll"]),
        )
        _finish(conn, claim.reconcile_id, now, result=result)
    return replace(result, apply_seconds=time.perf_counter() - started)


def _finish(
    conn: Connection,
    reconcile_id: int,
    now: datetime,
    *,
    result: ReconcileResult | None = None,
    note: str | None = None,
) -> None:
    execute(
        conn,
        "finish_reconcile",
        {
            "id": reconcile_id,
            "now": now,
            "spark_eligible": result.spark_eligible if result else None,
            "became_eligible": result.became_eligible if result else None,
            "lost_eligibility": result.lost_eligibility if result else None,
            "unknown_users": result.unknown_users if result else None,
            "note": note,
        },
    )


def _retry_or_fail(
    conn: Connection, claim: Claim, exc: Exception, now: datetime
) -> ReconcileResult:
    """Give the reconcile back as pending, due after a backoff; or, when another reconcile is
    pending already (it will read Spark later anyway) or this one cannot succeed, fail it and
    hand its events' hints to the pending one."""
    error = f"{type(exc).__name__}: {exc}"[:2000]
    retryable = not isinstance(exc, SparkHTTPError) or exc.retryable
    delay = backoff_seconds(
        claim.attempts,
        base=RETRY_BASE_SECONDS,
        cap=RETRY_MAX_SECONDS,
        at_least=exc.retry_after if isinstance(exc, SparkHTTPError) else None,
    )
    with conn.transaction():
        pending = fetch_one(conn, "lock_pending_reconcile")
        if pending is None and retryable and claim.attempts < MAX_ATTEMPTS:
            try:
                with conn.transaction():
                    execute(
                        conn,
                        "retry_reconcile_later",
                        {
                            "id": claim.reconcile_id,
                            "due_at": now + timedelta(seconds=delay),
                            "error": error,
                        },
                    )
            except psycopg.errors.UniqueViolation:
                # An event created a pending reconcile just now.
                pending = fetch_one(conn, "lock_pending_reconcile")
            else:
                log.warning(
                    "eligibility reconcile %d: %s; again in %.0fs", claim.reconcile_id, error, delay
                )
                return ReconcileResult(
                    claim.reconcile_id, "retry", claim.trigger, claim.attempts, error=error
                )
        execute(conn, "fail_reconcile", {"id": claim.reconcile_id, "now": now, "error": error})
        if pending is not None:
            execute(conn, "move_hints", {"from_id": claim.reconcile_id, "to_id": pending["id"]})
    log.error("eligibility reconcile %d failed: %s", claim.reconcile_id, error)
    return ReconcileResult(claim.reconcile_id, "failed", claim.trigger, claim.attempts, error=error)


def reconcile_now(
    database_url: str,
    client: SparkClient,
    *,
    auto_enroll: bool = False,
    trigger: Trigger = "manual",
    now: datetime | None = None,
) -> ReconcileResult:
    """Request a reconcile due now and run it here (the CLI, the benchmark).

    A pending reconcile is taken over; if a worker claims it first, another one is requested.
    """
    for _ in range(3):
        with connect(database_url) as conn, conn.transaction():
            reconcile_id, _ = request_reconcile(
                conn, trigger, due_at=now or utcnow(), now=now or utcnow()
            )
        result = run_reconcile(database_url, client, reconcile_id, auto_enroll=auto_enroll, now=now)
        if result is not None:
            return result
    raise RuntimeError("workers kept claiming the requested reconcile first; try again")
