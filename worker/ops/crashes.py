"""Worker crashes: a worker whose main process stops on an error Celery cannot recover from
("Unrecoverable error", e.g. kombu's Redis transport failing to close a channel after Redis
was killed under load) is counted in PostgreSQL, in the ops mark `worker_crash`.

The count lives in the database because the crashed process, and with it its own metrics, is
gone; whatever restarts it (devstack.supervise under the Procfile, compose's restart policy)
need not know about it. `serve-metrics` exports it as `spark_partner_worker_crashes_total`,
which monitoring/alerts.yml alerts on.
"""

from __future__ import annotations

import logging

import psycopg
from psycopg.types.json import Jsonb

from shared import logging as logs
from shared.db import connect, fetch_one
from worker.ops.marks import WORKER_CRASH

log = logging.getLogger(__name__)

# The error's text is kept short: it names a Python error, not a request.
ERROR_CHARS = 300


def record_crash(database_url: str, hostname: str, error: BaseException) -> int | None:
    """Count one crash of worker `hostname`; returns the count in all, or None when it could
    not be recorded (PostgreSQL unreachable too: then the log line is all there is)."""
    text = repr(error)[:ERROR_CHARS]
    try:
        with connect(database_url, connect_timeout=5) as conn:
            row = fetch_one(
                conn,
                "count_mark",
                {"name": WORKER_CRASH, "detail": Jsonb({"hostname": hostname, "error": text})},
            )
            conn.commit()
    except psycopg.Error as exc:
        logs.alert(
            log, "worker_crash", "worker %s stopped on %s (not counted: %s)", hostname, text, exc
        )
        return None
    total = int(row["total"]) if row else 0
    logs.alert(
        log,
        "worker_crash",
        "worker %s stopped on %s (%d worker crashes counted); whatever runs it starts it again",
        hostname,
        text,
        total,
    )
    return total
