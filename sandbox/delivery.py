"""Webhook delivery: the sandbox pushes each event to subscribed webhooks the way Spark does.

Spark's documented behaviour: a POST of an `EventNotification` signed with the webhook's
secret; anything but a 2xx (or no answer) is retried up to three times with exponential
backoff, then given up. The notificationId stays the same across retries.

A dispatcher thread takes events in order and starts one short-lived thread per
(event, webhook) delivery, so a slow or failing receiver never holds up the others.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import requests

from sandbox.clock import Clock, spark_timestamp
from sandbox.state import DeliveryAttempt, Event, SandboxState, Webhook
from shared.signing import SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)

DEFAULT_RETRY_DELAYS = (1.0, 2.0, 4.0)
DEFAULT_TIMEOUT = 10.0
FAIL_MODES = ("off", "refused", "timeout")


@dataclass(frozen=True)
class DeliverySwitches:
    """Fault switches for deliveries, set through `POST /_sandbox/delivery`.

    enabled:   False pauses delivery; events wait and go out, in order, once re-enabled.
    duplicate: every delivery is sent twice at once, under two notificationIds.
    drop:      deliveries are skipped (recorded as dropped, nothing is sent, no retries).
    delay:     seconds to wait before the first attempt of each delivery.
    fail:      "off", or every attempt fails without reaching the receiver, as when the
               partner's ingress is down: "refused" (no answer, logged with no status code;
               the webhook turns Unhealthy) or "timeout" (logged as a request timeout; the
               webhook turns TimeOut). Attempts are retried and logged as Spark does, so the
               notification log and the webhook's status show the outage.
    """

    enabled: bool = True
    duplicate: bool = False
    drop: bool = False
    delay: float = 0.0
    fail: str = "off"

    def to_control(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "duplicate": self.duplicate,
            "drop": self.drop,
            "delay": self.delay,
            "fail": self.fail,
        }


@dataclass(frozen=True)
class _Job:
    event: Event
    webhook_id: str
    notification_id: str
    delay: float
    generation: int
    cancelled: threading.Event
    fail: str = "off"


def notification_body(notification_id: str, event: Event, sent_at_text: str) -> bytes:
    """The exact bytes Spark POSTs: a compact `EventNotification`, payloadType last in payload."""
    envelope = {
        "notificationId": notification_id,
        "eventId": event.event_id,
        "eventCreatedAtUtc": spark_timestamp(event.created_at),
        "notificationSentUtc": sent_at_text,
        "notificationType": event.notification_type,
        "payload": dict(event.payload),
    }
    return json.dumps(envelope, separators=(",", ":")).encode("utf-8")


class DeliveryWorker:
    def __init__(
        self,
        state: SandboxState,
        clock: Clock,
        *,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._state = state
        self._clock = clock
        self._retry_delays = tuple(retry_delays)
        self._timeout = timeout
        self._cond = threading.Condition()
        self._pending: deque[Event] = deque()
        self._switches = DeliverySwitches()
        self._cancelled = threading.Event()
        self._threads: set[threading.Thread] = set()
        self._dispatching = False
        self._stopping = False
        self._dispatcher = threading.Thread(target=self._run, name="sandbox-delivery", daemon=True)

    @property
    def retry_delays(self) -> tuple[float, ...]:
        return self._retry_delays

    def start(self) -> None:
        self._dispatcher.start()

    def stop(self) -> None:
        """Stop dispatching, abandon retries, and wait for attempts in flight to end."""
        with self._cond:
            self._stopping = True
            self._pending.clear()
            threads = list(self._threads)
            self._cond.notify_all()
        self._cancelled.set()
        if self._dispatcher.is_alive():
            self._dispatcher.join(timeout=self._timeout + 1)
        self._join(threads)

    def submit(self, event: Event) -> None:
        with self._cond:
            self._pending.append(event)
            self._cond.notify_all()

    def switches(self) -> DeliverySwitches:
        with self._cond:
            return self._switches

    def configure(
        self,
        *,
        enabled: bool | None = None,
        duplicate: bool | None = None,
        drop: bool | None = None,
        delay: float | None = None,
        fail: str | None = None,
    ) -> DeliverySwitches:
        if fail is not None and fail not in FAIL_MODES:
            raise ValueError(f"fail must be one of {', '.join(FAIL_MODES)}")
        with self._cond:
            current = self._switches
            self._switches = DeliverySwitches(
                enabled=current.enabled if enabled is None else enabled,
                duplicate=current.duplicate if duplicate is None else duplicate,
                drop=current.drop if drop is None else drop,
                delay=current.delay if delay is None else delay,
                fail=current.fail if fail is None else fail,
            )
            self._cond.notify_all()
            return self._switches

    def reset(self) -> None:
        """Forget queued events, abandon deliveries in progress, restore default switches."""
        with self._cond:
            self._pending.clear()
            self._switches = DeliverySwitches()
            old_cancelled, self._cancelled = self._cancelled, threading.Event()
            threads = list(self._threads)
            self._cond.notify_all()
        old_cancelled.set()
        self._join(threads)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or in flight (retries included); False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._pending and not self._threads and not self._dispatching,
                timeout=timeout,
            )

    def _join(self, threads: list[threading.Thread]) -> None:
        for thread in threads:
            thread.join(timeout=self._timeout + 1)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._stopping or (bool(self._pending) and self._switches.enabled)
                )
                if self._stopping:
                    return
                event = self._pending.popleft()
                switches = self._switches
                cancelled = self._cancelled
                self._dispatching = True
            try:
                self._dispatch(event, switches, cancelled)
            except Exception:
                log.exception("sandbox delivery: dispatching event %s failed", event.event_id)
            finally:
                with self._cond:
                    self._dispatching = False
                    self._cond.notify_all()

    def _dispatch(
        self, event: Event, switches: DeliverySwitches, cancelled: threading.Event
    ) -> None:
        generation = self._state.generation
        targets = [
            webhook
            for webhook in self._state.list_webhooks()
            if webhook.enabled and webhook.subscribes_to(event.notification_type)
        ]
        copies = 2 if switches.duplicate else 1
        for webhook in targets:
            for _ in range(copies):
                job = _Job(
                    event=event,
                    webhook_id=webhook.webhook_id,
                    notification_id=str(uuid.uuid4()),
                    delay=switches.delay,
                    generation=generation,
                    cancelled=cancelled,
                    fail=switches.fail,
                )
                if switches.drop:
                    self._record_dropped(job, webhook)
                else:
                    self._start(job)

    def _start(self, job: _Job) -> None:
        thread = threading.Thread(
            target=self._deliver_and_forget,
            args=(job,),
            name=f"sandbox-delivery-{job.notification_id[:8]}",
            daemon=True,
        )
        # Started under the lock, so reset() and stop() never see (and join) a thread that
        # has not started yet.
        with self._cond:
            if self._stopping:
                return
            self._threads.add(thread)
            thread.start()

    def _deliver_and_forget(self, job: _Job) -> None:
        try:
            self._deliver(job)
        except Exception:
            log.exception("sandbox delivery: notification %s failed", job.notification_id)
        finally:
            with self._cond:
                self._threads.discard(threading.current_thread())
                self._cond.notify_all()

    def _deliver(self, job: _Job) -> None:
        if job.delay > 0 and job.cancelled.wait(job.delay):
            return
        # The wait after each attempt; None after the last one.
        waits: list[float | None] = [*self._retry_delays, None]
        for number, wait in enumerate(waits, start=1):
            attempt = self._attempt_if_still_wanted(job, number)
            if attempt is None:
                return
            if attempt.succeeded or wait is None:
                self._state.set_webhook_health(job.webhook_id, _health(attempt), self._clock.now())
                return
            if job.cancelled.wait(wait):
                return

    def _attempt_if_still_wanted(self, job: _Job, number: int) -> DeliveryAttempt | None:
        """Send and record one attempt, unless the sandbox was reset or the webhook was
        deleted or disabled meanwhile (then Spark stops trying too)."""
        if job.cancelled.is_set():
            return None
        webhook = self._state.get_webhook(job.webhook_id)
        if webhook is None or not webhook.enabled:
            return None
        attempt = self._attempt(job, webhook, number)
        if job.cancelled.is_set() or not self._state.record_attempt(attempt, job.generation):
            return None
        return attempt

    def _attempt(self, job: _Job, webhook: Webhook, number: int) -> DeliveryAttempt:
        sent_at = self._clock.now()
        body = notification_body(job.notification_id, job.event, spark_timestamp(sent_at))
        headers = {"Content-Type": "application/json; charset=utf-8"}
        signature = None
        if webhook.secret is not None:
            signature = sign(webhook.secret.encode("utf-8"), body)
            headers[SIGNATURE_HEADER] = signature
        attempt = DeliveryAttempt(
            notification_id=job.notification_id,
            event_id=job.event.event_id,
            webhook_id=webhook.webhook_id,
            webhook_url=webhook.url,
            notification_type=job.event.notification_type,
            attempt=number,
            sent_at=sent_at,
            body=body.decode("utf-8"),
            signature=signature,
        )
        started = time.monotonic()
        if job.fail == "refused":
            return replace(
                attempt,
                error="ConnectionError: refused (the sandbox's fail switch)",
                duration_ms=_since(started),
            )
        if job.fail == "timeout":
            return replace(
                attempt,
                error="timeout (the sandbox's fail switch)",
                timed_out=True,
                duration_ms=round(self._timeout * 1000),
            )
        try:
            response = requests.post(
                webhook.url,
                data=body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            return replace(
                attempt, error=f"timeout: {exc}", timed_out=True, duration_ms=_since(started)
            )
        except requests.RequestException as exc:
            return replace(
                attempt, error=f"{type(exc).__name__}: {exc}", duration_ms=_since(started)
            )
        error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        return replace(
            attempt, status_code=response.status_code, error=error, duration_ms=_since(started)
        )

    def _record_dropped(self, job: _Job, webhook: Webhook) -> None:
        self._state.record_attempt(
            DeliveryAttempt(
                notification_id=job.notification_id,
                event_id=job.event.event_id,
                webhook_id=webhook.webhook_id,
                webhook_url=webhook.url,
                notification_type=job.event.notification_type,
                attempt=1,
                sent_at=self._clock.now(),
                body="",
                signature=None,
                error="dropped by the sandbox's drop switch",
                dropped=True,
            ),
            job.generation,
        )


def _health(attempt: DeliveryAttempt) -> str:
    if attempt.succeeded:
        return "Healthy"
    return "TimeOut" if attempt.timed_out else "Unhealthy"


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
