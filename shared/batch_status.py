"""What became of a batch of readings sent to `POST /consumption`, kept in Redis.

The ingress has no database, and a 202 only says that Redis took the message. Redis can
still lose it (killed between the worker's BRPOP and kombu's `unacked` bookkeeping, or
without AOF), and then nothing would bring it back. So each batch gets a small status record
next to its message, which `GET /consumption/batches/{id}` reads:

- `queued`: written by the ingress before the message is sent, and written again by the
  worker each time it starts on the batch (a retry after a PostgreSQL outage included). It
  lives for CONSUMPTION_BATCH_PENDING (1 hour by default), counted from the last of these
  writes.
- `stored`: written by the worker once the batch's readings are committed, with the counts
  of `consumption_batches`, and kept for STORED_FOR (7 days).
- no record, or a `queued` one older than the window: `unknown`. Nothing has touched the
  batch for the whole window, which is longer than any retry delay and than the visibility
  timeout after which a crashed worker's message is handed on; the client sends the readings
  again, which is safe because a reading sent twice is stored once.

A status write that fails in the worker fails the task, which is retried: a batch is never
acknowledged without its `stored` record.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import redis

KEY_PREFIX = "spark-partner:consumption-batch:"
# Batch ids the ingress hands out are uuid4s; partner tasks may bring their own ids, which
# are kept within these characters and this length so that a GET never builds an odd key.
BATCH_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
STORED_FOR = timedelta(days=7)
DEFAULT_PENDING = timedelta(hours=1)

Status = Literal["queued", "stored", "unknown"]


def key(batch_id: str) -> str:
    return KEY_PREFIX + batch_id


def _timestamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ttl_ms(duration: timedelta) -> int:
    # Redis refuses an expiry of 0; a record that lives 1 ms is as good as none.
    return max(1, int(duration.total_seconds() * 1000))


def mark_queued(
    client: redis.Redis, batch_id: str, *, received_at: datetime, now: datetime,
    pending: timedelta, readings: int,
) -> None:  # fmt: skip
    """Record the batch as queued (or being worked on) until `now + pending`. Only ever
    written before the batch is stored: the ingress before it sends the message, the worker
    once it has seen that the batch is not stored yet."""
    record = {
        "status": "queued",
        "batchId": batch_id,
        "receivedAt": _timestamp(received_at),
        "readings": readings,
        "unknownAfter": _timestamp(now + pending),
    }
    client.set(key(batch_id), json.dumps(record), px=_ttl_ms(pending))


def mark_stored(
    client: redis.Redis, batch_id: str, *, received_at: datetime, stored_at: datetime,
    counts: dict[str, Any],
) -> None:  # fmt: skip
    record = {
        "status": "stored",
        "batchId": batch_id,
        "receivedAt": _timestamp(received_at),
        "storedAt": _timestamp(stored_at),
        **counts,
    }
    client.set(key(batch_id), json.dumps(record), px=_ttl_ms(STORED_FOR))


@dataclass(frozen=True)
class BatchStatus:
    status: Status
    record: dict[str, Any]


def read_status(client: redis.Redis, batch_id: str, *, now: datetime) -> BatchStatus:
    """The batch's status as `GET /consumption/batches/{id}` answers it."""
    unknown = BatchStatus("unknown", {"status": "unknown", "batchId": batch_id})
    if not BATCH_ID.fullmatch(batch_id):
        return unknown
    raw = client.get(key(batch_id))
    if raw is None:
        return unknown
    record: dict[str, Any] = json.loads(raw)
    if record.get("status") == "stored":
        return BatchStatus("stored", record)
    # The record expires with the window; compared here too, so that an expiry Redis has not
    # carried out yet (it expires keys lazily, to the millisecond) never reads as queued.
    if datetime.fromisoformat(record["unknownAfter"]) <= now:
        return unknown
    return BatchStatus("queued", record)
