"""Queue depth and the age of the oldest waiting message, read from the Redis lists that
kombu's Redis transport keeps per queue (and per priority step).

kombu LPUSHes and its consumers BRPOP, so the oldest message is the list's last element. A
message says when it was sent by the `sent_at` header `worker.ops.signals` adds to every
task Celery publishes, or, for ingest messages the ingress writes itself, by its
`received_at` argument. Messages a worker has taken but not acknowledged are not waiting
and not counted.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from shared.queues import DISPATCH_QUEUE, INGEST_QUEUE, SPARK_QUEUE

QUEUES = (INGEST_QUEUE, SPARK_QUEUE, DISPATCH_QUEUE)
# kombu.transport.redis: priority steps 0, 3, 6, 9; step 0 is the list named after the queue.
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (0, 3, 6, 9)
SENT_AT_HEADER = "sent_at"


@dataclass(frozen=True)
class QueueState:
    name: str
    depth: int
    oldest_sent_at: datetime | None

    def oldest_age_seconds(self, now: datetime) -> float | None:
        if self.oldest_sent_at is None:
            return None
        return max((now - self.oldest_sent_at).total_seconds(), 0.0)


def _lists(queue: str) -> list[str]:
    return [
        queue if step == 0 else f"{queue}{_PRIORITY_SEPARATOR}{step}" for step in _PRIORITY_STEPS
    ]


def sent_at(message: bytes) -> datetime | None:
    """When a queued kombu message was sent, or None when it does not say."""
    try:
        envelope: Any = json.loads(message)
        header = envelope.get("headers", {}).get(SENT_AT_HEADER)
        if isinstance(header, int | float):
            return datetime.fromtimestamp(header, UTC)
        body = envelope.get("body")
        if envelope.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        _args, kwargs, _embed = json.loads(body)
        received = kwargs.get("received_at") if isinstance(kwargs, dict) else None
        if isinstance(received, str):
            parsed = datetime.fromisoformat(received)
            return parsed if parsed.tzinfo else None
    except (ValueError, TypeError, AttributeError):
        return None
    return None


def queue_states(client: redis.Redis, queues: tuple[str, ...] = QUEUES) -> list[QueueState]:
    states = []
    for queue in queues:
        names = _lists(queue)
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.llen(name)
                pipe.lindex(name, -1)
            replies = pipe.execute()
        depth = sum(int(n) for n in replies[0::2])
        times = [sent_at(raw) for raw in replies[1::2] if raw is not None]
        known = [t for t in times if t is not None]
        states.append(QueueState(queue, depth, min(known) if known else None))
    return states
