"""`--emit-every`: one simulated event every N seconds, the kinds taken in turn."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Sequence

from sandbox.state import Event

log = logging.getLogger(__name__)


class DemoEmitter:
    def __init__(self, simulations: Sequence[Callable[[], Event]], every: float) -> None:
        self._simulations = list(simulations)
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-emitter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        kinds = itertools.cycle(self._simulations)
        while not self._stop.wait(self._every):
            try:
                event = next(kinds)()
            except Exception:
                log.exception("sandbox emitter: simulating an event failed")
                continue
            log.info("sandbox emitted %s event %s", event.payload_type, event.event_id)
