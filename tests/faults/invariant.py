"""The fault scenarios' common parts (issue 15, Faults): the ingress as production runs it
(gunicorn with ingress/gunicorn_conf.py), a stream of signed webhooks sent the way Spark sends
them, a control system that counts the plans it is sent, and the invariant each scenario ends
with:

    every webhook answered 2xx is stored exactly once, every effect happens once, nothing
    acknowledged is lost

printed as one line per scenario (`FAULT <name>: sent=… answered_2xx=… stored=… lost=…
duplicated=…`), the figures of README "Guarantees and figures".

The stream mixes events of a type no handler acts on (stored, nothing else) and price curves
of one target each, a target of their own, for tomorrow: a curve's effect is its plan, POSTed
once to the control system (SPARK_DISPATCHER=http) and counted there.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
import redis
import requests
from celery import Celery
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from devstack.ingress import GunicornIngress
from shared.config import CurveSettings
from shared.queues import DISPATCH_QUEUE
from shared.signing import SIGNATURE_HEADER, sign
from tests.fixtures.services import WorkerProcess
from tests.waiting import drained, wait_for
from worker.curves.tasks import DISPATCH_DUE_TASK, dispatch_lease

SECRET = "faults-secret"
DISPATCH_SECRET = "faults-dispatch-secret"
# Spark's retries of a webhook: three, after these waits (sandbox/delivery.py's defaults).
SPARK_RETRY_DELAYS = (1.0, 2.0, 4.0)
# Spark's own request timeout is not documented; the ingress answers well within this one.
CLIENT_TIMEOUT = 10.0


@dataclass
class ControlSystem:
    """The partner's control system: counts every plan POSTed to it, by (event, target,
    revision), and answers 200."""

    received: Counter[tuple[str, str, str, int]] = field(default_factory=Counter)
    server: BaseWSGIServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}/plans"

    def start(self) -> ControlSystem:
        @Request.application
        def app(request: Request) -> Response:
            plans = json.loads(request.get_data())["plans"]
            with self._lock:
                for plan in plans:
                    key = (plan["eventId"], plan["resourceId"], plan["locationId"])
                    self.received[(*key, int(plan["revision"]))] += 1
            return Response("{}", status=200, content_type="application/json")

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def events(self) -> set[str]:
        with self._lock:
            return {key[0] for key in self.received}

    def duplicates(self) -> int:
        with self._lock:
            return sum(count - 1 for count in self.received.values())

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def env(self) -> dict[str, str]:
        return {
            "SPARK_DISPATCHER": "http",
            "SPARK_DISPATCH_URL": self.url,
            "SPARK_DISPATCH_SECRET": DISPATCH_SECRET,
            "SPARK_DISPATCH_RETRY_SECONDS": "1",
        }


@dataclass
class Restarting:
    """A worker started again whenever it exits, as compose (`restart: unless-stopped`) and
    `make run` run it; `exits` counts the times it had to be."""

    start: Callable[[], WorkerProcess]
    current: WorkerProcess | None = None
    exits: int = 0
    # Starts that failed (the worker exited before it was ready, e.g. while Redis still
    # refused writes): tried again, as compose does.
    failed_starts: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def run(self) -> Restarting:
        self.current = self.start()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            process = self.current.process if self.current else None
            if process is not None and process.poll() is not None:
                try:
                    self.current = self.start()
                except AssertionError:
                    # Not ready (WorkerProcess.start raises): `current` is still the exited
                    # worker, so the next turn starts another.
                    self.failed_starts += 1
                    continue
                # Counted once the new worker is ready, so that a caller waiting for the
                # count finds the new one in `current`.
                self.exits += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)


def gunicorn(redis_url: str, log_path: Path) -> GunicornIngress:
    """The ingress as production runs it (devstack/ingress.py), taking the stream's SECRET;
    started by `start()` or by entering it."""
    return GunicornIngress(redis_url, SECRET, log_path, stop_timeout=20)


class Pipeline(NamedTuple):
    """What a scenario's webhooks go through: the ingress as production runs it, the
    control system the plans reach, and the worker, started again whenever it exits."""

    ingress: GunicornIngress
    plans: ControlSystem
    worker: Restarting


@contextmanager
def running_pipeline(
    database_url: str,
    redis_url: str,
    start_worker: Callable[..., WorkerProcess],
    log_dir: Path,
    **worker_env: str,
) -> Iterator[Pipeline]:
    """The pipeline on `database_url` and `redis_url` (the ingress's log in `log_dir`),
    stopped afterwards, the worker first; `worker_env` adds to the worker's settings (a
    Spark to call, a visibility timeout)."""
    with ExitStack() as stack:
        plans = ControlSystem().start()
        stack.callback(plans.stop)
        ingress = stack.enter_context(gunicorn(redis_url, log_dir / "gunicorn.log"))
        worker = Restarting(
            lambda: start_worker(
                database_url, redis_url, concurrency=2, **plans.env(), **worker_env
            )
        ).run()
        stack.callback(worker.stop)
        yield Pipeline(ingress, plans, worker)


def unhandled_event() -> dict[str, Any]:
    return _notification("SomethingNew", {"payloadType": "SomethingNew"})


def curve_event(target: tuple[str, str] | None = None) -> dict[str, Any]:
    """A price curve for the next day's first three hours, for one target: `target`
    (resourceId, locationId), or one of its own."""
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    n = uuid.uuid4().hex[:12]
    resource_id, location_id = target or (f"ev-{n}", f"home-{n}")
    payload = {
        "payloadType": "PriceCurve",
        "priceArea": "NO1",
        "targets": [{"resourceId": resource_id, "locationId": location_id}],
        "priceCurveDelta": {
            "resolution": "01:00:00",
            "energyUnit": "kWh",
            "currency": "NOK",
            "points": [
                {"timestamp": (tomorrow + timedelta(hours=h)).isoformat(), "price": -0.5}
                for h in range(3)
            ],
        },
    }
    return _notification("PriceCurveCreated", payload)


def _notification(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "notificationId": str(uuid.uuid4()),
        "eventId": str(uuid.uuid4()),
        "eventCreatedAtUtc": now,
        "notificationSentUtc": now,
        "notificationType": kind,
        "payload": payload,
    }


@dataclass
class SparkStream:
    """Threads sending new events to the ingress as Spark does: a first try and three
    retries, a new event after each one answered 2xx or given up. Every third is a curve."""

    webhook_url: str
    threads: int = 8
    # Between one thread's events: about 20 a second from six threads, what one worker of two
    # pool processes stores on this machine's two shared cores (a faster stream only builds
    # a backlog that the test then waits out).
    pause: float = 0.3
    sent: dict[str, str] = field(default_factory=dict)  # event id -> notification type
    accepted: set[str] = field(default_factory=set)
    given_up: set[str] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    # The longest any one request waited for its answer, 2xx or not, and every answer's
    # (status, seconds).
    slowest: float = 0.0
    answers: list[tuple[int, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _running: list[threading.Thread] = field(default_factory=list)

    def start(self) -> SparkStream:
        for n in range(self.threads):
            thread = threading.Thread(target=self._run, args=(n,), daemon=True)
            thread.start()
            self._running.append(thread)
        return self

    def count_accepted(self) -> int:
        with self._lock:
            return len(self.accepted)

    def wait_accepted(self, more: int, timeout: float) -> None:
        target = self.count_accepted() + more
        deadline = time.monotonic() + timeout
        while self.count_accepted() < target:
            assert time.monotonic() < deadline, f"fewer than {more} webhooks accepted in {timeout}s"
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop starting new events; each thread finishes (or gives up) the one it has."""
        self._stop.set()
        for thread in self._running:
            thread.join(60)

    def _run(self, number: int) -> None:
        session = requests.Session()
        sent = 0
        while not self._stop.is_set():
            document = curve_event() if (sent + number) % 3 == 0 else unhandled_event()
            sent += 1
            self.deliver(document, session)
            self._stop.wait(self.pause)

    def deliver(self, document: dict[str, Any], session: requests.Session | None = None) -> bool:
        """Send one event as Spark does, counted with the stream's; True if answered 2xx."""
        session = session or requests.Session()
        raw = json.dumps(document, separators=(",", ":")).encode()
        headers = {SIGNATURE_HEADER: sign(SECRET.encode(), raw), "Content-Type": "application/json"}
        event_id = document["eventId"]
        with self._lock:
            self.sent[event_id] = document["notificationType"]
        for wait in (*SPARK_RETRY_DELAYS, None):
            began = time.monotonic()
            try:
                status = session.post(
                    self.webhook_url, data=raw, headers=headers, timeout=CLIENT_TIMEOUT
                ).status_code
            except requests.RequestException:
                status = 0
            with self._lock:
                self.statuses[status] += 1
                took = time.monotonic() - began
                self.slowest = max(self.slowest, took)
                self.answers.append((status, took))
                if 200 <= status < 300:
                    self.accepted.add(event_id)
                    return True
            # Spark's retries go on even once the test stops starting new events.
            if wait is None:
                break
            time.sleep(wait)
        with self._lock:
            self.given_up.add(event_id)
        return False


def stored_events(database_url: str) -> dict[str, int]:
    """Event id -> deliveries recorded, for every event stored."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT e.event_id, count(d.*) FROM events e"
            " LEFT JOIN event_deliveries d ON d.event_id = e.event_id GROUP BY e.event_id"
        ).fetchall()
    return {event_id: int(count) for event_id, count in rows}


@dataclass(frozen=True)
class Outcome:
    name: str
    sent: int
    answered_2xx: int
    stored: int
    lost: int
    duplicated: int
    extra: str = ""

    def line(self) -> str:
        text = (
            f"FAULT {self.name}: sent={self.sent} answered_2xx={self.answered_2xx} "
            f"stored={self.stored} lost={self.lost} duplicated={self.duplicated}"
        )
        return text + (f" ({self.extra})" if self.extra else "")


def outcome(
    name: str, stream: SparkStream, database_url: str, plans: ControlSystem, extra: str = ""
) -> Outcome:
    """The invariant's figures. `lost`: answered 2xx and not stored, or a stored curve whose
    plan never reached the control system. `duplicated`: an effect that happened twice (a
    plan received again at the same revision, a curve stored under two rows)."""
    stored = stored_events(database_url)
    with psycopg.connect(database_url) as conn:
        curves = Counter(
            row[0] for row in conn.execute("SELECT event_id FROM price_curves").fetchall()
        )
    curve_ids = {e for e in stream.accepted if stream.sent[e] == "PriceCurveCreated"}
    lost = len(stream.accepted - set(stored)) + len(curve_ids - plans.events())
    duplicated = plans.duplicates() + sum(n - 1 for n in curves.values())
    return Outcome(
        name,
        sent=len(stream.sent),
        answered_2xx=len(stream.accepted),
        stored=len(stream.accepted & set(stored)),
        lost=lost,
        duplicated=duplicated,
        extra=extra,
    )


def report(result: Outcome) -> None:
    """The outcome line: shown by `pytest -rP` (or -s), and kept in the test's output."""
    print(result.line())


def send_as_beat(redis_url: str, task: str, queue: str) -> None:
    """Send `task` to `queue` once, as beat sends it on its schedule (worker/schedule.py)."""
    producer = Celery("faults-beat", broker=redis_url, set_as_current=False)
    try:
        producer.send_task(task, queue=queue)
    finally:
        producer.close()


def sweep_dispatches(redis_url: str) -> None:
    """What beat does every minute (worker/schedule.py): the dispatch sweep, which sends the
    plans of curves whose follow-up task was lost (sent while Redis could not take it)."""
    send_as_beat(redis_url, DISPATCH_DUE_TASK, DISPATCH_QUEUE)


def sweeping(redis_url: str, predicate: Callable[[], bool]) -> Callable[[], bool]:
    """`predicate` for `wait_for`, sending the dispatch sweep as beat does on its schedule:
    every ten seconds here rather than every minute, which only shortens the wait."""
    next_sweep = 0.0

    def swept() -> bool:
        nonlocal next_sweep
        if time.monotonic() >= next_sweep:
            sweep_dispatches(redis_url)
            next_sweep = time.monotonic() + 10.0
        return predicate()

    return swept


def settle(
    stream: SparkStream,
    database_url: str,
    redis_url: str,
    plans: ControlSystem,
    *,
    within: float = 120.0,
    drain: bool = True,
) -> float:
    """Wait until everything answered 2xx is stored and every stored curve's plan is sent;
    the seconds it took. On a timeout, say what is missing and where Redis has it. With
    `drain`, also until no ingest message waits or is held: nothing can still run again."""
    began = time.monotonic()
    deadline = began + within
    while not stream.accepted <= set(stored_events(database_url)):
        if time.monotonic() > deadline:
            missing = stream.accepted - set(stored_events(database_url))
            with redis.Redis.from_url(redis_url) as client:
                where = f"ingest queue {client.llen('ingest')}, unacked {client.hlen('unacked')}"
            raise AssertionError(
                f"{len(missing)} of {len(stream.accepted)} webhooks answered 2xx not stored "
                f"after {within:.0f} s ({where}), e.g. {sorted(missing)[:3]}"
            )
        time.sleep(0.2)
    took = time.monotonic() - began
    if drain:
        wait_for(drained(redis_url), 60, "the ingest queue drained")
    curves = {e for e in stream.accepted if stream.sent[e] == "PriceCurveCreated"}
    # A claim PostgreSQL cut off so that its run could not hand it back (the commit went
    # through, its answer did not) waits for its lease, then for beat's sweep.
    wait_for(
        sweeping(redis_url, lambda: curves <= plans.events()),
        dispatch_lease(CurveSettings()).total_seconds() + 60,
        "every curve's plan at the control system",
    )
    wait_for(drained(redis_url, DISPATCH_QUEUE), 60, "the dispatch queue drained")
    return took
