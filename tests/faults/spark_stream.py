"""What every fault test shares: a stream of Spark events, and the invariant it is checked by.

The stream is made by the sandbox, as Spark makes it: LPC resource events (whose effect is
an acknowledgement POSTed to Spark, once) alternating with eligibility events (whose effect
is one hint row per announced user, written by the handler). The sandbox delivers each to
the webhooks registered, with Spark's 3 retries, and records every attempt's answer.

The invariant: every event answered 2xx is stored exactly once, every effect happens once
(one acknowledgement accepted per LPC event, the hints of each eligibility event), nothing
acknowledged is lost. One repeat is the ledger's policy, not a fault: an acknowledgement whose
sender died mid-POST (its attempt recorded `unknown` when the lease ran out) is sent again,
the same body under the same Idempotency-Key, because Spark has no way to ask whether it
arrived and a missing acknowledgement is worse than a second copy (worker/reports/__init__.py).
Such copies, at most one per unknown attempt, are counted as `resent`, apart from
`duplicated`. `settle` waits for the effects and returns the one-line outcome every
fault test prints (the README's "Guarantees and figures").
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import psycopg

from shared.queues import INGEST_QUEUE
from tests.fixtures.sandbox import SandboxHandle
from tests.waiting import drained

STREAM_TYPES = ("ResourceLPCRequested", "UserEligibilityUpdated")


@dataclass
class EventStream:
    """Makes `count` events in the sandbox, one every `interval` seconds, on a thread."""

    sandbox: SandboxHandle
    count: int
    interval: float
    created: list[str] = field(default_factory=list)
    _thread: threading.Thread | None = None
    _errors: list[BaseException] = field(default_factory=list)

    def emit(self, number: int) -> str:
        if number % 2:
            return self.sandbox.sandbox.simulate_user_eligibility().event_id
        resource = {
            "resource": {
                "locationId": f"loc-{number}",
                "resourceId": f"r-{number}",
                "meterPointId": "7070",
            }
        }
        answer = self.sandbox.api(
            "POST", "/simulation/events/lpc/resources", json={"resources": [resource]}
        )
        assert answer.status_code == 200, answer.text
        event_id: str = answer.json()["simulatedEvent"]["id"]
        return event_id

    def _run(self) -> None:
        try:
            for number in range(self.count):
                started = time.monotonic()
                self.created.append(self.emit(number))
                time.sleep(max(0.0, self.interval - (time.monotonic() - started)))
        except BaseException as exc:  # surfaced by join()
            self._errors.append(exc)

    def start(self) -> EventStream:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float = 300.0) -> list[str]:
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the stream did not finish in {timeout}s"
        if self._errors:
            raise self._errors[0]
        return list(self.created)


@dataclass
class Outcome:
    fault: str
    sent: int
    answered: int
    stored: int
    lost: int
    duplicated: int
    missing_effects: int
    # Acknowledgements sent again after an attempt whose answer never came (see above).
    resent: int = 0
    notes: str = ""

    def line(self) -> str:
        extra = f"; {self.notes}" if self.notes else ""
        return (
            f"FAULT {self.fault}: sent {self.sent}, answered 2xx {self.answered}, "
            f"stored {self.stored}, lost {self.lost}, duplicated effects {self.duplicated}, "
            f"missing effects {self.missing_effects}, resent after an unknown answer "
            f"{self.resent}{extra}"
        )

    def holds(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.missing_effects == 0


def answered_2xx(sandbox: SandboxHandle) -> set[str]:
    return {d["eventId"] for d in sandbox.control.deliveries() if d["succeeded"]}


def measure(
    fault: str,
    sandbox: SandboxHandle,
    database_url: str,
    created: list[str],
    *,
    answered: set[str] | None = None,
    notes: str = "",
) -> Outcome:
    """The invariant's figures for the events `created`, as they stand now; `answered`: the
    events our ingress answered 2xx, when not the sandbox's deliveries."""
    answered = (answered_2xx(sandbox) if answered is None else answered) & set(created)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            """
            SELECT e.event_id, e.notification_type, e.status,
                   (SELECT count(*) FROM eligibility_hints h WHERE h.event_id = e.event_id),
                   coalesce(jsonb_array_length(e.payload -> 'addedUsers'), 0)
                   + coalesce(jsonb_array_length(e.payload -> 'removedUsers'), 0)
            FROM events e WHERE e.event_id = ANY(%s)
            """,
            (list(created),),
        ).fetchall()
        unknown: Counter[str] = Counter(
            dict(
                conn.execute(
                    """
                    SELECT r.event_id, count(*) FROM report_attempts t
                    JOIN reports r ON r.id = t.report_id
                    WHERE r.kind = 'lpc_ack' AND t.outcome = 'unknown' AND r.event_id = ANY(%s)
                    GROUP BY r.event_id
                    """,
                    (list(created),),
                ).fetchall()
            )
        )
    stored = {row[0] for row in rows}
    acks = Counter({e["eventId"]: len(e["acknowledgements"]) for e in sandbox.control.lpc_events()})
    repeats = {event_id: n - 1 for event_id, n in acks.items() if n > 1}
    resent = sum(min(n, unknown[event_id]) for event_id, n in repeats.items())
    duplicated = sum(repeats.values()) - resent
    missing = 0
    for event_id, kind, status, hints, announced in rows:
        if status != "processed":
            missing += 1
        elif kind == "ResourceLPCRequested":
            missing += acks[event_id] == 0
        elif kind == "UserEligibilityUpdated":
            duplicated += max(0, hints - announced)
            missing += hints < announced
    return Outcome(
        fault,
        sent=len(created),
        answered=len(answered),
        stored=len(stored & set(created)),
        lost=len(answered - stored),
        duplicated=duplicated,
        missing_effects=missing,
        resent=resent,
        notes=notes,
    )


def settle(
    fault: str,
    sandbox: SandboxHandle,
    database_url: str,
    redis_url: str,
    created: list[str],
    *,
    timeout: float = 240.0,
    expect_all: bool = False,
    answered: set[str] | None = None,
    notes: str = "",
) -> Outcome:
    """Wait (up to `timeout`) until every event answered 2xx (every event created, with
    `expect_all`) is stored with its effects and nothing is left queued; print the outcome."""
    deadline = time.monotonic() + timeout
    outcome = measure(fault, sandbox, database_url, created, answered=answered, notes=notes)
    while time.monotonic() < deadline:
        outcome = measure(fault, sandbox, database_url, created, answered=answered, notes=notes)
        complete = outcome.holds() and (not expect_all or outcome.stored == outcome.sent)
        # Drained: no copy of an ingest is left to run again. (The spark queue holds
        # countdown messages, the eligibility reconciles, for minutes: a repeated
        # acknowledgement would show in the sandbox's count instead.)
        if complete and drained(redis_url, INGEST_QUEUE)():
            outcome = measure(fault, sandbox, database_url, created, answered=answered, notes=notes)
            break
        time.sleep(0.5)
    print(outcome.line())
    return outcome
