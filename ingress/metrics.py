"""The ingress's Prometheus metrics and `GET /metrics`.

Outcomes are read from each answer in an `after_request` hook, so the request paths carry no
metric code: a webhook is `queued` (202), `unsigned` or `bad_signature` (401, without or with
a signature header), `timed_out` (408, the body came too slowly), `too_large` (413) or
`unavailable` (503, Redis did not take it); a batch of readings `queued`, `unauthorized`,
`invalid`, `timed_out`, `too_large` or `unavailable`. Under gunicorn
the processes' counts are summed (multiprocess mode, set up in gunicorn_conf.on_starting);
nothing here touches PostgreSQL.
"""

from __future__ import annotations

import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from shared.prometheus import multiprocess_mode
from shared.signing import SIGNATURE_HEADER

WEBHOOK_ENDPOINT = "spark_webhook"
CONSUMPTION_ENDPOINT = "consumption.post_consumption"

WEBHOOKS = Counter("spark_partner_ingress_webhooks", "Webhooks received, by outcome.", ["outcome"])
CONSUMPTION_BATCHES = Counter(
    "spark_partner_ingress_consumption_batches",
    "POST /consumption requests, by outcome.",
    ["outcome"],
)
TIME_TO_QUEUE = Histogram(
    "spark_partner_ingress_time_to_queue_seconds",
    "From the request's start to its answer, for what was queued.",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

# timed_out: the body did not arrive within ingress.body_timeout.BODY_TIMEOUT (408).
_WEBHOOK_OUTCOMES = {202: "queued", 408: "timed_out", 413: "too_large", 503: "unavailable"}
_CONSUMPTION_OUTCOMES = {
    202: "queued", 400: "invalid", 401: "unauthorized", 408: "timed_out", 413: "too_large",
    503: "unavailable",
}  # fmt: skip

# Every outcome starts at 0, so a rate over a fresh process is defined.
for _outcome in ("queued", "unsigned", "bad_signature", "timed_out", "too_large", "unavailable"):
    WEBHOOKS.labels(_outcome)
for _outcome in _CONSUMPTION_OUTCOMES.values():
    CONSUMPTION_BATCHES.labels(_outcome)


def install_metrics(app: Flask) -> None:
    @app.before_request
    def _start_clock() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        endpoint = request.endpoint
        if endpoint == WEBHOOK_ENDPOINT:
            if response.status_code == 401:
                present = request.headers.get(SIGNATURE_HEADER) is not None
                outcome = "bad_signature" if present else "unsigned"
            else:
                outcome = _WEBHOOK_OUTCOMES.get(response.status_code, "other")
            WEBHOOKS.labels(outcome).inc()
            route = "webhook"
        elif endpoint == CONSUMPTION_ENDPOINT:
            outcome = _CONSUMPTION_OUTCOMES.get(response.status_code, "other")
            CONSUMPTION_BATCHES.labels(outcome).inc()
            route = "consumption"
        else:
            return response
        if outcome == "queued":
            TIME_TO_QUEUE.labels(route).observe(time.perf_counter() - g.metrics_started)
        return response

    @app.get("/metrics", provide_automatic_options=False)
    def metrics() -> Response:
        if multiprocess_mode():
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            output = generate_latest(registry)
        else:
            output = generate_latest()
        return Response(output, mimetype=CONTENT_TYPE_LATEST)
