"""Announcing eligibility changes the way Spark does: collected over a window, then one
`UserEligibilityUpdated` event per partner (the sandbox serves one partner).

The directory notes each change as it happens; this module decides when a window closes and
publishes its net changes. A window opens with the first change after the previous one closed
and closes `window` seconds of sandbox time later (the background thread looks at the sandbox
clock, so moving the clock forward closes a window at once, and a frozen clock keeps it open),
or when `flush()` is called. A window whose changes cancel out sends nothing.

Spark does not always announce a lost eligibility; with `announce_removals` off, removed users
are left out of the events and only a full reconcile against `/users/eligible` finds them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from sandbox.clock import Clock
from sandbox.directory import UserDirectory
from sandbox.simulation import user_eligibility_payload
from sandbox.state import Event, JSONObject

log = logging.getLogger(__name__)

# The thread checks the sandbox clock this often (at most), a tenth of the window at least.
MAX_POLL_INTERVAL = 1.0
MIN_POLL_INTERVAL = 0.01


@dataclass(frozen=True)
class EligibilitySwitches:
    """Set through `POST /_sandbox/eligibility`; a reset restores the configured ones."""

    window: float
    announce_removals: bool = True

    def to_control(self) -> dict[str, Any]:
        return {"windowSeconds": self.window, "announceRemovals": self.announce_removals}


class EligibilityAnnouncer:
    def __init__(
        self,
        directory: UserDirectory,
        clock: Clock,
        publish: Callable[[JSONObject], Event],
        *,
        window: float,
    ) -> None:
        self._directory = directory
        self._clock = clock
        self._publish = publish
        self._defaults = EligibilitySwitches(window=window)
        self._switches = self._defaults
        self._cond = threading.Condition()
        # Held while a window's changes are taken and published, so events go out in order
        # and a reset never interleaves with a window closing.
        self._closing = threading.RLock()
        self._stopping = False
        self._nudged = False
        self._thread = threading.Thread(target=self._run, name="sandbox-eligibility", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def switches(self) -> EligibilitySwitches:
        with self._cond:
            return self._switches

    def configure(
        self, *, window: float | None = None, announce_removals: bool | None = None
    ) -> EligibilitySwitches:
        with self._cond:
            current = self._switches
            self._switches = replace(
                current,
                window=current.window if window is None else window,
                announce_removals=(
                    current.announce_removals if announce_removals is None else announce_removals
                ),
            )
            self._nudge()
            return self._switches

    def restore_defaults(self) -> None:
        with self._cond:
            self._switches = self._defaults
            self._nudge()

    def wake(self) -> None:
        """Look at the clock now (it was moved), rather than at the next poll."""
        with self._cond:
            self._nudge()

    @contextmanager
    def held(self) -> Iterator[None]:
        """No window closes inside this block."""
        with self._closing:
            yield

    def flush(self) -> Event | None:
        """Close the current window now; the event it sent, or None when there was nothing
        to announce."""
        with self._closing:
            added, removed = self._directory.take_eligibility_changes()
            if not self.switches().announce_removals:
                removed = []
            if not added and not removed:
                return None
            payload = user_eligibility_payload(now=self._clock.now(), added=added, removed=removed)
            event = self._publish(payload)
        log.info(
            "sandbox eligibility event %s: %d added, %d removed",
            event.event_id,
            len(added),
            len(removed),
        )
        return event

    def window_is_due(self) -> bool:
        since = self._directory.pending_since()
        if since is None:
            return False
        now = self._clock.now()
        # A clock moved back before the window opened closes it too, rather than holding
        # the changes until the clock catches up.
        return now < since or (now - since).total_seconds() >= self.switches().window

    def _nudge(self) -> None:
        """Wake the thread early; the condition's lock is held."""
        self._nudged = True
        self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                interval = min(
                    MAX_POLL_INTERVAL, max(MIN_POLL_INTERVAL, self._switches.window / 10)
                )
                self._cond.wait_for(lambda: self._stopping or self._nudged, timeout=interval)
                if self._stopping:
                    return
                self._nudged = False
            try:
                if self.window_is_due():
                    self.flush()
            except Exception:
                log.exception("sandbox eligibility: closing a window failed")
