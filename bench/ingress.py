"""B1, ingress overhead: the real ingress against a bare Flask app that answers 204.

Both apps run under gunicorn with ingress/gunicorn_conf.py (gevent), each on a free loopback
port, and receive the same 1 KiB signed Spark notification on POST /webhooks/spark. A closed
loop load generator (one process, persistent keep-alive connections, like `wrk -t1 -c16`)
drives them in turn, baseline then candidate, for --rounds rounds. The ratio of the two
request rates is what to read: client and servers share the machine's cores, so absolute
numbers move between runs while the ratio is stable.

    .venv/bin/python -m bench.ingress [--seconds N]

The candidate queues every accepted body on --redis-url (its own Redis database, emptied at
the start and at the end).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import selectors
import socket
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from flask import Flask

from bench.support import print_result
from devstack.ingress import GunicornIngress
from shared.queues import INGEST_QUEUE
from shared.signing import SIGNATURE_HEADER, sign

PATH = "/webhooks/spark"
SECRET = b"bench-secret-not-for-production"
# Celery's send_task costs 2 to 3 ms of CPU per webhook on top of bare Flask (two shared
# cores); at a few hundred webhooks a day that is nothing, so the bar catches only a gross
# regression.
TARGET_RATIO = 0.2
# Latency when the ingress runs at half the rate it can take.
HALF_LOAD_P99_MS = 20.0
BODY_BYTES = 1024

# The baseline gunicorn serves this: Flask's own per-request cost and nothing else.
noop_app = Flask("noop")


@noop_app.post(PATH)
def noop() -> tuple[str, int]:
    return "", 204


def spark_body(size: int = BODY_BYTES) -> bytes:
    """A PriceCurveCreated notification in Spark's wire format, padded to exactly `size`."""
    points: list[dict[str, Any]] = []
    body = ""
    while True:
        hour = len(points)
        candidate = [
            *points,
            {"price": 123.45 + hour, "timestamp": f"2026-03-04T{hour % 24:02d}:00:00+00:00"},
        ]
        text = json.dumps(
            {
                "notificationId": "b6a6bd4a-6d37-4c74-95d1-4eb7f27a9bdd",
                "eventId": "ca05399b-c2d6-4dd6-b278-40a7e2061d42",
                "eventCreatedAtUtc": "2026-03-03T12:00:00.1936858+00:00",
                "notificationSentUtc": "2026-03-03T12:00:01.2036858+00:00",
                "notificationType": "PriceCurveCreated",
                "payload": {
                    "payloadType": "PriceCurve",
                    "priceArea": "NO1",
                    "targets": [],
                    "priceCurveDelta": {
                        "points": candidate,
                        "energyUnit": "kWh",
                        "currency": "NOK",
                        "resolution": "01:00:00",
                    },
                },
            },
            separators=(",", ":"),
        )
        if len(text) + 1 > size:
            break
        points, body = candidate, text
    return (body + " " * (size - 1 - len(body)) + "\n").encode("utf-8")


def build_request(port: int, body: bytes) -> bytes:
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"{SIGNATURE_HEADER}: {sign(SECRET, body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


# --- load generator (runs in its own process) ------------------------------------------------


@dataclass
class Run:
    requests: int  # completed inside the measured window
    errors: int  # non-2xx inside the measured window
    ok_total: int  # 2xx over the whole run, warm-up included
    total: int  # responses over the whole run, warm-up included
    seconds: float
    latencies: list[float]
    server_cpu: float | None = None  # CPU seconds of the gunicorn workers over the whole run

    @property
    def cpu_per_request(self) -> float | None:
        """Server CPU in µs per request: steadier than req/s when the machine is shared."""
        return None if self.server_cpu is None else self.server_cpu / self.total * 1e6

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def _response_length(buffer: bytearray) -> tuple[int, int] | None:
    """(status, total length) of the first complete response in `buffer`, if there is one."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).lower()
    status = int(head[9:12])
    length = 0
    start = head.find(b"\r\ncontent-length:")
    if start >= 0:
        stop = head.find(b"\r\n", start + 2)
        length = int(head[start + 17 : stop if stop >= 0 else len(head)])
    total = end + 4 + length
    return (status, total) if len(buffer) >= total else None


@dataclass
class Load:
    port: int
    request: bytes
    connections: int
    warmup: float
    seconds: float
    # Requests per second for an open-loop run (a request leaves on schedule on whichever
    # connection is free, and its latency counts from its scheduled time, so a slow answer
    # is not hidden by the requests it held back); None for the closed loop.
    rate: float | None = None


@dataclass
class Connection:
    sock: socket.socket
    sent_at: float
    buffer: bytearray


def _send_due(
    idle: list[Connection], request: bytes, next_slot: float, now: float, rate: float
) -> float:
    """Open loop: the requests whose time has come, each on a free connection; the next slot."""
    while idle and next_slot <= now:
        # The longest idle one first: each connection is used in turn, so none sits idle past
        # the server's keep-alive timeout (5 s) and gets closed under the load generator.
        connection = idle.pop(0)
        connection.sent_at = next_slot
        connection.sock.sendall(request)
        next_slot += 1 / rate
    return next_slot


def drive(load: Load, results: Any) -> None:
    """Closed loop: each connection sends the next request as soon as its response is in.
    With `load.rate`, open loop: requests leave on a fixed schedule instead."""
    selector = selectors.DefaultSelector()
    connections = []
    idle: list[Connection] = []
    for _ in range(load.connections):
        sock = socket.create_connection(("127.0.0.1", load.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = Connection(sock, time.perf_counter(), bytearray())
        selector.register(sock, selectors.EVENT_READ, connection)
        connections.append(connection)
        if load.rate is None:
            sock.sendall(load.request)
        else:
            idle.append(connection)

    measure_from = time.perf_counter() + load.warmup
    measure_until = measure_from + load.seconds
    requests = errors = ok_total = total = 0
    latencies: list[float] = []
    now = time.perf_counter()
    next_slot = now
    while now < measure_until:
        if load.rate is not None:
            next_slot = _send_due(idle, load.request, next_slot, now, load.rate)
        wait = 1.0 if load.rate is None else max(0.0, min(1.0, next_slot - now))
        for key, _ in selector.select(timeout=wait):
            connection = key.data
            data = connection.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed a keep-alive connection")
            connection.buffer += data
            complete = _response_length(connection.buffer)
            if complete is None:
                continue
            status, length = complete
            del connection.buffer[:length]
            now = time.perf_counter()
            ok = 200 <= status < 300
            ok_total += ok
            total += 1
            if measure_from <= now < measure_until:
                requests += 1
                errors += not ok
                latencies.append(now - connection.sent_at)
            if load.rate is None:
                connection.sent_at = now
                connection.sock.sendall(load.request)
            else:
                idle.append(connection)
        now = time.perf_counter()
    for connection in connections:
        selector.unregister(connection.sock)
        connection.sock.close()
    results.put(Run(requests, errors, ok_total, total, load.seconds, latencies))


def measure(
    server: GunicornIngress, body: bytes, args: argparse.Namespace, rate: float | None = None
) -> Run:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    load = Load(
        server.port,
        build_request(server.port, body),
        args.connections,
        args.warmup,
        args.seconds,
        rate,
    )
    cpu_before = workers_cpu(server.pid)
    process = context.Process(target=drive, args=(load, results))
    process.start()
    deadline = time.monotonic() + args.warmup + args.seconds + 60
    try:
        while True:
            try:
                run: Run = results.get(timeout=1)
                break
            except queue.Empty:
                if not process.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the load generator failed (exit code {process.exitcode})"
                    ) from None
    finally:
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join()
    cpu_after = workers_cpu(server.pid)
    if cpu_before is not None and cpu_after is not None:
        run.server_cpu = cpu_after - cpu_before
    return run


# --- servers --------------------------------------------------------------------------------


def workers_cpu(master: int) -> float | None:
    """CPU seconds used so far by the children of `master` (Linux /proc); None elsewhere."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    ticks = 0
    for stat in proc.glob("[0-9]*/stat"):
        try:
            # Fields after the parenthesised command: state, ppid, ..., utime (12th), stime.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


# --- report ---------------------------------------------------------------------------------


def describe(label: str, run: Run) -> str:
    cpu = run.cpu_per_request
    return (
        f"{label:<10} {run.rate:8.0f} req/s   p50 {run.percentile(0.50):6.2f} ms   "
        f"p99 {run.percentile(0.99):6.2f} ms   non-2xx {run.errors}   "
        + ("server CPU n/a" if cpu is None else f"server CPU {cpu:4.0f} µs/req")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingress", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="discarded seconds per run")
    parser.add_argument("--rounds", type=int, default=5, help="baseline+candidate pairs")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args(argv)

    body = spark_body()
    storage = redis.Redis.from_url(args.redis_url)
    storage.flushdb()
    baseline_runs: list[Run] = []
    candidate_runs: list[Run] = []
    with ExitStack() as stack:
        stack.callback(storage.close)
        stack.callback(storage.flushdb)
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-ingress-")))
        # Both under the ingress's own settings file (devstack/ingress.py).
        baseline = stack.enter_context(
            GunicornIngress(
                args.redis_url, SECRET.decode(), logs / "baseline.log", app="bench.ingress:noop_app"
            )
        )
        candidate = stack.enter_context(
            GunicornIngress(args.redis_url, SECRET.decode(), logs / "candidate.log")
        )
        print(
            f"B1 ingress overhead: {len(body)}-byte signed body, {args.connections} connections, "
            f"{args.warmup:g}+{args.seconds:g} s per run, {args.rounds} rounds (A B A B ...)"
        )
        for number in range(1, args.rounds + 1):
            baseline_runs.append(measure(baseline, body, args))
            print(f"round {number}  " + describe("baseline", baseline_runs[-1]))
            candidate_runs.append(measure(candidate, body, args))
            queued = storage.llen(INGEST_QUEUE)
            storage.delete(INGEST_QUEUE)
            print(
                f"round {number}  "
                + describe("candidate", candidate_runs[-1])
                + f"   queued {queued}"
            )
            if queued < candidate_runs[-1].ok_total:
                print(f"  ERROR: {candidate_runs[-1].ok_total} answered 2xx but {queued} queued")
                return 1
        # Half of the candidate's closed-loop rate, on a schedule: the latency a sender sees
        # when the ingress is not saturated.
        half_rate = statistics.median(r.rate for r in candidate_runs) / 2
        half = measure(candidate, body, args, rate=half_rate)
        storage.delete(INGEST_QUEUE)
        print(f"half load  {describe('candidate', half)}   (scheduled {half_rate:.0f} req/s)")

    ratios = [c.rate / b.rate for b, c in zip(baseline_runs, candidate_runs, strict=True)]
    ratio = statistics.median(ratios)
    print()
    for label, runs in (("baseline", baseline_runs), ("candidate", candidate_runs)):
        print(
            f"{label:<10} median {statistics.median(r.rate for r in runs):8.0f} req/s   "
            f"p50 {statistics.median(r.percentile(0.5) for r in runs):6.2f} ms   "
            f"p99 {statistics.median(r.percentile(0.99) for r in runs):6.2f} ms"
        )
    print("ratios     " + "  ".join(f"{r:.2f}" for r in ratios))
    cpu_ratios = [
        b.cpu_per_request / c.cpu_per_request
        for b, c in zip(baseline_runs, candidate_runs, strict=True)
        if b.cpu_per_request and c.cpu_per_request
    ]
    if cpu_ratios:
        print(
            "CPU ratio  "
            + "  ".join(f"{r:.2f}" for r in cpu_ratios)
            + f"   (baseline/candidate server CPU per request; median "
            f"{statistics.median(cpu_ratios):.2f}, less sensitive to other load on the machine)"
        )
    half_p99 = half.percentile(0.99)
    half_met = half_p99 < HALF_LOAD_P99_MS
    print(
        f"p99 at half load ({half_rate:.0f} req/s): {half_p99:.2f} ms, target < "
        f"{HALF_LOAD_P99_MS:g} ms: {'meets' if half_met else 'MISSES'}"
    )
    met = print_result(
        "bench.ingress",
        ("bare Flask under gunicorn_conf.py", statistics.median(r.rate for r in baseline_runs),
         "req/s"),
        ("the ingress, each webhook queued", statistics.median(r.rate for r in candidate_runs),
         "req/s"),
        ratio,
        f">= {TARGET_RATIO}",
    )  # fmt: skip
    return 0 if met and half_met else 2


if __name__ == "__main__":
    sys.exit(main())
