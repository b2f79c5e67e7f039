"""The request body, whole and in time: a client has BODY_TIMEOUT seconds, from the end of
its headers, to send the whole body, or it gets 408 and the connection closes; a body whose
connection closed before all of it came is a 400. Neither reaches a view, so neither is queued.

Why a total deadline and not a socket timeout: a slow-loris client sends one byte a second,
so no single read ever waits long; only a deadline over the whole body cuts it off. The
headers have one of their own: gunicorn's async workers read them under a `keepalive`-second
timer (ingress/gunicorn_conf.py).

The deadline needs the gevent worker (ingress/gunicorn_conf.py): a `gevent.Timeout` interrupts
the greenlet that waits on the socket, and costs nothing while the body arrives in time.
Outside a gevent greenlet (Flask's test client, a threaded server) nothing could interrupt a
blocked read, so the deadline is only checked between reads.

A body that times out is never handed to the view: the read raises, the view answers 408, and
nothing is queued. The timer's exception is an `Exception`, so gunicorn marks the body as
failed and closes the connection after the answer instead of waiting for the rest of the body.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import gevent
from werkzeug.exceptions import ClientDisconnected, RequestTimeout
from werkzeug.wsgi import get_content_length

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger(__name__)

# Spark's bodies are at most 1 MiB and a batch of readings at most 8 MiB: 10 s asks for
# about 7 Mbit/s for the largest batch, and for a webhook far less than any real link gives.
BODY_TIMEOUT = 10.0


class _TimerFired(Exception):
    """Raised in the reading greenlet by the deadline's timer (one instance per read)."""


class DeadlineInput:
    """`wsgi.input` with a deadline over all its reads (RequestTimeout once it has passed),
    that also refuses a body cut short (ClientDisconnected).

    The second is needed because gunicorn hands the app a body whose connection closed
    before Content-Length bytes came as if it were complete (it tells werkzeug it limits
    the stream itself, `wsgi.input_terminated`); a truncated body must never be queued.
    """

    def __init__(
        self, stream: Any, seconds: float, length: int | None, remote_addr: str | None
    ) -> None:
        self._stream = stream
        self._seconds = seconds
        self._deadline = time.monotonic() + seconds
        self._length = length
        self._received = 0
        self._remote_addr = remote_addr
        self.timed_out = False

    def _timed_out(self) -> RequestTimeout:
        if not self.timed_out:
            self.timed_out = True
            logger.warning(
                "request body not received within %g s, answering 408 (from %s)",
                self._seconds,
                self._remote_addr,
            )
        return RequestTimeout(f"the request body did not arrive within {self._seconds:g} s")

    def _cut_short(self) -> ClientDisconnected:
        logger.warning(
            "request body cut short: the connection closed after %d of %s bytes (from %s)",
            self._received,
            "?" if self._length is None else self._length,
            self._remote_addr,
        )
        return ClientDisconnected()

    def _read(self, method: str, size: int | None) -> bytes:
        remaining = self._deadline - time.monotonic()
        if self.timed_out or remaining <= 0:
            raise self._timed_out()
        read = getattr(self._stream, method)
        fired = _TimerFired()
        # Only a greenlet can be interrupted; elsewhere (tests, threads) it would need a hub
        # of its own per thread, for a timer that could not fire during a blocking read.
        timer = gevent.Timeout(remaining, fired) if _in_greenlet() else None
        if timer is not None:
            timer.start()
        try:
            data: bytes = read(size)
        except _TimerFired as exc:
            if exc is not fired:
                raise
            raise self._timed_out() from None
        except OSError as exc:  # gunicorn's NoMoreData: the connection closed mid-chunk
            raise self._cut_short() from exc
        finally:
            if timer is not None:
                timer.close()
        self._received += len(data)
        # Nothing more (or all there was, for read()): the body's end or the connection's.
        # A short read is not an end: a stream may return less than asked for.
        ended = not data or (method == "read" and (size is None or size < 0))
        if ended and self._length is not None and self._received < self._length:
            raise self._cut_short()
        return data

    def read(self, size: int | None = -1) -> bytes:
        return self._read("read", size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._read("readline", size)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return list(self)

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


def _in_greenlet() -> bool:
    return isinstance(gevent.getcurrent(), gevent.Greenlet)


class BodyTimeout:
    """WSGI middleware: every request's `wsgi.input` under a BODY_TIMEOUT-second deadline,
    and refused when cut short."""

    def __init__(self, app: WSGIApplication, seconds: float = BODY_TIMEOUT) -> None:
        self.app = app
        self.seconds = seconds

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ["wsgi.input"] = DeadlineInput(
            environ["wsgi.input"],
            self.seconds,
            get_content_length(environ),
            environ.get("REMOTE_ADDR"),
        )
        return self.app(environ, start_response)
