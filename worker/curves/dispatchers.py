"""Dispatchers: who is told each target's plan. Chosen by SPARK_DISPATCHER.

A dispatcher gets a batch of plans and returns one `Outcome` per plan, in order. It may also
raise: the whole batch then counts as failed with the exception as the reason. Either way
the decision rows in PostgreSQL keep the plan pending for a retry, so a dispatcher never has
to retry or queue anything itself; it only has to give up within its timeout.

    log     writes the plans to the worker log (the default: nothing to set up)
    http    POSTs {"plans": [...]} to SPARK_DISPATCH_URL, signed with SPARK_DISPATCH_SECRET
    celery  sends task SPARK_DISPATCH_TASK(plans=[...]) to queue SPARK_DISPATCH_QUEUE, for the
            partner's own Celery workers
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import requests
from celery import Celery
from kombu.entity import Queue

from shared.config import CurveSettings
from shared.signing import SIGNATURE_HEADER, sign
from worker.curves.plans import TargetPlan

log = logging.getLogger(__name__)

# Statuses where the control system will answer the same to the same plan: retrying is futile.
_PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 405, 410, 413, 415, 422})
_MAX_REASON = 500


@dataclass(frozen=True)
class Outcome:
    sent: bool
    reason: str | None = None
    # False: retrying cannot help (the plan was refused as such); recorded as failed at once.
    retry: bool = True


SENT = Outcome(sent=True)


class Dispatcher(Protocol):
    name: str

    def dispatch(self, plans: list[TargetPlan]) -> list[Outcome]: ...

    def close(self) -> None: ...


def body_of(plans: list[TargetPlan]) -> bytes:
    return json.dumps(
        {"plans": [plan.to_json() for plan in plans]}, separators=(",", ":"), ensure_ascii=False
    ).encode()


class LogDispatcher:
    """One INFO line per distinct plan in a batch (targets that get the same periods share
    it), every target at DEBUG: readable at 100,000 targets."""

    name = "log"

    def dispatch(self, plans: list[TargetPlan]) -> list[Outcome]:
        groups: dict[tuple[str, int, tuple[Any, ...]], list[TargetPlan]] = {}
        for plan in plans:
            key = (plan.curve.event_id, plan.revision, plan.periods)
            groups.setdefault(key, []).append(plan)
        for (event_id, revision, _), members in groups.items():
            first = members[0]
            periods = json.dumps(first.to_json()["periods"], separators=(",", ":"))
            log.info(
                "plan for %d target(s) (%s/%s%s) of curve %s revision %d: %s",
                len(members),
                first.resource_id,
                first.location_id,
                f" and {len(members) - 1} more" if len(members) > 1 else "",
                event_id,
                revision,
                periods,
            )
            if log.isEnabledFor(logging.DEBUG):
                for plan in members:
                    log.debug("plan target %s/%s", plan.resource_id, plan.location_id)
        return [SENT] * len(plans)

    def close(self) -> None:
        return None


class HttpDispatcher:
    """POSTs the batch to the partner's control system.

    Signed like Spark's webhooks (base64 HMAC-SHA256 of the body in X-Payload-Signature) but
    with our own secret, so the receiver can reuse the same check. The Idempotency-Key is the
    body's hash: a retry of the same batch carries the same key.
    """

    name = "http"

    def __init__(self, url: str, secret: bytes, timeout: float) -> None:
        self.url = url
        self._secret = secret
        self.timeout = timeout
        self._session = requests.Session()

    def __repr__(self) -> str:
        return f"HttpDispatcher(url={self.url!r}, timeout={self.timeout})"

    def dispatch(self, plans: list[TargetPlan]) -> list[Outcome]:
        body = body_of(plans)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, body),
            "Idempotency-Key": hashlib.sha256(body).hexdigest(),
        }
        try:
            response = self._session.post(
                self.url, data=body, headers=headers, timeout=(self.timeout, self.timeout)
            )
        except requests.Timeout:
            return [Outcome(False, f"no answer within {self.timeout:g}s")] * len(plans)
        except requests.RequestException as exc:
            return [Outcome(False, f"{type(exc).__name__}: {exc}"[:_MAX_REASON])] * len(plans)
        if 200 <= response.status_code < 300:
            return [SENT] * len(plans)
        reason = f"HTTP {response.status_code}: {response.text[:200]}".strip()
        retry = response.status_code not in _PERMANENT_STATUSES
        return [Outcome(False, reason, retry=retry)] * len(plans)

    def close(self) -> None:
        self._session.close()


class CeleryDispatcher:
    """One task message per batch, on the partner's queue of our broker."""

    name = "celery"

    def __init__(self, app: Celery, task: str, queue: str) -> None:
        self._app = app
        self.task = task
        # A Queue object, not a name: our app only declares its own queues.
        self.queue = Queue(queue)

    def dispatch(self, plans: list[TargetPlan]) -> list[Outcome]:
        self._app.send_task(
            self.task, kwargs={"plans": [plan.to_json() for plan in plans]}, queue=self.queue
        )
        return [SENT] * len(plans)

    def close(self) -> None:
        return None


def _log(settings: CurveSettings, app: Celery) -> Dispatcher:
    return LogDispatcher()


def _http(settings: CurveSettings, app: Celery) -> Dispatcher:
    # load_settings refuses "http" without both.
    assert settings.dispatch_url
    assert settings.dispatch_secret
    return HttpDispatcher(
        settings.dispatch_url, settings.dispatch_secret, settings.dispatch_timeout_seconds
    )


def _celery(settings: CurveSettings, app: Celery) -> Dispatcher:
    # load_settings refuses "celery" without both.
    assert settings.dispatch_task
    assert settings.dispatch_queue
    return CeleryDispatcher(app, settings.dispatch_task, settings.dispatch_queue)


# A new kind of dispatcher is one entry here and one name in shared.config.DISPATCHERS.
DISPATCHERS: dict[str, Callable[[CurveSettings, Celery], Dispatcher]] = {
    "log": _log,
    "http": _http,
    "celery": _celery,
}


def dispatcher_from_settings(settings: CurveSettings, app: Celery) -> Dispatcher:
    return DISPATCHERS[settings.dispatcher](settings, app)


def describe(value: Any) -> str:
    """A failure as a short reason for the decision row."""
    return f"{type(value).__name__}: {value}"[:_MAX_REASON]
