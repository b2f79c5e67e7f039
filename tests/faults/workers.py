"""Processes for the worker and Redis fault scenarios: the worker as the Procfile runs it
(under devstack.supervise), a stream of signed webhooks, and the CLI."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests

from shared.signing import SIGNATURE_HEADER, sign
from tests.fixtures.services import REPO
from tests.waiting import drained, wait_for
from tests.worker.events import body, notification

BIN = Path(sys.executable).parent
# Spark's retries of a webhook: 3, after these waits (sandbox.delivery's defaults).
SPARK_RETRY_DELAYS = (1.0, 2.0, 4.0)


def procfile_command(process: str) -> list[str]:
    """The Procfile's command for `process`, with this virtual environment's programs."""
    for line in (REPO / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            argv = shlex.split(command)
            return [str(BIN / arg) if (BIN / arg).exists() else arg for arg in argv]
    raise KeyError(process)


@dataclass
class SupervisedWorker:
    """`make run`'s worker: the Procfile's command (supervisor included), two pool processes."""

    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> SupervisedWorker:
        command = procfile_command("worker")
        command += ["-c", "2", "-n", f"faults-{uuid.uuid4().hex[:8]}@%h"]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                env=self.env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own group, as honcho starts it.
                start_new_session=True,
            )
        self.wait_for_log("ready.", timeout)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, needle: str, timeout: float, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log().count(needle) >= count:
                return
            assert self.alive, self.log()[-4000:]
            time.sleep(0.2)
        raise AssertionError(f"{needle!r} not logged within {timeout}s:\n{self.log()[-4000:]}")

    @property
    def crashes(self) -> int:
        """Times the worker stopped on an error Celery could not recover from."""
        return self.log().count("Unrecoverable error")

    def dump_stacks(self, wait: float = 3.0) -> None:
        """Ask the worker's main process for every thread's stack (Celery logs them on
        SIGUSR1): what it is stuck on, for a failed test's log."""
        assert self.process is not None
        found = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
        )
        for pid in found.stdout.split():
            os.kill(int(pid), signal.SIGUSR1)
        time.sleep(wait)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def post_like_spark(webhook_url: str, secret: str, raw: bytes, stop: threading.Event) -> bool:
    """POST a signed body as Spark does: the first try and 3 retries. True once answered 2xx."""
    headers = {SIGNATURE_HEADER: sign(secret.encode(), raw), "Content-Type": "application/json"}
    for wait in (*SPARK_RETRY_DELAYS, None):
        try:
            answer = requests.post(webhook_url, data=raw, headers=headers, timeout=10)
            if 200 <= answer.status_code < 300:
                return True
        except requests.RequestException:
            pass
        if wait is None or stop.wait(wait):
            return False
    return False


def unhandled_event() -> tuple[str, bytes]:
    """A signed-ready event of a type no handler acts on: stored, and nothing else."""
    document = notification(
        notification_type="SomethingNew", payload={"payloadType": "SomethingNew"}
    )
    return document["eventId"], body(document)


@dataclass
class WebhookStream:
    """Threads POSTing new events to the ingress, retrying like Spark; what was answered 2xx
    and what was given up are recorded."""

    webhook_url: str
    secret: str
    threads: int = 8
    pause: float = 0.02
    accepted: set[str] = field(default_factory=set)
    given_up: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _running: list[threading.Thread] = field(default_factory=list)

    def start(self) -> WebhookStream:
        for n in range(self.threads):
            thread = threading.Thread(target=self._send, name=f"webhooks-{n}", daemon=True)
            thread.start()
            self._running.append(thread)
        return self

    def _send(self) -> None:
        while not self._stop.is_set():
            event_id, raw = unhandled_event()
            ok = post_like_spark(self.webhook_url, self.secret, raw, self._stop)
            with self._lock:
                (self.accepted if ok else self.given_up).add(event_id)
            self._stop.wait(self.pause)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._running:
            thread.join(30)


def stored_event_ids(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        return {row[0] for row in conn.execute("SELECT event_id FROM events")}


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", "--env-file", "/nonexistent", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@dataclass(frozen=True)
class Recovered:
    """What the recovery beat runs every 15 minutes enqueued: the delivery-log check (events
    Spark delivered, answered 2xx, and not stored) and then the backfill (the rest)."""

    by_check: int
    by_backfill: int


def recover_as_beat(env: dict[str, str], redis_url: str, within: float) -> Recovered:
    """The delivery-log check, then the backfill, one after the other so that each one's count
    is its own, each followed by the ingest queue draining (within `within` seconds)."""
    check = cli(env, "webhooks", "check-deliveries", "--json")
    checked = json.loads(check.stdout)
    assert checked["error"] is None, check.stderr
    wait_for(drained(redis_url), within, "the ingest queue to drain")
    backfill = cli(env, "events", "backfill", "--json")
    assert backfill.returncode == 0, backfill.stderr
    wait_for(drained(redis_url), within, "the ingest queue to drain")
    return Recovered(checked["recovered"], json.loads(backfill.stdout)["enqueued"])
