"""gunicorn settings for the ingress: `gunicorn -c ingress/gunicorn_conf.py ingress.wsgi:app`.

Command-line flags override these (e.g. `--workers 4`, `--bind 127.0.0.1:8000`).
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from shared.config import load_settings
from shared.logging import configure_logging
from shared.prometheus import prepare_multiprocess_dir

bind = f"0.0.0.0:{load_settings().port}"

# gevent, not gthread: a thread waits on its connection until the whole request is in, so
# eight threads were eight slow clients away from starving the ingress (50 clients sending a
# byte a second took normal webhooks from a 9 ms p99 to 10 s timeouts). A greenlet per
# connection costs a few KiB, and the request is served as soon as its last byte arrives.
# gevent.monkey.patch_all() runs in each worker before the app is imported (preload_app
# stays off): redis-py, kombu's publishing and its connection pool then wait on gevent
# sockets and locks, prometheus_client's multiprocess files are plain mmaps, and the ingress
# never imports psycopg (tests/ingress/test_slow_clients.py checks). Scale with --workers.
worker_class = "gevent"
workers = 4
# Connections each process holds at once (slow ones included) before it stops accepting.
worker_connections = 1000

# The arbiter's: a worker whose main loop has not checked in for 10 s is hung and gets
# replaced. Requests are bounded by the header and body timeouts below and the Redis socket
# timeout (2 s, ingress/queueing.py).
timeout = 10
graceful_timeout = 10
# Also the header timeout: gevent workers read each request's line and headers (the first
# one on a connection too) under a `keepalive`-second timer and close the connection
# without an answer when it fires. It must stay above 0: without keep-alive, gunicorn reads
# headers with no timer at all. The body has BODY_TIMEOUT (ingress/body_timeout.py).
keepalive = 5

# gunicorn 27's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl),
# so every gunicorn on a host (tests, benchmarks, `make run`) would fight over it; nothing
# here uses it.
control_socket_disable = True


class StructuredLogger(Logger):
    """gunicorn's logger, handing every line of the arbiter and its workers to
    shared.logging (LOG_FORMAT), from the first one ("Starting gunicorn") on.

    The access log stays off; the error log (worker boots, timeouts) goes to the root logger,
    whose one handler renders everything, the app's own lines included. Workers inherit this
    when the arbiter forks them.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        configure_logging("ingress")
        for log in (self.error_log, self.access_log):
            log.handlers = []
            log.propagate = True


logger_class = StructuredLogger


def on_starting(server: object) -> None:
    # Before any worker is forked or imports prometheus_client: every worker then writes its
    # counts where GET /metrics (any worker) sums them.
    prepare_multiprocess_dir("spark-partner-ingress-metrics-")


def child_exit(server: object, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
