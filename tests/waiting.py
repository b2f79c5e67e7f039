"""Waiting for something that other processes (workers, the sandbox) do."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import redis

from shared.queues import INGEST_QUEUE

# Where kombu's Redis transport keeps the messages that workers hold unacknowledged.
UNACKED_KEY = "unacked"


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `predicate` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def drained(redis_url: str, queue: str = INGEST_QUEUE) -> Callable[[], bool]:
    """A predicate: no message of `queue` waits or is held unacknowledged by a worker.

    Once it holds, nothing queued before can still run: the positive signal that a test
    waits for before asserting that something happened only once.
    """

    def check() -> bool:
        with redis.Redis.from_url(redis_url) as client:
            if client.llen(queue):
                return False
            # Each entry is [message, exchange, routing key]; other queues' work may be held.
            held = (json.loads(entry) for entry in client.hvals(UNACKED_KEY))
            return not any(routing_key == queue for _, _, routing_key in held)

    return check
