"""Spark's compensation feedback: what each user with reports this month has earned, per
location, and what keeps it from being paid (`MissingMpidOnLocation`,
`CompensationMpidDoesNotMatchLocation`).

Once a day, every user with a report sent for the current local month is asked for
(`GET /users/{id}/compensation`, the current month only); each answer replaces the one
before. A run fetches what it can within its time budget; the next run goes on with the
users not fetched today.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as wall_time
from typing import Any
from urllib.parse import quote

from shared.db import Connection, execute, fetch_all, fetch_one
from shared.spark_api import SparkClient, SparkHTTPError, SparkNotFound, SparkUnavailable
from worker.reports.ledger import ReportRules

log = logging.getLogger(__name__)

USERS_PER_QUERY = 200


@dataclass
class CompensationRun:
    month: str
    fetched: int = 0
    failed: int = 0
    problems: int = 0
    # More users are due than this run fetched (budget or Spark unavailable).
    more: bool = False
    stopped: str | None = None
    users: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "fetched": self.fetched,
            "failed": self.failed,
            "problems": self.problems,
            "more": self.more,
            "stopped": self.stopped,
            "users": self.users,
        }


def local_month(now: datetime, rules: ReportRules) -> date:
    return now.astimezone(rules.timezone).date().replace(day=1)


def _locations(body: Any) -> list[dict[str, Any]]:
    found = body.get("locationCompensations") if isinstance(body, dict) else None
    locations = []
    for item in found or []:
        if not isinstance(item, dict) or not item.get("locationId"):
            continue
        locations.append(
            {
                "location_id": str(item["locationId"]),
                "meter_point_ids": [str(m) for m in item.get("meterPointIds") or []],
                "active_amount": item.get("activeAmount"),
                "blocked_amount": item.get("blockedAmount"),
                "currency": item.get("currency"),
                "problems": item.get("problems") or [],
            }
        )
    return locations


def fetch_compensations(
    conn: Connection,
    client: SparkClient,
    rules: ReportRules,
    *,
    now: datetime,
    deadline: float | None = None,
) -> CompensationRun:
    month = local_month(now, rules)
    start_of_day = datetime.combine(
        now.astimezone(rules.timezone).date(), wall_time(0), tzinfo=rules.timezone
    )
    run = CompensationRun(month=f"{month:%Y-%m}")
    while True:
        with conn.transaction():
            users = [
                row["user_id"]
                for row in fetch_all(
                    conn,
                    "users_due_for_compensation",
                    {"month": month, "fetched_before": start_of_day, "limit": USERS_PER_QUERY},
                )
            ]
        if not users:
            return run
        for user_id in users:
            if deadline is not None and time.monotonic() >= deadline:
                run.more = True
                return run
            try:
                body = client.get_json(f"/users/{quote(user_id, safe='')}/compensation")
            except SparkNotFound:
                _failed(
                    conn,
                    run,
                    user_id,
                    month=month,
                    now=now,
                    error="Spark does not know this user (404)",
                )
                continue
            except SparkUnavailable as exc:
                run.more, run.stopped = True, str(exc)
                log.warning("compensation fetch stopped: %s", exc)
                return run
            except SparkHTTPError as exc:
                if exc.retryable:
                    run.more, run.stopped = True, str(exc)
                    log.warning("compensation fetch stopped: %s", exc)
                    return run
                _failed(conn, run, user_id, month=month, now=now, error=str(exc))
                continue
            locations = _locations(body)
            with conn.transaction():
                fetch_one(
                    conn,
                    "replace_compensations",
                    {
                        "user_id": user_id,
                        "month": month,
                        "now": now,
                        "locations": json.dumps(locations),
                    },
                )
            problems = sum(len(location["problems"]) for location in locations)
            if problems:
                log.warning("user %s: %d compensation problem(s) this month", user_id, problems)
            run.problems += problems
            run.fetched += 1
            run.users.append(user_id)


def _failed(
    conn: Connection, run: CompensationRun, user_id: str, *, month: date, now: datetime, error: str
) -> None:
    with conn.transaction():
        execute(
            conn,
            "record_compensation_error",
            {"user_id": user_id, "month": month, "now": now, "error": error},
        )
    run.failed += 1
    log.warning("compensation of user %s: %s", user_id, error)
