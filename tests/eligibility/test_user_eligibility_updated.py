"""The `UserEligibilityUpdated` handler: hints recorded, one pending reconcile per burst."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

from shared.db import Connection, connect
from shared.timeutil import utcnow
from tests.eligibility.support import SETTINGS, eligibility_event, handle_event, store_event
from worker.celery_app import MAX_COUNTDOWN
from worker.eligibility.handler import handle_user_eligibility_updated
from worker.events.handlers import HANDLERS


def reconciles(conn: Connection) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute("SELECT * FROM eligibility_reconciles ORDER BY id")]


def hints(conn: Connection) -> set[tuple[str, str, str, int]]:
    rows = conn.execute("SELECT event_id, user_id, change, reconcile_id FROM eligibility_hints")
    return {(r["event_id"], r["user_id"], r["change"], r["reconcile_id"]) for r in rows}


def test_it_is_the_registered_handler_for_eligibility_events() -> None:
    assert HANDLERS["UserEligibilityUpdated"] is handle_user_eligibility_updated


def test_it_records_the_hints_and_requests_a_reconcile_after_the_settle_delay(
    db: Connection,
) -> None:
    document = eligibility_event(added=["u-1", "u-2"], removed=["u-3"])
    before = utcnow()

    follow_ups = handle_event(db, document)

    [reconcile] = reconciles(db)
    assert reconcile["trigger"] == "event"
    assert reconcile["status"] == "pending"
    settle = timedelta(seconds=SETTINGS.eligibility_settle_seconds)
    assert before + settle <= reconcile["due_at"] <= utcnow() + settle
    event_id = document["eventId"]
    assert hints(db) == {
        (event_id, "u-1", "added", reconcile["id"]),
        (event_id, "u-2", "added", reconcile["id"]),
        (event_id, "u-3", "removed", reconcile["id"]),
    }
    # The reconcile task is sent after the commit, when due.
    [follow_up] = follow_ups
    assert (follow_up.task, follow_up.queue, follow_up.kwargs) == (
        "eligibility.reconcile_eligibility",
        "spark",
        {"reconcile_id": reconcile["id"]},
    )
    assert follow_up.countdown is not None
    assert abs(follow_up.countdown - settle.total_seconds()) < 5


def test_it_leaves_a_settle_delay_longer_than_an_eta_may_be_to_the_sweep(db: Connection) -> None:
    # Redis would hand a message held that long to a second worker: the reconcile stays due
    # in PostgreSQL, where the every-minute sweep finds it.
    settings = replace(SETTINGS, eligibility_settle_seconds=MAX_COUNTDOWN + 60)
    document = eligibility_event(added=["u-1"])
    with db.transaction():
        follow_ups = handle_user_eligibility_updated(db, store_event(db, document), settings)

    assert follow_ups == []
    [reconcile] = reconciles(db)
    assert reconcile["status"] == "pending"


def test_it_collapses_a_burst_of_five_events_into_one_pending_reconcile(db: Connection) -> None:
    documents = [eligibility_event(added=[f"u-{n}"]) for n in range(5)]

    for document in documents:
        handle_event(db, document)

    [reconcile] = reconciles(db)
    assert reconcile["status"] == "pending"
    assert {h[3] for h in hints(db)} == {reconcile["id"]}
    assert {h[0] for h in hints(db)} == {d["eventId"] for d in documents}


def test_it_requests_a_new_reconcile_for_events_that_arrive_while_one_runs(
    db: Connection,
) -> None:
    handle_event(db, eligibility_event(added=["u-1"]))
    db.execute("UPDATE eligibility_reconciles SET status = 'running'")
    db.commit()
    later = eligibility_event(added=["u-2"])

    handle_event(db, later)

    running, pending = reconciles(db)
    assert (running["status"], pending["status"]) == ("running", "pending")
    assert (later["eventId"], "u-2", "added", pending["id"]) in hints(db)


def test_it_joins_the_pending_reconcile_of_a_concurrent_event_once_that_commits(
    database_url: str,
) -> None:
    first, second = eligibility_event(added=["u-1"]), eligibility_event(added=["u-2"])
    with connect(database_url) as one, connect(database_url) as other:
        # The handler runs in a savepoint of the event's transaction, which stays open here.
        one.execute("SELECT 1")
        handle_event(one, first)
        errors: list[BaseException] = []

        def handle_second() -> None:
            try:
                handle_event(other, second)
                other.commit()
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=handle_second)
        thread.start()
        deadline = time.monotonic() + 10
        while not _waiting_for_a_lock(one) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _waiting_for_a_lock(one), "the second event did not wait for the first"
        one.commit()
        thread.join(10)
        assert not errors

        [reconcile] = reconciles(one)
        assert {h[3] for h in hints(one)} == {reconcile["id"]}
        assert len(hints(one)) == 2


def _waiting_for_a_lock(conn: Connection) -> bool:
    row = conn.execute("SELECT count(*) AS n FROM pg_locks WHERE NOT granted").fetchone()
    return bool(row and row["n"])


def test_it_keeps_only_distinct_user_ids_from_the_lists(db: Connection) -> None:
    document = eligibility_event(added=["u-1", "u-1", "", 7, None, {"userId": "x"}], removed=None)
    document["payload"]["removedUsers"] = None

    handle_event(db, document)

    assert {(h[1], h[2]) for h in hints(db)} == {("u-1", "added")}
    assert len(reconciles(db)) == 1


def test_it_still_requests_a_reconcile_when_the_lists_are_unreadable(db: Connection) -> None:
    document = eligibility_event()
    document["payload"]["addedUsers"] = "u-1"
    del document["payload"]["removedUsers"]

    handle_event(db, document)

    assert hints(db) == set()
    assert [r["status"] for r in reconciles(db)] == ["pending"]


def test_it_moves_a_replayed_events_hints_to_the_reconcile_that_will_run(db: Connection) -> None:
    document = eligibility_event(removed=["u-1"])
    with db.transaction():
        stored = store_event(db, document)
        handle_user_eligibility_updated(db, stored, SETTINGS)
    db.execute("UPDATE eligibility_reconciles SET status = 'done'")
    db.commit()

    with db.transaction():
        handle_user_eligibility_updated(db, stored, SETTINGS)

    done, pending = reconciles(db)
    assert hints(db) == {(document["eventId"], "u-1", "removed", pending["id"])}
    assert done["status"] == "done"
