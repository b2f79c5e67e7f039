"""The reconcile against the sandbox's `/users/eligible`: set logic, claims, failures."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from shared.db import Connection, connect
from shared.timeutil import utcnow
from tests.eligibility.support import (
    SETTINGS,
    eligibility_event,
    eligible_in_spark,
    eligible_users,
    handle_event,
    local_user,
    new_reconcile,
    not_eligible_in_spark,
    reconcile_row,
    spark_client,
    transitions,
    users,
)
from tests.fixtures.sandbox import SandboxHandle
from tests.spec import assert_request_matches
from worker.eligibility.reconcile import (
    FEW_CHANGES,
    LOCK_CLASS,
    MAX_ATTEMPTS,
    Claim,
    apply_eligible_users,
    reconcile_now,
    run_due_reconciles,
    run_reconcile,
)

ELIGIBLE_PATH = "/energy-coordination/v1/users/eligible"


def after_settling() -> timedelta:
    return timedelta(seconds=SETTINGS.eligibility_settle_seconds + 1)


# A handful of changes is applied by looking each user up; many, by one pass over all users.
@pytest.mark.parametrize("few_changes", [FEW_CHANGES, -1], ids=["few changes", "many changes"])
def test_it_records_who_became_eligible_who_lost_it_and_whom_spark_listed_first(
    sandbox: SandboxHandle,
    database_url: str,
    db: Connection,
    few_changes: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("worker.eligibility.reconcile.FEW_CHANGES", few_changes)
    local_user(db, "gains")
    local_user(db, "keeps", eligible=True)
    local_user(db, "loses", eligible=True)
    local_user(db, "deleted", deleted=True)
    local_user(db, "never")
    eligible_in_spark(sandbox, "gains", "keeps", "deleted", "stranger")
    not_eligible_in_spark(sandbox, "loses", "never")

    with spark_client(sandbox) as client:
        result = reconcile_now(database_url, client)

    assert result.outcome == "done"
    assert (result.spark_eligible, result.became_eligible, result.lost_eligibility) == (4, 2, 1)
    assert result.unknown_users == 1
    assert eligible_users(db) == {"gains", "keeps", "stranger"}
    state = users(db)
    assert state["stranger"]["known_locally"] is False
    assert state["gains"]["known_locally"] is True
    assert state["deleted"]["eligible"] is False
    assert transitions(db) == {
        ("gains", True, "reconcile", None),
        ("stranger", True, "reconcile", None),
        ("loses", False, "reconcile", None),
    }
    row = reconcile_row(db, result.reconcile_id)
    assert (row["status"], row["trigger"], row["attempts"]) == ("done", "manual", 1)
    counts = (row["spark_eligible"], row["became_eligible"], row["lost_eligibility"])
    assert counts == (4, 2, 1)
    assert row["unknown_users"] == 1


def test_it_names_the_event_that_announced_a_change(
    sandbox: SandboxHandle, database_url: str, db: Connection
) -> None:
    local_user(db, "announced")
    local_user(db, "unannounced")
    local_user(db, "removed", eligible=True)
    local_user(db, "silently-removed", eligible=True)
    eligible_in_spark(sandbox, "announced", "unannounced")
    first = eligibility_event(added=["announced"], removed=["removed"])
    second = eligibility_event(added=["someone-else"])
    handle_event(db, first)
    handle_event(db, second)
    [pending] = db.execute("SELECT id FROM eligibility_reconciles").fetchall()
    db.commit()

    with spark_client(sandbox) as client:
        result = run_reconcile(database_url, client, pending["id"], now=utcnow() + after_settling())

    assert result is not None
    assert result.outcome == "done"
    assert transitions(db) == {
        ("announced", True, "event", first["eventId"]),
        ("unannounced", True, "reconcile", None),
        ("removed", False, "event", first["eventId"]),
        ("silently-removed", False, "reconcile", None),
    }


def test_it_changes_nothing_when_run_again(
    sandbox: SandboxHandle, database_url: str, db: Connection
) -> None:
    local_user(db, "a")
    local_user(db, "b", eligible=True)
    eligible_in_spark(sandbox, "a", "c")
    with spark_client(sandbox) as client:
        reconcile_now(database_url, client)
        before = (users(db), transitions(db))

        again = reconcile_now(database_url, client)

    assert (again.became_eligible, again.lost_eligibility, again.unknown_users) == (0, 0, 0)
    assert again.spark_eligible == 2
    assert (users(db), transitions(db)) == before
    count = db.execute("SELECT count(*) AS n FROM eligibility_transitions").fetchone()
    assert count is not None
    assert count["n"] == 3


def test_it_applies_nothing_when_interrupted_and_completes_on_the_next_attempt(
    sandbox: SandboxHandle, database_url: str, db: Connection
) -> None:
    local_user(db, "a")
    local_user(db, "b", eligible=True)
    eligible_in_spark(sandbox, "a", "stranger")
    reconcile_id = new_reconcile(db)
    # Fail the last statements of the transaction, after users were already updated in it.
    db.execute(
        "CREATE FUNCTION interrupt() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'interrupted'; END $$"
    )
    db.execute(
        "CREATE TRIGGER interrupt BEFORE INSERT ON eligibility_transitions"
        " FOR EACH STATEMENT EXECUTE FUNCTION interrupt()"
    )
    db.commit()
    before = users(db)

    with spark_client(sandbox) as client:
        with pytest.raises(psycopg.errors.RaiseException):
            run_reconcile(database_url, client, reconcile_id)

        assert users(db) == before
        assert transitions(db) == set()
        row = reconcile_row(db, reconcile_id)
        assert (row["status"], row["attempts"]) == ("running", 1)

        db.execute("DROP TRIGGER interrupt ON eligibility_transitions")
        db.commit()
        [result] = run_due_reconciles(database_url, client)

    assert (result.reconcile_id, result.outcome, result.attempts) == (reconcile_id, "done", 2)
    assert eligible_users(db) == {"a", "stranger"}
    assert {t[0] for t in transitions(db)} == {"a", "b", "stranger"}


def test_it_leaves_reconciles_alone_that_are_not_due_finished_or_running_elsewhere(
    sandbox: SandboxHandle, database_url: str, db: Connection
) -> None:
    later = new_reconcile(db, due_at=utcnow() + timedelta(minutes=5))
    finished = new_reconcile(db, status="done")
    running = new_reconcile(db, status="running", attempts=1)

    with spark_client(sandbox) as client, connect(database_url) as attempt:
        # A live attempt holds its reconcile's lock for as long as it runs.
        attempt.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_CLASS, running))
        assert run_reconcile(database_url, client, later) is None
        assert run_reconcile(database_url, client, finished) is None
        assert run_reconcile(database_url, client, running) is None
        assert run_due_reconciles(database_url, client) == []
        attempt.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, running))

        # Once the lock is free, a running reconcile is one whose attempt died.
        [rerun] = run_due_reconciles(database_url, client)
        due = run_reconcile(database_url, client, later, now=utcnow() + timedelta(minutes=6))

    assert (rerun.reconcile_id, rerun.outcome, rerun.attempts) == (running, "done", 2)
    assert due is not None
    assert due.outcome == "done"
    assert reconcile_row(db, finished)["attempts"] == 0


def test_it_fails_a_reconcile_abandoned_too_often(
    sandbox: SandboxHandle, database_url: str, db: Connection
) -> None:
    reconcile_id = new_reconcile(db, status="running", attempts=MAX_ATTEMPTS)

    with spark_client(sandbox) as client:
        assert run_reconcile(database_url, client, reconcile_id) is None

    row = reconcile_row(db, reconcile_id)
    assert row["status"] == "failed"
    assert f"gave up after {MAX_ATTEMPTS} attempts" in row["error"]


def test_it_tries_again_later_when_spark_is_unavailable(
    sandbox: SandboxHandle, database_url: str, db: Connection
) -> None:
    local_user(db, "a", eligible=True)
    sandbox.control.add_faults("GET", ELIGIBLE_PATH, [{"status": 503}] * 2)
    reconcile_id = new_reconcile(db)
    now = utcnow()

    with spark_client(sandbox) as client:
        result = run_reconcile(database_url, client, reconcile_id, now=now)

    assert result is not None
    assert result.outcome == "retry"
    row = reconcile_row(db, reconcile_id)
    assert row["status"] == "pending"
    # Full jitter: any time up to the first delay.
    assert now <= row["due_at"] <= now + timedelta(seconds=60)
    assert "503" in row["error"]
    assert eligible_users(db) == {"a"}


def test_it_hands_its_events_to_the_pending_reconcile_when_it_fails(
    sandbox: SandboxHandle, database_url: str, db: Connection
) -> None:
    local_user(db, "a")
    first = eligibility_event(added=["a"])
    handle_event(db, first)
    db.execute("UPDATE eligibility_reconciles SET status = 'running', started_at = now()")
    db.commit()
    handle_event(db, eligibility_event(added=["b"]))
    running, pending = (r["id"] for r in db.execute("SELECT id FROM eligibility_reconciles"))
    db.commit()
    sandbox.control.add_faults("GET", ELIGIBLE_PATH, [{"status": 503}] * 2)

    with spark_client(sandbox) as client:
        result = run_reconcile(database_url, client, running)

    assert result is not None
    assert result.outcome == "failed"
    assert reconcile_row(db, running)["status"] == "failed"
    linked = db.execute("SELECT DISTINCT reconcile_id FROM eligibility_hints").fetchall()
    assert [row["reconcile_id"] for row in linked] == [pending]

    eligible_in_spark(sandbox, "a")
    with spark_client(sandbox) as client:
        later = run_reconcile(database_url, client, pending, now=utcnow() + after_settling())
    assert later is not None
    assert transitions(db) == {("a", True, "event", first["eventId"])}


def test_it_fails_at_once_when_spark_refuses_the_request(
    sandbox: SandboxHandle, database_url: str, db: Connection
) -> None:
    reconcile_id = new_reconcile(db)
    sandbox.control.add_faults("GET", ELIGIBLE_PATH, [{"status": 403}])

    with spark_client(sandbox) as client:
        result = run_reconcile(database_url, client, reconcile_id)

    assert result is not None
    assert result.outcome == "failed"
    assert reconcile_row(db, reconcile_id)["status"] == "failed"


def test_it_pages_through_the_list_with_requests_spark_accepts(
    sandbox: SandboxHandle, database_url: str, db: Connection
) -> None:
    ids = [f"user-{n}" for n in range(5)]
    eligible_in_spark(sandbox, *ids)
    sandbox.control.clear_requests()
    reconcile_id = new_reconcile(db)

    with spark_client(sandbox) as client:
        result = run_reconcile(database_url, client, reconcile_id, page_size=2)

    assert result is not None
    assert result.spark_eligible == 5
    assert eligible_users(db) == set(ids)
    sent = [r for r in sandbox.control.requests() if r["path"] == ELIGIBLE_PATH]
    assert [r["query"] for r in sent] == [
        {"page": str(page), "pageSize": "2"} for page in (1, 2, 3)
    ]
    for request in sent:
        assert_request_matches("GET", request["path"], query=request["query"])


def test_it_reads_the_list_again_when_it_changed_while_paging(
    sandbox: SandboxHandle, database_url: str, db: Connection
) -> None:
    eligible_in_spark(sandbox, "a", "b", "c")
    local_user(db, "c", eligible=True)
    # The first page as it was before "c" ... was joined by "a2": the total moves between pages.
    shifted = {
        "pagination": {"totalRecords": 4, "pageSize": 2, "currentPage": 1, "totalPages": 2,
                       "nextPage": 2, "previousPage": None},
        "users": [{"userId": "a"}, {"userId": "a2"}],
    }  # fmt: skip
    sandbox.control.add_faults("GET", ELIGIBLE_PATH, [{"status": 200, "body": shifted}])
    reconcile_id = new_reconcile(db)

    with spark_client(sandbox) as client:
        result = run_reconcile(database_url, client, reconcile_id, page_size=2)

    assert result is not None
    assert result.outcome == "done"
    assert eligible_users(db) == {"a", "b", "c"}
    assert transitions(db) == {("a", True, "reconcile", None), ("b", True, "reconcile", None)}


def test_it_tries_again_later_when_the_list_keeps_changing(
    sandbox: SandboxHandle, database_url: str, db: Connection
) -> None:
    local_user(db, "a", eligible=True)
    twice = {
        "pagination": {"totalRecords": 2, "pageSize": 2, "currentPage": 1, "totalPages": 1},
        "users": [{"userId": "b"}, {"userId": "b"}],
    }
    sandbox.control.add_faults("GET", ELIGIBLE_PATH, [{"status": 200, "body": twice}] * 3)
    reconcile_id = new_reconcile(db)

    with spark_client(sandbox) as client:
        result = run_reconcile(database_url, client, reconcile_id)

    assert result is not None
    assert result.outcome == "retry"
    assert "listed twice" in (result.error or "")
    assert eligible_users(db) == {"a"}


def test_it_does_not_apply_a_read_older_than_one_already_applied(db: Connection) -> None:
    local_user(db, "a")
    older_id = new_reconcile(db, status="running", attempts=1)
    newer_id = new_reconcile(db, status="running", attempts=1)
    now = utcnow()
    older = Claim(older_id, "manual", 1, now - timedelta(seconds=10))
    newer = Claim(newer_id, "manual", 1, now)

    apply_eligible_users(db, newer, ["a"], now=now)
    result = apply_eligible_users(db, older, [], now=now)

    assert result.outcome == "superseded"
    assert eligible_users(db) == {"a"}
    assert transitions(db) == {("a", True, "reconcile", None)}
    row = reconcile_row(db, older_id)
    assert row["status"] == "done"
    assert f"superseded by reconcile {newer_id}" in row["error"]


def test_it_lists_our_consenting_users_to_enroll_only_when_asked(
    sandbox: SandboxHandle, database_url: str, db: Connection
) -> None:
    local_user(db, "consents", consented=True)
    local_user(db, "consents-too", consented=True)
    local_user(db, "enrolled", consented=True, enrolled=True)
    local_user(db, "declines")
    local_user(db, "already", consented=True, eligible=True)
    eligible_in_spark(sandbox, "consents", "enrolled", "declines", "already", "stranger")
    not_eligible_in_spark(sandbox, "consents-too")

    with spark_client(sandbox) as client:
        asked = reconcile_now(database_url, client, auto_enroll=True)
        db.execute("UPDATE users SET eligible = false WHERE user_id = 'consents'")
        db.commit()
        not_asked = reconcile_now(database_url, client, auto_enroll=False)

    assert asked.to_enroll == ["consents"]
    assert not_asked.to_enroll == []
    assert not_asked.became_eligible == 1
