"""A worker and an ingress on a second "host", sharing Redis and PostgreSQL with the first.

The second host's processes run in a UTS namespace of their own (`unshare -u`) whose
hostname is `host-b`: Celery names the worker `...@host-b` from it, as on a second machine.
(Their network stays the machine's: both hosts reach the one Redis and the one PostgreSQL on
loopback, as two hosts reach them over a network.) Spark (the sandbox) has a webhook on each
host's ingress, so every event arrives at both at once and is raced by both workers: each
is stored once, its effects happen once.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import psycopg
import pytest

from devstack.ingress import GunicornIngress
from tests.faults.spark_stream import STREAM_TYPES, EventStream, settle
from tests.fixtures.sandbox import WEBHOOK_SECRET, SandboxHandle, spark_env
from tests.fixtures.services import REPO, IngressServer, WorkerProcess, worker_env
from tests.waiting import wait_for

EVENTS = 80
INTERVAL = 0.05
HOST_B = "host-b"
BACKFILLED = r"events\.backfill_events\[[0-9a-f-]+\] succeeded"


def on_host_b(args: list[str]) -> list[str]:
    """`args` run in a UTS namespace whose hostname is HOST_B."""
    return ["unshare", "--uts", "sh", "-c", f'hostname {HOST_B} && exec "$@"', "sh", *args]


def namespaces_available() -> bool:
    try:
        probe = subprocess.run(on_host_b(["true"]), capture_output=True, check=False)
    except FileNotFoundError:
        return False
    return probe.returncode == 0


# `unshare --uts` needs root (or user namespaces); without it there is no second hostname.
pytestmark = pytest.mark.skipif(
    not namespaces_available(), reason="`unshare --uts` is not permitted here"
)


class HostBWorker(WorkerProcess):
    def _spawn(self, log_file: IO[bytes]) -> subprocess.Popen[bytes]:
        args = [
            sys.executable, "-m", "celery", "-A", "worker.app", "worker",
            "-Q", "ingest,spark,dispatch", "--pool", "prefork", "-c", str(self.concurrency),
            "--without-mingle", "--without-gossip", "--loglevel", "INFO",
            "-n", f"test-{uuid.uuid4().hex[:8]}@%h",
        ]  # fmt: skip
        return subprocess.Popen(
            on_host_b(args),
            env=self.env,
            cwd=REPO,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.fixture
def host_b_ingress(redis_url: str, tmp_path: Path) -> Iterator[str]:
    """gunicorn with ingress/gunicorn_conf.py on host B; its webhook URL."""
    with GunicornIngress(
        redis_url,
        WEBHOOK_SECRET,
        tmp_path / "gunicorn-host-b.log",
        wrap=on_host_b,
        start_timeout=60,
        stop_timeout=20,
    ) as ingress:
        yield ingress.webhook_url


@pytest.fixture
def host_b_worker(
    database_url: str, redis_url: str, sandbox: SandboxHandle, tmp_path: Path
) -> Iterator[WorkerProcess]:
    worker = HostBWorker(
        env=worker_env(database_url, redis_url, **spark_env(sandbox)),
        log_path=tmp_path / "worker-host-b.log",
    )
    try:
        yield worker.start(timeout=60)
    finally:
        worker.stop()


def test_it_processes_each_event_once_when_two_hosts_receive_and_run_it(
    sandbox: SandboxHandle,
    database_url: str,
    redis_url: str,
    *,
    start_ingress: Callable[..., IngressServer],
    start_worker: Callable[..., WorkerProcess],
    host_b_ingress: str,
    host_b_worker: WorkerProcess,
) -> None:
    ingress_a = start_ingress(redis_url, secret=WEBHOOK_SECRET)
    worker_a = start_worker(database_url, redis_url, concurrency=2, **spark_env(sandbox))
    workers = {"A": worker_a, "B": host_b_worker}
    assert re.search(rf"test-[0-9a-f]+@{HOST_B} ready", host_b_worker.log())
    # Each worker backfills from Spark's /events when it starts: done before the stream, so
    # that every event comes through the webhooks.
    wait_for(
        lambda: sum(len(re.findall(BACKFILLED, w.log())) for w in workers.values()) == 2,
        60,
        "the start-up backfills",
    )
    sandbox.register_webhook(ingress_a.webhook_url, notification_types=STREAM_TYPES, name="a")
    sandbox.register_webhook(host_b_ingress, notification_types=STREAM_TYPES, name="b")

    created = EventStream(sandbox, EVENTS, INTERVAL).start().join()
    sandbox.wait_for_deliveries(timeout=60)
    outcome = settle("second host", sandbox, database_url, redis_url, created)

    answered_by = {
        name: len(
            {
                d["eventId"]
                for d in sandbox.control.deliveries()
                if d["succeeded"] and d["webhookUrl"] == url
            }
        )
        for name, url in (("A", ingress_a.webhook_url), ("B", host_b_ingress))
    }
    stored_by = {
        name: len(re.findall(r"ingest_event\[[0-9a-f-]+\] succeeded .*'new'", w.log()))
        for name, w in workers.items()
    }
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM event_deliveries WHERE source = 'webhook'"
        ).fetchone()
    deliveries = row[0] if row else 0
    outcome.notes = (
        f"answered 2xx by host A / B: {answered_by['A']} / {answered_by['B']}; "
        f"{deliveries} deliveries recorded; stored by the worker on A / B: "
        f"{stored_by['A']} / {stored_by['B']}"
    )
    print(outcome.line())
    assert answered_by == {"A": EVENTS, "B": EVENTS}
    assert outcome.holds(), outcome.line()
    assert outcome.stored == outcome.sent == EVENTS
    assert deliveries >= 2 * EVENTS
    assert sum(stored_by.values()) == EVENTS
    assert all(stored_by.values()), "both hosts' workers must have stored events"
