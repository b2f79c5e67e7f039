"""The ingress as production runs it, for the tests and the benchmarks: gunicorn with
ingress/gunicorn_conf.py (its worker class, worker count and timeouts) serving
ingress.wsgi:app, bound to a free loopback port.

`make run` starts the ingress from the Procfile instead (devstack/runstack.py).
"""

from __future__ import annotations

import http.client
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from devstack.servers import ServiceError, environment_without, free_port, port_open, terminate

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "ingress" / "gunicorn_conf.py"
WSGI_APP = "ingress.wsgi:app"
WEBHOOK_PATH = "/webhooks/spark"
# Settings the ingress must take from the caller alone: a test's Redis, never the one the
# developer's shell points at.
SETTINGS_PREFIXES = ("SPARK_", "REDIS_", "DATABASE_", "PORT")


def listening(port: int) -> bool:
    """Whether the gunicorn arbiter at `port` accepts connections. A request may still wait
    until a worker has imported the app."""
    return port_open("127.0.0.1", port, timeout=0.2)


def answers_readyz(port: int) -> bool:
    """Whether a worker of the ingress at `port` answers GET /readyz with 200."""
    if not listening(port):
        return False
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/readyz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@dataclass
class GunicornIngress:
    """gunicorn serving `app` with the ingress's settings file on a free loopback port,
    queueing on `redis_url` and checking signatures with `secret`; its output goes to
    `log_path`. `start` returns once `ready(port)` holds; also a context manager.

    `app` may be another WSGI app (bench/ingress.py's bare Flask baseline) served with the
    same settings; `wrap` changes the command line, e.g. to run it in a namespace of its own
    (tests/faults/test_second_host.py).
    """

    redis_url: str
    secret: str
    log_path: Path
    app: str = WSGI_APP
    wrap: Callable[[list[str]], list[str]] | None = None
    ready: Callable[[int], bool] = listening
    start_timeout: float = 30.0
    stop_timeout: float = 15.0
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        return self.url + WEBHOOK_PATH

    @property
    def pid(self) -> int:
        """The arbiter's pid: its workers are its children."""
        assert self.process is not None
        return self.process.pid

    def command(self) -> list[str]:
        args = [
            sys.executable, "-m", "gunicorn", "-c", str(CONFIG),
            "--bind", f"127.0.0.1:{self.port}", self.app,
        ]  # fmt: skip
        return self.wrap(args) if self.wrap else args

    def start(self) -> GunicornIngress:
        self.port = free_port()
        environ = environment_without(
            SETTINGS_PREFIXES,
            PORT=str(self.port),
            REDIS_URL=self.redis_url,
            SPARK_WEBHOOK_SECRETS=self.secret,
            PYTHONPATH=str(ROOT),
        )
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=ROOT, env=environ, stdout=log, stderr=log
            )
        deadline = time.monotonic() + self.start_timeout
        while not self.ready(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log_tail = self.log_path.read_text(errors="replace")[-3000:]
                raise ServiceError(f"gunicorn {self.app} did not start:\n{log_tail}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            terminate(self.process, self.stop_timeout)

    def __enter__(self) -> GunicornIngress:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
