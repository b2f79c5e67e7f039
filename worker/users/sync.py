"""Push the registry to Spark: users, then their locations, then resources and vehicles.

What is pushed is what has `synced_at` NULL (new or changed since the last push) and no
`sync_error`. Each push is idempotent, so a repeated or interrupted sync converges:

- users go in chunks to `POST /users/batch`; locations to `POST /users/locations/batch`.
  Spark does not document how a batch treats an id it already has, so a refused chunk (any
  4xx) is sent again one by one;
- one by one, a user that already exists counts as synced (409, or a refusal after which
  `GET /users/{id}` finds it);
- a location that already exists (409) is made to match with `PUT`; a location whose user is
  missing at Spark (404) gets its user created, then is posted again;
- a resource or vehicle is posted on its own; if Spark refuses it because it has the id
  already, it is compared with `GET /resources/{id}`: equal is synced, different (and of
  the same user) is deleted and posted again. A missing location or user is created first.

Spark being unreachable, answering 5xx/429 after the client's retries, or refusing our
credentials stops the run (the beat tries again later); any other refusal is stored in the
row's `sync_error` and the row waits for a change or `users sync --retry-errors`.
Rows are marked synced only if they did not change while their push was in flight.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg.rows import DictRow

from shared.db import Connection, execute, fetch_all, fetch_one
from shared.spark_api import SparkClient, SparkConflict, SparkError, SparkHTTPError, SparkNotFound
from worker.users.spark_calls import describe, is_fatal, path_id

log = logging.getLogger(__name__)

USER_CHUNK = 500
LOCATION_CHUNK = 500
RESOURCE_CHUNK = 200
ERROR_LIMIT = 100
# Only one sync runs at a time, whoever starts it (beat, CLI, after an import).
SYNC_LOCK_KEY = 0x5BA2_5C01

Outcome = str | None  # None: Spark has it as we do; otherwise why not


@dataclass
class SyncReport:
    # Rows Spark now has as the registry does, by table.
    pushed: dict[str, int] = field(
        default_factory=lambda: {"users": 0, "locations": 0, "resources": 0}
    )
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    # False when the run stopped early: deadline, another sync running, or Spark unusable.
    complete: bool = True
    busy: bool = False
    aborted: str | None = None

    def note_failure(self, kind: str, key: str, error: str) -> None:
        self.failed += 1
        if len(self.errors) < ERROR_LIMIT:
            self.errors.append(f"{kind} {key}: {error}")

    def to_json(self) -> dict[str, Any]:
        return {
            **self.pushed,
            "failed": self.failed,
            "errors": self.errors,
            "complete": self.complete,
            "busy": self.busy,
            "aborted": self.aborted,
        }


@dataclass(frozen=True)
class _Phase:
    kind: str
    table: str
    key: str
    chunk: int
    # The named queries (shared/db/users.sql) of this table, spelled out so that a search
    # for a query's name finds where it runs.
    to_push: str
    mark_synced: str
    mark_sync_failed: str


_USERS = _Phase(
    "user",
    "users",
    "user_id",
    USER_CHUNK,
    to_push="users_to_push",
    mark_synced="mark_users_synced",
    mark_sync_failed="mark_users_sync_failed",
)
_LOCATIONS = _Phase(
    "location",
    "locations",
    "location_id",
    LOCATION_CHUNK,
    to_push="locations_to_push",
    mark_synced="mark_locations_synced",
    mark_sync_failed="mark_locations_sync_failed",
)
_RESOURCES = _Phase(
    "resource",
    "resources",
    "resource_id",
    RESOURCE_CHUNK,
    to_push="resources_to_push",
    mark_synced="mark_resources_synced",
    mark_sync_failed="mark_resources_sync_failed",
)


class _ParentMissing(Exception):
    """Spark answered 404: the user (or location) the request hangs under is not there."""


def anything_to_push(conn: Connection) -> bool:
    row = fetch_one(conn, "anything_to_push")
    return bool(row and row["pending"])


def sync_registry(
    conn: Connection,
    client: SparkClient,
    *,
    deadline: float | None = None,
    retry_errors: bool = False,
) -> SyncReport:
    """Push everything unsynced. `deadline` (a `time.monotonic()` value) ends the run early,
    leaving the rest for the next one. `conn` must be outside a transaction."""
    report = SyncReport()
    with conn.transaction():
        locked = fetch_one(conn, "try_sync_lock", {"key": SYNC_LOCK_KEY})
    if not (locked and locked["locked"]):
        report.busy = True
        report.complete = False
        return report
    try:
        if retry_errors:
            with conn.transaction():
                execute(conn, "clear_sync_errors")
        phases: list[tuple[_Phase, Callable[[list[DictRow]], dict[str, Outcome]]]] = [
            (_USERS, lambda rows: _create_users(client, [row["user_id"] for row in rows])),
            (_LOCATIONS, lambda rows: _create_locations(client, rows)),
            (
                _RESOURCES,
                lambda rows: {row["resource_id"]: _create_resource(client, row) for row in rows},
            ),
        ]
        for phase, push in phases:
            if not _run_phase(conn, report, phase, push, deadline=deadline):
                report.complete = False
                break
    except SparkError as exc:
        report.aborted = str(exc)
        report.complete = False
        log.warning("registry sync stopped: %s", exc)
    finally:
        with conn.transaction():
            execute(conn, "release_sync_lock", {"key": SYNC_LOCK_KEY})
    log.info(
        "registry sync: %d user(s), %d location(s), %d resource(s) pushed, %d failed%s",
        report.pushed["users"],
        report.pushed["locations"],
        report.pushed["resources"],
        report.failed,
        "" if report.complete else " (incomplete)",
    )
    return report


def _run_phase(
    conn: Connection,
    report: SyncReport,
    phase: _Phase,
    push: Callable[[list[DictRow]], dict[str, Outcome]],
    *,
    deadline: float | None,
) -> bool:
    """Read a chunk, push it, record the outcomes; until done (True) or the deadline (False)."""
    after = ""
    key = phase.key
    while True:
        if deadline is not None and time.monotonic() > deadline:
            return False
        with conn.transaction():
            rows = fetch_all(conn, phase.to_push, {"after": after, "limit": phase.chunk})
        if not rows:
            return True
        after = rows[-1][key]
        outcomes = push(rows)
        ok = [row for row in rows if outcomes[row[key]] is None]
        failed = [row for row in rows if outcomes[row[key]] is not None]
        marked = 0
        with conn.transaction():
            if ok:
                marked = execute(
                    conn,
                    phase.mark_synced,
                    {"ids": [r[key] for r in ok], "versions": [r["updated_at"] for r in ok]},
                ).rowcount
            if failed:
                execute(
                    conn,
                    phase.mark_sync_failed,
                    {
                        "ids": [r[key] for r in failed],
                        "versions": [r["updated_at"] for r in failed],
                        "errors": [outcomes[r[key]] for r in failed],
                    },
                )
        # Rows that changed while in flight stay unsynced: the next run pushes them again.
        report.pushed[phase.table] += marked
        for row in failed:
            report.note_failure(phase.kind, row[key], outcomes[row[key]] or "")


# Users


def _create_users(client: SparkClient, user_ids: Sequence[str]) -> dict[str, Outcome]:
    try:
        client.post_json("/users/batch", {"users": [{"userId": u} for u in user_ids]})
    except SparkHTTPError as exc:
        if is_fatal(exc):
            raise
        log.info(
            "POST /users/batch refused %d user(s) (%d); creating them one by one",
            len(user_ids),
            exc.status,
        )
        return {user_id: _create_user(client, user_id) for user_id in user_ids}
    return dict.fromkeys(user_ids, None)


def _create_user(client: SparkClient, user_id: str) -> Outcome:
    try:
        client.post_json("/users", {"userId": user_id})
    except SparkConflict:
        return None
    except SparkHTTPError as exc:
        if is_fatal(exc):
            raise
        # Spark's answer for an id it already has is not specified: ask.
        if _user_exists(client, user_id):
            return None
        return describe(exc)
    return None


def _user_exists(client: SparkClient, user_id: str) -> bool:
    try:
        client.get_json(f"/users/{path_id(user_id)}")
    except SparkHTTPError as exc:
        if is_fatal(exc):
            raise
        return False
    return True


# Locations


def _location_body(row: DictRow | dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "locationId": row["location_id"],
        "locationType": row["location_type"],
        "meterPointIds": list(row["meter_point_ids"]),
    }
    # Spark's Coordinate is not nullable: unknown coordinates are left out.
    if row["latitude"] is not None:
        body["coordinates"] = {"latitude": row["latitude"], "longitude": row["longitude"]}
    return body


def _create_locations(client: SparkClient, rows: Sequence[DictRow]) -> dict[str, Outcome]:
    body = {"locations": [{**_location_body(row), "userId": row["user_id"]} for row in rows]}
    try:
        client.post_json("/users/locations/batch", body)
    except SparkHTTPError as exc:
        if is_fatal(exc):
            raise
        log.info(
            "POST /users/locations/batch refused %d location(s) (%d); posting them one by one",
            len(rows),
            exc.status,
        )
        return {row["location_id"]: _create_location(client, row) for row in rows}
    return {row["location_id"]: None for row in rows}


def _create_location(client: SparkClient, row: DictRow | dict[str, Any]) -> Outcome:
    try:
        return _post_location(client, row)
    except _ParentMissing:
        pass
    error = _create_user(client, row["user_id"])
    if error is not None:
        return f"its user is missing at Spark and could not be created: {error}"
    try:
        return _post_location(client, row)
    except _ParentMissing as exc:
        return str(exc)


def _post_location(client: SparkClient, row: DictRow | dict[str, Any]) -> Outcome:
    try:
        client.post_json(f"/users/{path_id(row['user_id'])}/locations", _location_body(row))
    except SparkConflict:
        return _replace_location(client, row)
    except SparkNotFound as exc:
        raise _ParentMissing(describe(exc)) from None
    except SparkHTTPError as exc:
        if is_fatal(exc):
            raise
        return describe(exc)
    return None


def _replace_location(client: SparkClient, row: DictRow | dict[str, Any]) -> Outcome:
    path = f"/users/{path_id(row['user_id'])}/locations/{path_id(row['location_id'])}"
    try:
        client.request("PUT", path, json=_location_body(row))
    except SparkNotFound:
        return "Spark has this location id under another user (409 to create, 404 to update)"
    except SparkHTTPError as exc:
        if is_fatal(exc):
            raise
        return describe(exc)
    return None


# Resources and vehicles


def _resource_request(row: DictRow) -> tuple[str, dict[str, Any]]:
    user = path_id(row["user_id"])
    body: dict[str, Any] = {"resourceId": row["resource_id"], "resourceType": row["resource_type"]}
    if row["location_id"] is None:
        return f"/users/{user}/vehicles", body
    if row["meter_point_id"] is not None:
        body["meterPointId"] = row["meter_point_id"]
    return f"/users/{user}/locations/{path_id(row['location_id'])}/resources", body


def _meter_point_mismatch(row: DictRow) -> Outcome:
    """A resource's meterPointId must be one of its location's MPIDs, where it has any: Spark
    would not credit it (its payloads are left out of reports), so it is fixed at the source."""
    mpid, mpids = row["meter_point_id"], row["meter_point_ids"] or []
    if row["location_id"] is None or mpid is None or not mpids or mpid in mpids:
        return None
    return (
        f"meterPointId {mpid} is not one of the meter point ids of location "
        f"{row['location_id']} ({', '.join(mpids)}); fix the resource or the location"
    )


def _create_resource(client: SparkClient, row: DictRow) -> Outcome:
    mismatch = _meter_point_mismatch(row)
    if mismatch is not None:
        return mismatch
    try:
        return _post_resource(client, row)
    except _ParentMissing:
        pass
    if row["location_id"] is None:
        parent, error = "user", _create_user(client, row["user_id"])
    else:
        parent, error = "location", _create_location(client, _location_of(row))
    if error is not None:
        return f"its {parent} is missing at Spark and could not be created: {error}"
    try:
        return _post_resource(client, row)
    except _ParentMissing as exc:
        return str(exc)


def _location_of(row: DictRow) -> dict[str, Any]:
    return {
        "location_id": row["location_id"],
        "user_id": row["user_id"],
        "location_type": row["location_type"],
        "meter_point_ids": row["meter_point_ids"],
        "latitude": row["latitude"],
        "longitude": row["longitude"],
    }


def _post_resource(client: SparkClient, row: DictRow) -> Outcome:
    path, body = _resource_request(row)
    try:
        client.post_json(path, body)
    except SparkNotFound as exc:
        raise _ParentMissing(describe(exc)) from None
    except SparkHTTPError as exc:
        if is_fatal(exc):
            raise
        # Spark declares no 404 for vehicles: a refusal may mean the user is gone.
        if row["location_id"] is None and not _user_exists(client, row["user_id"]):
            raise _ParentMissing(describe(exc)) from None
        return _settle_existing_resource(client, row, exc)
    return None


def _settle_existing_resource(
    client: SparkClient, row: DictRow, refused: SparkHTTPError
) -> Outcome:
    """Spark refused to create the resource: maybe because it has it already."""
    try:
        existing = client.get_json(f"/resources/{path_id(row['resource_id'])}")
    except SparkHTTPError as exc:
        if is_fatal(exc):
            raise
        return describe(refused)
    if not isinstance(existing, dict):
        return describe(refused)
    if existing.get("userId") != row["user_id"]:
        return f"Spark has this resource id under user {existing.get('userId')}"
    if _same_resource(existing, row):
        return None
    return _replace_resource(client, row)


def _replace_resource(client: SparkClient, row: DictRow) -> Outcome:
    """Spark has no update for resources: delete the old version, create the new one."""
    try:
        client.request("DELETE", f"/resources/{path_id(row['resource_id'])}")
    except SparkNotFound:
        pass
    except SparkHTTPError as exc:
        if is_fatal(exc):
            raise
        return f"Spark holds an older version and would not delete it: {describe(exc)}"
    path, body = _resource_request(row)
    try:
        client.post_json(path, body)
    except SparkHTTPError as exc:
        if is_fatal(exc):
            raise
        return describe(exc)
    return None


# Spark's name and ours for what makes two versions of a resource equal.
_RESOURCE_FIELDS = (
    ("resourceType", "resource_type"),
    ("locationId", "location_id"),
    ("meterPointId", "meter_point_id"),
)


def _same_resource(existing: dict[str, Any], row: DictRow) -> bool:
    return all(existing.get(theirs) == row[ours] for theirs, ours in _RESOURCE_FIELDS)
