"""Reading the registry: the user list and one user's whole record, as the CLI shows them.

JSON shapes are camelCase, like Spark's, and lists are in byte order of the ids (what any
other program's plain sort gives), so they can be compared with Spark's lists directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from psycopg.rows import DictRow

from shared.db import Connection, fetch_all, fetch_one
from shared.db.queries import QUERIES

LIST_FETCH_ROWS = 5000


@dataclass(frozen=True)
class UserFilter:
    eligible: bool = False
    enrolled: bool = False
    pending_deletion: bool = False
    include_deleted: bool = False


def iter_users(conn: Connection, which: UserFilter) -> Iterator[dict[str, Any]]:
    """Users in id order, as list items; streamed from a server-side cursor (a million is fine).

    Runs inside a transaction on `conn`; the caller ends it.
    """
    params = {
        "eligible": which.eligible,
        "enrolled": which.enrolled,
        "pending_deletion": which.pending_deletion,
        "include_deleted": which.include_deleted,
    }
    with conn.cursor(name="users_list") as cursor:
        cursor.itersize = LIST_FETCH_ROWS
        cursor.execute(QUERIES["list_users"], params)
        for row in cursor:
            yield list_item(row)


def list_item(row: DictRow) -> dict[str, Any]:
    return {
        "userId": row["user_id"],
        "eligible": row["eligible"],
        "enrolled": row["enrolled"],
        "consented": row["consented"],
        "knownLocally": row["known_locally"],
        "synced": row["synced_at"] is not None,
        "syncError": row["sync_error"],
        "pendingDeletion": row["delete_after_month"] is not None and row["deleted_at"] is None,
        "deleteAfterMonth": _month(row["delete_after_month"]),
        "deleted": row["deleted_at"] is not None,
    }


def user_detail(conn: Connection, user_id: str) -> dict[str, Any] | None:
    """Everything the registry knows about one user, with warnings; None if unknown."""
    user = fetch_one(conn, "get_user", {"user_id": user_id})
    if user is None:
        return None
    params = {"user_id": user_id}
    locations = fetch_all(conn, "user_locations", params)
    resources = fetch_all(conn, "user_resources", params)
    transitions = fetch_all(conn, "user_eligibility_transitions", params)
    hints = fetch_all(conn, "user_eligibility_hints", params)
    return {
        "user": {
            "userId": user["user_id"],
            "consented": user["consented"],
            "knownLocally": user["known_locally"],
            "eligible": user["eligible"],
            "eligibleChangedAt": user["eligible_changed_at"],
            "syncedAt": user["synced_at"],
            "syncError": user["sync_error"],
            "pendingDeletion": user["delete_after_month"] is not None
            and user["deleted_at"] is None,
            "deleteAfterMonth": _month(user["delete_after_month"]),
            "deletedAt": user["deleted_at"],
            "deletionError": user["deletion_error"],
            "createdAt": user["created_at"],
            "updatedAt": user["updated_at"],
        },
        "enrollment": {
            "enrolled": user["enrolled"],
            "enrollmentId": user["enrollment_id"],
            "enrolledAt": user["enrolled_at"],
            "error": user["enrollment_error"],
        },
        "locations": [
            {
                "locationId": loc["location_id"],
                "locationType": loc["location_type"],
                "meterPointIds": list(loc["meter_point_ids"]),
                "coordinates": None
                if loc["latitude"] is None
                else {"latitude": loc["latitude"], "longitude": loc["longitude"]},
                "syncedAt": loc["synced_at"],
                "syncError": loc["sync_error"],
            }
            for loc in locations
        ],
        "resources": [
            {
                "resourceId": res["resource_id"],
                "resourceType": res["resource_type"],
                # None for a vehicle.
                "locationId": res["location_id"],
                "meterPointId": res["meter_point_id"],
                "syncedAt": res["synced_at"],
                "syncError": res["sync_error"],
            }
            for res in resources
        ],
        "eligibilityTransitions": [
            {
                "becameEligible": t["became_eligible"],
                "at": t["at"],
                "reason": t["reason"],
                "eventId": t["event_id"],
                "reconcileId": t["reconcile_id"],
            }
            for t in transitions
        ],
        "eligibilityHints": [
            {
                "eventId": h["event_id"],
                "change": h["change"],
                "eventCreatedAt": h["event_created_at"],
                "reconcileId": h["reconcile_id"],
            }
            for h in hints
        ],
        "warnings": _warnings(user, locations, resources),
    }


def _warnings(user: DictRow, locations: list[DictRow], resources: list[DictRow]) -> list[str]:
    lines = []
    if user["deleted_at"] is not None:
        lines.append(f"deleted on {user['deleted_at']:%Y-%m-%d %H:%M} UTC")
    elif user["delete_after_month"] is not None:
        lines.append(f"pending deletion after {user['delete_after_month']:%B %Y}'s final reports")
    if not user["known_locally"]:
        lines.append("listed by Spark but not imported into the registry")
    if user["sync_error"]:
        lines.append(f"not at Spark: {user['sync_error']}")
    if user["enrollment_error"]:
        lines.append(f"enrollment failed: {user['enrollment_error']}")
    if user["deletion_error"]:
        lines.append(f"deletion failed: {user['deletion_error']}")
    if user["eligible"] and user["consented"] and not user["enrolled"]:
        lines.append("eligible and consenting but not enrolled")
    lines.extend(
        f"location {loc['location_id']} has no meterPointIds: it will not be compensated"
        for loc in locations
        if not loc["meter_point_ids"]
    )
    lines.extend(
        f"location {loc['location_id']} not at Spark: {loc['sync_error']}"
        for loc in locations
        if loc["sync_error"]
    )
    lines.extend(
        f"resource {res['resource_id']} not at Spark: {res['sync_error']}"
        for res in resources
        if res["sync_error"]
    )
    return lines


def _month(value: date | None) -> str | None:
    return None if value is None else f"{value:%Y-%m}"
