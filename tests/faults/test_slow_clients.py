"""Slow clients (slow loris) against the ingress as the Procfile runs it.

Fifty connections send their request one byte a second, for ATTACK_SECONDS, reconnecting
whenever the ingress cuts one off; meanwhile normal signed webhooks arrive at a steady rate,
each on a new connection, as Spark sends them. Half the slow clients trickle their headers
(cut off by the header timeout, gunicorn's `keepalive`), half send their headers at once and
trickle the body (408 after BODY_TIMEOUT). Every slow request is a correctly signed webhook:
were it ever taken as complete, it would be queued.

The printed figures are the README's ("Slow clients" under Operations). To measure the
gthread worker the ingress used before:
`GUNICORN_CMD_ARGS="--worker-class gthread --threads 2" pytest -s tests/faults/test_slow_clients.py`
(that run fails its assertions, which is the point).
"""

from __future__ import annotations

import base64
import http.client
import json
import selectors
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from ingress import gunicorn_conf
from ingress.body_timeout import BODY_TIMEOUT
from shared.queues import INGEST_QUEUE
from tests.ingress.conftest import IngressServer, gunicorn_served, signed_headers, spark_body

SLOW_CLIENTS = 50
ATTACK_SECONDS = 20.0
BASELINE_SECONDS = 3.0
NORMAL_SENDERS = 4
NORMAL_INTERVAL = 0.25  # each sender: one webhook every 0.25 s, 16 a second in all
CLIENT_TIMEOUT = 10.0  # a normal sender gives up after this, as Spark would
HEADER_TIMEOUT = float(gunicorn_conf.keepalive)
# The slow loop notices a cut-off within a tick; the machine is shared.
SLACK = 2.5


@pytest.fixture
def ingress(redis_url: str, tmp_path: Path) -> Iterator[IngressServer]:
    """gunicorn with the Procfile's settings file, on a free loopback port."""
    with gunicorn_served(redis_url, tmp_path / "gunicorn.log") as server:
        yield server


def webhook(event_id: str) -> bytes:
    return spark_body(event_id)


def request_bytes(port: int, body: bytes) -> tuple[bytes, bytes]:
    """The request's head and body, as a client writes them."""
    lines = [
        "POST /webhooks/spark HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        *(f"{name}: {value}" for name, value in signed_headers(body).items()),
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii"), body


@dataclass
class SlowClient:
    """One slow connection: sends `pending` a byte per tick, from `sent` on."""

    kind: str  # "headers": trickles from the request line; "body": headers at once
    event_id: str
    sock: socket.socket
    pending: bytes
    opened: float  # when the trickle began (for "body": when the headers were in)
    sent: int = 0


@dataclass
class CutOff:
    kind: str
    after: float  # seconds from the start of the trickle to the cut-off
    status: int | None  # the answer's status, None when closed without one
    closed: bool  # the ingress closed the connection (right after its answer, if any)


@dataclass
class SlowResults:
    cut_offs: list[CutOff] = field(default_factory=list)
    still_open_ages: list[float] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    complete: list[str] = field(default_factory=list)  # requests fully sent (must stay empty)


def read_until_closed(sock: socket.socket) -> tuple[bytes, bool]:
    """What the ingress sent, and whether it closed the connection within a second after."""
    sock.settimeout(1.0)
    answer = b""
    try:
        while chunk := sock.recv(4096):
            answer += chunk
    except TimeoutError:
        return answer, False
    except OSError:
        pass
    return answer, True


def run_slow_clients(port: int, until: float, results: SlowResults) -> None:
    """SLOW_CLIENTS connections open until `until`, each sending a byte a second."""
    selector = selectors.DefaultSelector()
    counter = 0

    def open_one(kind: str) -> None:
        nonlocal counter
        counter += 1
        event_id = f"slow-{kind}-{counter:04d}"
        head, body = request_bytes(port, webhook(event_id))
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if kind == "body":
            sock.sendall(head)
            pending = body
        else:
            pending = head + body
        sock.setblocking(False)
        client = SlowClient(kind, event_id, sock, pending, time.monotonic())
        selector.register(sock, selectors.EVENT_READ, client)
        results.event_ids.append(event_id)

    def cut(client: SlowClient, status: int | None, closed: bool) -> None:
        after = time.monotonic() - client.opened
        selector.unregister(client.sock)
        client.sock.close()
        results.cut_offs.append(CutOff(client.kind, after, status, closed))
        if time.monotonic() < until:
            open_one(client.kind)

    for number in range(SLOW_CLIENTS):
        open_one("headers" if number % 2 else "body")
    next_tick = time.monotonic()
    while time.monotonic() < until:
        # A byte from every open client, then wait for the next tick watching for answers.
        if time.monotonic() >= next_tick:
            next_tick += 1.0
            for key in list(selector.get_map().values()):
                client = key.data
                try:
                    client.sock.send(client.pending[client.sent : client.sent + 1])
                except OSError:
                    cut(client, None, closed=True)
                    continue
                client.sent += 1
                if client.sent >= len(client.pending):
                    results.complete.append(client.event_id)
        for key, _ in selector.select(timeout=max(0.0, min(next_tick, until) - time.monotonic())):
            client = key.data
            answer, closed = read_until_closed(client.sock)
            status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else None
            cut(client, status, closed)
    now = time.monotonic()
    for key in list(selector.get_map().values()):
        results.still_open_ages.append(now - key.data.opened)
        key.data.sock.close()
    selector.close()


@dataclass
class Sent:
    event_id: str
    status: int | None  # None: no answer within CLIENT_TIMEOUT
    seconds: float


def run_normal_sender(port: int, name: str, until: float, sent: list[Sent]) -> None:
    """Signed webhooks, each on a new connection, one every NORMAL_INTERVAL until `until`."""
    number = 0
    next_send = time.monotonic()
    while time.monotonic() < until:
        number += 1
        event_id = f"normal-{name}-{number:04d}"
        body = webhook(event_id)
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
        try:
            connection.request("POST", "/webhooks/spark", body=body, headers=signed_headers(body))
            status: int | None = connection.getresponse().status
        except (TimeoutError, OSError):
            status = None
        finally:
            connection.close()
        sent.append(Sent(event_id, status, time.monotonic() - started))
        next_send += NORMAL_INTERVAL
        time.sleep(max(0.0, next_send - time.monotonic()))


def send_normal(port: int, name: str, until: float) -> list[Sent]:
    """NORMAL_SENDERS senders until `until`; what each webhook got."""
    sent: list[Sent] = []
    senders = [
        threading.Thread(target=run_normal_sender, args=(port, f"{name}-{n}", until, sent))
        for n in range(NORMAL_SENDERS)
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    return sent


def queued_event_ids(client: redis.Redis) -> list[str]:
    ids = []
    for raw in client.lrange(INGEST_QUEUE, 0, -1):
        _, kwargs, _ = json.loads(base64.b64decode(json.loads(raw)["body"]))
        ids.append(json.loads(base64.b64decode(kwargs["body_b64"]))["eventId"])
    return ids


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def test_it_answers_normal_webhooks_within_a_second_while_50_slow_clients_trickle(
    ingress: IngressServer,
) -> None:
    # Undisturbed first, at the same rate: the baseline the figures compare with (it includes
    # each process's first request, which opens its Redis connection).
    baseline = send_normal(ingress.port, "baseline", time.monotonic() + BASELINE_SECONDS)

    until = time.monotonic() + ATTACK_SECONDS
    slow = SlowResults()
    attacker = threading.Thread(target=run_slow_clients, args=(ingress.port, until, slow))
    attacker.start()
    normal = send_normal(ingress.port, "normal", until)
    attacker.join()

    before = [s.seconds for s in baseline]
    seconds = [s.seconds for s in normal]
    statuses = Counter(s.status for s in normal)
    by_kind = {kind: [c for c in slow.cut_offs if c.kind == kind] for kind in ("headers", "body")}
    lines = [
        f"baseline: {len(baseline)} webhooks, p50 {statistics.median(before):.3f} s,"
        f" p99 {p99(before):.3f} s",
        f"under {SLOW_CLIENTS} slow clients for {ATTACK_SECONDS:.0f} s: {len(normal)} webhooks,"
        f" answers {dict(statuses)}, p50 {statistics.median(seconds):.3f} s,"
        f" p99 {p99(seconds):.3f} s, max {max(seconds):.3f} s",
        f"slow connections: {len(slow.event_ids)} opened",
    ]
    for kind, cuts in by_kind.items():
        after = [c.after for c in cuts] or [0.0]
        lines.append(
            f"  {kind} trickled: {len(cuts)} cut off after {min(after):.1f}-{max(after):.1f} s,"
            f" answers {dict(Counter(c.status for c in cuts))}"
        )
    print("\n" + "\n".join(lines))

    # Normal webhooks: every one answered 202 within a second at the 99th percentile.
    assert statuses == {202: len(normal)}
    assert all(s.status == 202 for s in baseline)
    assert p99(seconds) < 1.0
    # Slow ones: cut off by the timeouts, the headers without an answer, the body with 408.
    assert slow.complete == []
    assert len(by_kind["headers"]) >= SLOW_CLIENTS // 2
    assert len(by_kind["body"]) >= SLOW_CLIENTS // 2
    assert all(c.closed for c in slow.cut_offs)
    assert all(c.status is None for c in by_kind["headers"])
    assert all(c.after < HEADER_TIMEOUT + SLACK for c in by_kind["headers"])
    assert all(c.status == 408 for c in by_kind["body"])
    assert all(c.after < BODY_TIMEOUT + SLACK for c in by_kind["body"])
    assert all(age < BODY_TIMEOUT + SLACK for age in slow.still_open_ages)
    # Queued: each normal webhook exactly once, nothing of a slow one.
    queued = Counter(queued_event_ids(ingress.redis))
    assert queued == Counter(s.event_id for s in baseline + normal)
