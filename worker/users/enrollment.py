"""Enrollment in the Spark program: `POST /users/{id}/enrollment` (no body) and `DELETE`.

Only enrolled users get price curves. Under SPARK_AUTO_ENROLL=consented, users who consent
are enrolled when they become eligible (`auto_enroll`, run by the `users.enroll_users` task
after an eligibility reconcile) or when an import records their consent while they are
eligible. Operators enroll and unenroll by hand with `spark-partner users enroll/unenroll`.

Spark keeps an enrolled user's enrollment on a repeated POST and treats a repeated DELETE
as done, so both are safe to repeat; the registry stores what Spark answered.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.db import Connection, execute, fetch_all
from shared.spark_api import SparkClient, SparkHTTPError, SparkNotFound
from shared.timeutil import parse_spark_datetime, utcnow
from worker.users.spark_calls import describe, is_fatal, path_id

log = logging.getLogger(__name__)

AUTO_ENROLL_POLICY = "consented"


@dataclass(frozen=True)
class EnrollmentResult:
    user_id: str
    # "enrolled", "unenrolled" or "failed"
    outcome: str
    enrollment_id: str | None = None
    enrolled_at: datetime | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome != "failed"

    def to_json(self) -> dict[str, Any]:
        return {
            "userId": self.user_id,
            "outcome": self.outcome,
            "enrollmentId": self.enrollment_id,
            "enrolledAt": self.enrolled_at,
            "error": self.error,
        }


def auto_enroll(
    conn: Connection, client: SparkClient, user_ids: Sequence[str], *, policy: str
) -> list[EnrollmentResult]:
    """Enroll those of `user_ids` the policy says to: eligible, consenting, not enrolled,
    not deleted or scheduled for deletion. Nothing under any policy but "consented".

    Spark being unusable (`SparkUnavailable`, 5xx/429, credentials) raises; the users not
    done yet are still not enrolled, so a retry picks them up.
    """
    if policy != AUTO_ENROLL_POLICY or not user_ids:
        return []
    with conn.transaction():
        rows = fetch_all(conn, "users_to_auto_enroll", {"user_ids": list(user_ids)})
    results = [enroll_user(conn, client, row["user_id"]) for row in rows]
    enrolled = sum(1 for result in results if result.ok)
    if results:
        log.info("auto-enrolled %d of %d consenting eligible user(s)", enrolled, len(results))
    return results


def enroll_user(conn: Connection, client: SparkClient, user_id: str) -> EnrollmentResult:
    """Ask Spark to enroll `user_id` and store its answer. `conn` outside a transaction."""
    try:
        answer = client.post_json(f"/users/{path_id(user_id)}/enrollment", None)
    except SparkHTTPError as exc:
        if is_fatal(exc):
            raise
        error = _refusal(exc)
        with conn.transaction():
            execute(conn, "mark_user_enrollment_failed", {"user_id": user_id, "error": error})
        log.warning("enrolling user %s failed: %s", user_id, error)
        return EnrollmentResult(user_id, "failed", error=error)
    body: dict[str, Any] = answer if isinstance(answer, dict) else {}
    if body.get("isEnrolled") is False:
        error = "Spark answered isEnrolled=false"
        with conn.transaction():
            execute(conn, "mark_user_enrollment_failed", {"user_id": user_id, "error": error})
        return EnrollmentResult(user_id, "failed", error=error)
    enrollment_id = body.get("enrollmentId")
    date = body.get("enrollmentDate")
    enrolled_at = parse_spark_datetime(date) if isinstance(date, str) else utcnow()
    with conn.transaction():
        execute(
            conn,
            "mark_user_enrolled",
            {"user_id": user_id, "enrollment_id": enrollment_id, "enrolled_at": enrolled_at},
        )
    return EnrollmentResult(user_id, "enrolled", enrollment_id, enrolled_at)


def unenroll_user(conn: Connection, client: SparkClient, user_id: str) -> EnrollmentResult:
    """Take `user_id` out of the program at Spark and in the registry."""
    try:
        client.request("DELETE", f"/users/{path_id(user_id)}/enrollment")
    except SparkNotFound:
        # Spark does not know the user: it is in no program there either.
        pass
    except SparkHTTPError as exc:
        if is_fatal(exc):
            raise
        error = _refusal(exc)
        with conn.transaction():
            execute(conn, "mark_user_enrollment_failed", {"user_id": user_id, "error": error})
        return EnrollmentResult(user_id, "failed", error=error)
    with conn.transaction():
        execute(conn, "mark_user_unenrolled", {"user_id": user_id})
    return EnrollmentResult(user_id, "unenrolled")


def _refusal(exc: SparkHTTPError) -> str:
    if isinstance(exc, SparkNotFound):
        return "Spark does not know this user (run `spark-partner users sync`)"
    return describe(exc)
