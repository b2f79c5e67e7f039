"""What a handler is given and what it returns: the types every handler and the inbox share.

A leaf module: it imports nothing of the worker, so the handler table (`handlers.py`) can
import the handlers and the handlers can import these types without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from shared.config import Settings
from shared.db import Connection


@dataclass(frozen=True)
class StoredEvent:
    event_id: str
    notification_type: str
    payload_type: str | None
    created_at: datetime | None
    payload: dict[str, Any]


@dataclass(frozen=True)
class FollowUp:
    """A task to send once the event's transaction has committed, so that it never starts
    before the data it needs is visible."""

    task: str
    queue: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    countdown: float | None = None


# Runs inside the event's transaction; what it returns is sent after the commit.
Handler = Callable[[Connection, StoredEvent, Settings], list[FollowUp]]


class TaskSender(Protocol):
    """What sends the follow-ups: a Celery app (`Celery.send_task`)."""

    def send_task(self, name: str, *args: Any, **options: Any) -> Any: ...
