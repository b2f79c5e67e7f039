"""A stand-in for the partner's own control system: the http dispatcher's receiver.

It records every POST and answers from a script: a status code, a JSON object (a 200 with that
body, e.g. per-plan "results"), or "hang" (no answer until released or the server stops). This
is not a stand-in for anything of ours.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

HANG = "hang"

# A status code, HANG, or a JSON object answered with a 200.
Answer = int | str | dict[str, Any]


@dataclass(frozen=True)
class Received:
    body: bytes
    headers: dict[str, str]

    @property
    def plans(self) -> list[dict[str, Any]]:
        plans: list[dict[str, Any]] = json.loads(self.body)["plans"]
        return plans


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class ControlSystem:
    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._script: deque[Answer] = deque()
        self.default: Answer = 200
        self._received: list[Received] = []
        self._released = threading.Event()
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_Quiet
        )
        self.url = f"http://127.0.0.1:{self._server.port}/plans"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def answer(self, *answers: Answer) -> None:
        """The next requests get these answers, in order; later ones get `default`."""
        with self._lock:
            self._script.extend(answers)

    def release(self) -> None:
        """Let every hanging request (and any later one) answer 200."""
        self._released.set()

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def plans(self) -> list[dict[str, Any]]:
        return [plan for request in self.received for plan in request.plans]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        with self._lock:
            self._lock.wait_for(lambda: len(self._received) >= count, timeout=timeout)
            received = list(self._received)
        assert len(received) >= count, f"expected {count} requests, got {len(received)}"
        return received

    def stop(self) -> None:
        self.release()
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()

    def _wsgi(self, environ: Any, start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        body = request.get_data()
        with self._lock:
            self._received.append(Received(body, dict(request.headers)))
            answer = self._script.popleft() if self._script else self.default
            self._lock.notify_all()
        if answer == HANG:
            # Hangs until released; a stopping test releases it so teardown never waits.
            self._released.wait(timeout=60)
            answer = 200
        if isinstance(answer, dict):
            status, content = 200, answer
        else:
            status = int(answer)
            content = {"status": status}
        response = Response(json.dumps(content), status=status, mimetype="application/json")
        return response(environ, start_response)


@pytest.fixture
def control() -> Iterator[ControlSystem]:
    system = ControlSystem()
    try:
        yield system
    finally:
        system.stop()
