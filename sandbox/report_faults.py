"""Random faults on `POST /reports`, set through `POST /_sandbox/reports/faults`.

The shape (every field optional; a POST replaces all of them, so leave out what you want off):

    {"errorRate": 0.3,            # chance that a request is faulted at all, 0..1
     "status500Share": 1,         # relative weights of the four kinds among faulted requests
     "status429Share": 1,
     "slowShare": 0,
     "lostAnswerShare": 1,
     "retryAfter": "1",           # Retry-After of a 429 (string, or a number of seconds)
     "slowSeconds": 2.0,          # how long a slow answer waits before being handled
     "lostAnswerMode": "drop",    # "drop" the connection, or "delay" the answer
     "lostAnswerSeconds": 30.0,   # how long a delayed lost answer waits (beyond your timeout)
     "seed": 7}                   # seed of the faults' own random generator

Each request draws once from a generator seeded with `seed`: with probability `errorRate` it
gets one of the kinds, chosen in proportion to the shares:

- status500: a 500 without a body; the report is not stored.
- status429: a 429 with `Retry-After`; the report is not stored.
- slow: the request waits `slowSeconds`, then is handled as usual.
- lostAnswer: the report is checked and, when acceptable, stored; then the answer is lost:
  the connection is closed without one ("drop"), or the answer waits `lostAnswerSeconds`
  ("delay") so the client gives up first. A report that is rejected gets its 400 as usual.

Waits end early when the sandbox is reset or stopped.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sandbox.parsing import not_number


class FaultKind(StrEnum):
    STATUS_500 = "status500"
    STATUS_429 = "status429"
    SLOW = "slow"
    LOST_ANSWER = "lostAnswer"


LOST_ANSWER_MODES = ("drop", "delay")


@dataclass(frozen=True)
class ReportFaultSettings:
    error_rate: float = 0.0
    status500_share: float = 0.0
    status429_share: float = 0.0
    slow_share: float = 0.0
    lost_answer_share: float = 0.0
    retry_after: str = "1"
    slow_seconds: float = 2.0
    lost_answer_mode: str = "drop"
    lost_answer_seconds: float = 30.0
    seed: int | None = None

    @property
    def weights(self) -> dict[FaultKind, float]:
        return {
            FaultKind.STATUS_500: self.status500_share,
            FaultKind.STATUS_429: self.status429_share,
            FaultKind.SLOW: self.slow_share,
            FaultKind.LOST_ANSWER: self.lost_answer_share,
        }

    def to_control(self) -> dict[str, Any]:
        return {
            "errorRate": self.error_rate,
            "status500Share": self.status500_share,
            "status429Share": self.status429_share,
            "slowShare": self.slow_share,
            "lostAnswerShare": self.lost_answer_share,
            "retryAfter": self.retry_after,
            "slowSeconds": self.slow_seconds,
            "lostAnswerMode": self.lost_answer_mode,
            "lostAnswerSeconds": self.lost_answer_seconds,
            "seed": self.seed,
        }


_SHARES = {
    "status500Share": "status500_share",
    "status429Share": "status429_share",
    "slowShare": "slow_share",
    "lostAnswerShare": "lost_answer_share",
}
_SECONDS = {"slowSeconds": "slow_seconds", "lostAnswerSeconds": "lost_answer_seconds"}


def parse_report_faults(body: dict[str, Any]) -> ReportFaultSettings:
    """The settings a control request asks for; ValueError says what is wrong."""
    fields: dict[str, Any] = {}
    error_rate = body.get("errorRate", 0.0)
    if not_number(error_rate) or not 0 <= error_rate <= 1:
        raise ValueError("errorRate must be a number from 0 to 1")
    fields["error_rate"] = float(error_rate)
    for name, attribute in (_SHARES | _SECONDS).items():
        value = body.get(name)
        if value is None:
            continue
        if not_number(value) or value < 0:
            raise ValueError(f"{name} must be a number >= 0")
        fields[attribute] = float(value)
    if fields["error_rate"] > 0 and not any(fields.get(a) for a in _SHARES.values()):
        raise ValueError("an errorRate above 0 needs at least one share above 0")
    retry_after = body.get("retryAfter")
    if retry_after is not None:
        if not_number(retry_after) and not isinstance(retry_after, str):
            raise ValueError("retryAfter must be a string or a number of seconds")
        fields["retry_after"] = retry_after if isinstance(retry_after, str) else f"{retry_after:g}"
    mode = body.get("lostAnswerMode")
    if mode is not None:
        if mode not in LOST_ANSWER_MODES:
            raise ValueError(f"lostAnswerMode must be one of {', '.join(LOST_ANSWER_MODES)}")
        fields["lost_answer_mode"] = mode
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError("seed must be an integer")
    fields["seed"] = seed
    return ReportFaultSettings(**fields)


class ReportFaults:
    """The current settings, their generator, and what was drawn so far."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settings = ReportFaultSettings()
        self._rng = random.Random()
        self._drawn: Counter[FaultKind] = Counter()
        self._released = threading.Event()

    def settings(self) -> ReportFaultSettings:
        with self._lock:
            return self._settings

    def configure(self, settings: ReportFaultSettings) -> None:
        with self._lock:
            self._settings = settings
            self._rng = random.Random(settings.seed)
            self._drawn = Counter()

    def reset(self) -> None:
        """No faults; requests waiting in a slow or lost answer go on at once."""
        with self._lock:
            self._settings = ReportFaultSettings()
            self._rng = random.Random()
            self._drawn = Counter()
        self.release()

    def release(self) -> None:
        """End every wait in progress now."""
        with self._lock:
            released, self._released = self._released, threading.Event()
        released.set()

    def draw(self) -> tuple[FaultKind | None, ReportFaultSettings]:
        """The fault for one request (None: none), and the settings it was drawn under."""
        with self._lock:
            settings = self._settings
            if settings.error_rate <= 0 or self._rng.random() >= settings.error_rate:
                return None, settings
            kinds = [(kind, w) for kind, w in settings.weights.items() if w > 0]
            pick = self._rng.random() * sum(w for _, w in kinds)
            chosen = kinds[-1][0]
            for kind, weight in kinds:
                if pick < weight:
                    chosen = kind
                    break
                pick -= weight
            self._drawn[chosen] += 1
            return chosen, settings

    def drawn(self) -> dict[str, int]:
        with self._lock:
            return {kind.value: self._drawn[kind] for kind in FaultKind}

    def wait(self, seconds: float) -> None:
        """Sleep, unless the sandbox is reset (or stopped) meanwhile."""
        with self._lock:
            released = self._released
        released.wait(seconds)
