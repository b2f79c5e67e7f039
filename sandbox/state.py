"""The sandbox's in-memory store: one lock around plain collections of immutable records.

Records are frozen dataclasses; an update replaces the record, so a reader never sees half of
a change and can keep what it got without holding the lock. Each record knows how to render
itself in Spark's JSON shape (`to_api`). Other areas keep their records in modules of their
own in the same style (`sandbox.users`, `sandbox.reports`).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sandbox.clock import spark_timestamp

JSONObject = dict[str, Any]

# Spark's webhook notificationType for each payloadType it sends.
NOTIFICATION_TYPES = {
    "PriceCurve": "PriceCurveCreated",
    "UserEligibility": "UserEligibilityUpdated",
    "LocationLPC": "LocationLPCRequested",
    "ResourceLPC": "ResourceLPCRequested",
    "LPCReservation": "LPCReservationCreated",
}

# Logs kept for inspection are capped so a long `make run` does not grow without bound.
MAX_LOG_ENTRIES = 10_000


@dataclass(frozen=True)
class Webhook:
    webhook_id: str
    url: str
    secret: str | None = field(repr=False)
    name: str | None
    notification_types: tuple[str, ...]
    enabled: bool
    status: str
    created: datetime
    modified: datetime
    last_analyzed: datetime

    def subscribes_to(self, notification_type: str) -> bool:
        return notification_type in self.notification_types

    def to_api(self) -> JSONObject:
        """GetWebhookResponse; the secret is never echoed."""
        return {
            "webhookId": self.webhook_id,
            "webhookUrl": self.url,
            "name": self.name,
            "notificationTypes": list(self.notification_types),
            "enabled": self.enabled,
            "status": self.status,
            "modifiedDate": spark_timestamp(self.modified),
            "createdDate": spark_timestamp(self.created),
            "lastAnalyzedTimestamp": spark_timestamp(self.last_analyzed),
        }


@dataclass(frozen=True)
class Event:
    event_id: str
    created_at: datetime
    # Already in Spark's JSON shape, with payloadType as the last key.
    payload: Mapping[str, Any]

    @property
    def payload_type(self) -> str:
        return str(self.payload["payloadType"])

    @property
    def notification_type(self) -> str:
        return NOTIFICATION_TYPES.get(self.payload_type, "Unknown")

    def to_api(self) -> JSONObject:
        """GetEventResponse."""
        return {
            "id": self.event_id,
            "createdAt": spark_timestamp(self.created_at),
            "payload": dict(self.payload),
        }


@dataclass(frozen=True)
class DeliveryAttempt:
    """One POST of a notification to a webhook, or one delivery the `drop` switch skipped."""

    notification_id: str
    event_id: str
    webhook_id: str
    webhook_url: str
    notification_type: str
    attempt: int
    sent_at: datetime
    body: str
    signature: str | None
    status_code: int | None = None
    error: str | None = None
    timed_out: bool = False
    duration_ms: int | None = None
    dropped: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    def to_control(self) -> JSONObject:
        return {
            "notificationId": self.notification_id,
            "eventId": self.event_id,
            "webhookId": self.webhook_id,
            "webhookUrl": self.webhook_url,
            "notificationType": self.notification_type,
            "attempt": self.attempt,
            "sentAt": spark_timestamp(self.sent_at),
            "statusCode": self.status_code,
            "error": self.error,
            "timedOut": self.timed_out,
            "durationMs": self.duration_ms,
            "dropped": self.dropped,
            "succeeded": self.succeeded,
            "signature": self.signature,
            "body": self.body,
        }

    def to_api_log(self, tenant_id: str) -> JSONObject:
        """WebhookNotificationLog."""
        return {
            "webhookId": self.webhook_id,
            "tenantId": tenant_id,
            "partnerEventId": self.event_id,
            "notificationId": self.notification_id,
            "notificationType": self.notification_type,
            "notificationSent": spark_timestamp(self.sent_at),
            "sparkSignature": self.signature,
            "webhookUrl": self.webhook_url,
            "requestTimeout": self.timed_out,
            "responseStatusCode": self.status_code,
            "requestDurationMs": self.duration_ms,
        }


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    query: Mapping[str, str]
    json: Any
    form: Mapping[str, str] | None
    content_type: str | None
    received_at: datetime

    def to_control(self) -> JSONObject:
        return {
            "method": self.method,
            "path": self.path,
            "query": dict(self.query),
            "json": self.json,
            "form": None if self.form is None else dict(self.form),
            "contentType": self.content_type,
            "time": spark_timestamp(self.received_at),
        }


@dataclass(frozen=True)
class FaultResponse:
    """What the next matching API request gets instead of normal behaviour.

    `status` None means "only wait `delay` seconds, then answer normally".
    """

    status: int | None = None
    retry_after: str | None = None
    delay: float = 0.0
    body: Any = None

    def to_control(self) -> JSONObject:
        return {
            "status": self.status,
            "retryAfter": self.retry_after,
            "delay": self.delay,
            "body": self.body,
        }


class SandboxState:
    """Everything the sandbox remembers. All methods are safe to call from any thread."""

    def __init__(self, tenant_id: str, token_time: Callable[[], float] = time.monotonic) -> None:
        self.tenant_id = tenant_id
        self._lock = threading.RLock()
        self._generation = 0
        # Token expiry uses the monotonic clock, not the sandbox clock, so moving the sandbox
        # clock for an event test never logs a client out; tests expire tokens explicitly, or
        # start a sandbox whose tokens follow its clock (SandboxConfig.tokens_on_sandbox_clock).
        self._token_time = token_time
        self._tokens: dict[str, float] = {}
        self._webhooks: dict[str, Webhook] = {}
        self._events: list[Event] = []
        self._events_by_id: dict[str, Event] = {}
        self._attempts: deque[DeliveryAttempt] = deque(maxlen=MAX_LOG_ENTRIES)
        self._requests: deque[ReceivedRequest] = deque(maxlen=MAX_LOG_ENTRIES)
        self._faults: dict[tuple[str, str], deque[FaultResponse]] = {}

    @property
    def generation(self) -> int:
        """Bumped by `reset`; work started before a reset must not write into the new state."""
        with self._lock:
            return self._generation

    def reset(self) -> None:
        """Forget all data, logs and faults. Issued tokens stay valid."""
        with self._lock:
            self._generation += 1
            self._webhooks.clear()
            self._events.clear()
            self._events_by_id.clear()
            self._attempts.clear()
            self._requests.clear()
            self._faults.clear()

    # Tokens

    def issue_token(self, ttl_seconds: float) -> str:
        token = secrets.token_urlsafe(32)
        now = self._token_time()
        with self._lock:
            self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
            self._tokens[token] = now + ttl_seconds
        return token

    def token_is_valid(self, token: str) -> bool:
        with self._lock:
            expires = self._tokens.get(token)
        return expires is not None and expires > self._token_time()

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    # Webhooks

    def add_webhook(self, webhook: Webhook) -> None:
        with self._lock:
            self._webhooks[webhook.webhook_id] = webhook

    def replace_webhook(self, webhook: Webhook) -> bool:
        """Store a changed webhook; False when it was deleted meanwhile."""
        with self._lock:
            if webhook.webhook_id not in self._webhooks:
                return False
            self._webhooks[webhook.webhook_id] = webhook
            return True

    def get_webhook(self, webhook_id: str) -> Webhook | None:
        with self._lock:
            return self._webhooks.get(webhook_id)

    def list_webhooks(self) -> list[Webhook]:
        with self._lock:
            return list(self._webhooks.values())

    def delete_webhook(self, webhook_id: str) -> bool:
        with self._lock:
            return self._webhooks.pop(webhook_id, None) is not None

    def set_webhook_health(self, webhook_id: str, status: str, when: datetime) -> None:
        with self._lock:
            current = self._webhooks.get(webhook_id)
            if current is not None:
                self._webhooks[webhook_id] = replace(current, status=status, last_analyzed=when)

    # Events

    def add_event(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)
            self._events_by_id[event.event_id] = event

    def get_event(self, event_id: str) -> Event | None:
        with self._lock:
            return self._events_by_id.get(event_id)

    def event_count(self) -> int:
        with self._lock:
            return len(self._events)

    def events_newest_first(self, offset: int, limit: int) -> tuple[list[Event], int]:
        """One page of events, most recent first, and the total number of events."""
        with self._lock:
            total = len(self._events)
            newest_first = self._events[::-1]
        return newest_first[offset : offset + limit], total

    # Deliveries

    def record_attempt(self, attempt: DeliveryAttempt, generation: int) -> bool:
        with self._lock:
            if generation != self._generation:
                return False
            self._attempts.append(attempt)
            return True

    def attempts(self) -> list[DeliveryAttempt]:
        with self._lock:
            return list(self._attempts)

    def notification_logs(self, webhook_id: str | None = None) -> list[DeliveryAttempt]:
        """The latest attempt of each notification actually sent, most recent first."""
        latest: dict[str, DeliveryAttempt] = {}
        with self._lock:
            for attempt in self._attempts:
                if attempt.dropped:
                    continue
                if webhook_id is not None and attempt.webhook_id != webhook_id:
                    continue
                # Re-inserting moves a retried notification to the end (most recent).
                latest.pop(attempt.notification_id, None)
                latest[attempt.notification_id] = attempt
        return list(reversed(latest.values()))

    def latest_attempt(self, notification_id: str) -> DeliveryAttempt | None:
        with self._lock:
            for attempt in reversed(self._attempts):
                if attempt.notification_id == notification_id and not attempt.dropped:
                    return attempt
        return None

    # Received API requests

    def log_request(self, entry: ReceivedRequest) -> None:
        with self._lock:
            self._requests.append(entry)

    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # Faults

    def add_faults(self, method: str, path: str, responses: Iterable[FaultResponse]) -> int:
        key = (method.upper(), path)
        with self._lock:
            queue = self._faults.setdefault(key, deque())
            queue.extend(responses)
            return len(queue)

    def next_fault(self, method: str, path: str) -> FaultResponse | None:
        key = (method.upper(), path)
        with self._lock:
            queue = self._faults.get(key)
            if not queue:
                return None
            fault = queue.popleft()
            if not queue:
                del self._faults[key]
            return fault

    def pending_faults(self) -> dict[tuple[str, str], list[FaultResponse]]:
        with self._lock:
            return {key: list(queue) for key, queue in self._faults.items()}

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
