"""Dispatchers: who is told each target's plan. Chosen by SPARK_DISPATCHER.

A dispatcher gets a batch of plans of one kind (a price curve's, `"kind": "curve"`, or an LPC
event's caps, `"kind": "lpc"`) and returns one `Outcome` per plan, in order. It may also
raise: the whole batch then counts as failed with the exception as the reason. Either way
the decision rows in PostgreSQL keep the plan pending for a retry, so a dispatcher never has
to retry or queue anything itself; it only has to give up within its timeout.

    log     writes the plans to the worker log (the default: nothing to set up); every plan
            counts as accepted
    http    POSTs {"plans": [...]} to SPARK_DISPATCH_URL, signed with SPARK_DISPATCH_SECRET;
            a 2xx accepts every plan, unless its JSON answer has "results" (one per plan, in
            order: {"accepted": false, "reason": "..."} refuses that plan)
    celery  sends task SPARK_DISPATCH_TASK(plans=[...]) to queue SPARK_DISPATCH_QUEUE, for the
            partner's own Celery workers; a plan on the partner's queue counts as accepted
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import requests
from celery import Celery
from kombu.entity import Queue

from shared.config import CurveSettings
from shared.signing import SIGNATURE_HEADER, sign

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


class Plan(Protocol):
    """What a dispatcher is given: a curve's plan for one target (worker.curves.plans) or an
    LPC event's caps for one target (worker.lpc.dispatch)."""

    @property
    def event_id(self) -> str: ...
    @property
    def revision(self) -> int: ...
    @property
    def target_label(self) -> str:
        """The target, for log lines: "r1/loc1"."""
        ...

    @property
    def subject(self) -> str:
        """What the plan is of, for log lines: "curve E", "LPC event E"."""
        ...

    @property
    def content_key(self) -> str:
        """The field of to_json() that targets of one event may share ("periods", "caps")."""
        ...

    def shared_content(self) -> Any:
        """That field's content, hashable, to group targets that get the same."""
        ...

    def to_json(self) -> dict[str, Any]: ...


class Dispatcher(Protocol):
    name: str

    def dispatch(self, plans: Sequence[Plan]) -> list[Outcome]: ...

    def close(self) -> None: ...


def body_of(plans: Sequence[Plan]) -> bytes:
    return json.dumps(
        {"plans": [plan.to_json() for plan in plans]}, separators=(",", ":"), ensure_ascii=False
    ).encode()


class LogDispatcher:
    """One INFO line per distinct plan in a batch (targets that get the same periods or caps
    share it), every target at DEBUG: readable at 100,000 targets."""

    name = "log"

    def dispatch(self, plans: Sequence[Plan]) -> list[Outcome]:
        groups: dict[tuple[str, int, Any], list[Plan]] = {}
        for plan in plans:
            key = (plan.event_id, plan.revision, plan.shared_content())
            groups.setdefault(key, []).append(plan)
        for (_, revision, _), members in groups.items():
            first = members[0]
            content = json.dumps(first.to_json()[first.content_key], separators=(",", ":"))
            log.info(
                "plan for %d target(s) (%s%s) of %s revision %d: %s",
                len(members),
                first.target_label,
                f" and {len(members) - 1} more" if len(members) > 1 else "",
                first.subject,
                revision,
                content,
            )
            if log.isEnabledFor(logging.DEBUG):
                for plan in members:
                    log.debug("plan target %s", plan.target_label)
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

    def dispatch(self, plans: Sequence[Plan]) -> list[Outcome]:
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
            return _answers(response, len(plans))
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

    def dispatch(self, plans: Sequence[Plan]) -> list[Outcome]:
        self._app.send_task(
            self.task, kwargs={"plans": [plan.to_json() for plan in plans]}, queue=self.queue
        )
        return [SENT] * len(plans)

    def close(self) -> None:
        return None


def _answers(response: requests.Response, count: int) -> list[Outcome]:
    """A 2xx: every plan accepted, unless the answer gives one result per plan. A refused
    plan is final (the control system said no to it as such); results that do not fit the
    batch are a failed attempt, retried."""
    try:
        answer = response.json()
    except ValueError:
        return [SENT] * count
    results = answer.get("results") if isinstance(answer, dict) else None
    if results is None:
        return [SENT] * count
    if not isinstance(results, list) or len(results) != count:
        got = len(results) if isinstance(results, list) else type(results).__name__
        return [Outcome(False, f"answer has {got} result(s) for {count} plan(s)")] * count
    outcomes = []
    for result in results:
        if isinstance(result, dict) and result.get("accepted") is False:
            reason = str(result.get("reason") or "no reason given")[:_MAX_REASON]
            outcomes.append(Outcome(False, f"refused by the control system: {reason}", retry=False))
        elif isinstance(result, dict) and result.get("accepted") is True:
            outcomes.append(SENT)
        else:
            outcomes.append(Outcome(False, f"unreadable result {str(result)[:100]!r}"))
    return outcomes


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
