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

# gthread, not sync: a client trickling its body ties up one thread, not a whole worker, and
# keep-alive works without a buffering proxy in front (reliability notes, row 15).
worker_class = "gthread"
# Eight request threads as four processes of two, rather than two of four: each webhook
# waits on a Redis round trip, and every wait hands the GIL to another thread of the same
# process. Fewer threads per process take less of that contention (measured with bench.ingress
# on two cores when the ingress still wrote its messages by hand). Scale with --workers.
workers = 4
threads = 2

# Requests are bounded by the Redis socket timeout (2 s, ingress/queueing.py). This one is the
# arbiter's: a worker whose main loop has not checked in for 10 s is hung and gets replaced.
timeout = 10
graceful_timeout = 10
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
