"""The webhook ingress: check Spark's signature, queue the raw body, answer.

Nothing here parses the body or touches the database. A 2xx means the exact bytes Spark sent
are on the Redis queue; parsing, dedupe and effects are the worker's job, so a malformed or
hostile body can cost the ingress no more than a hash over at most 1 MiB.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from datetime import UTC, datetime

from flask import Flask, Response, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ingress.body_timeout import BodyTimeout
from ingress.consumption import consumption_blueprint
from ingress.metrics import install_metrics
from ingress.queueing import QueueUnavailable, TaskQueue
from shared.config import Settings
from shared.queues import INGEST_EVENT_TASK
from shared.signing import SIGNATURE_HEADER, verify
from shared.webhook_secrets import AcceptedSecrets

logger = logging.getLogger(__name__)


def _json(status: int, body: bytes) -> Response:
    return Response(body, status=status, mimetype="application/json")


def ingest_kwargs(body: bytes, received_at: datetime) -> dict[str, str]:
    """The arguments of the worker's ingest task for one webhook body."""
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    return {
        "body_b64": base64.b64encode(body).decode("ascii"),
        "received_at": received_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "source": "webhook",
    }


def ingest_kwargsrepr(body: bytes, kwargs: dict[str, str]) -> str:
    """What Celery shows for the task's kwargs (events, flower, worker logs).

    Celery would show the first kilobyte of the base64 body; webhook bodies may carry
    personal data, so only the size is shown.
    """
    return repr({**kwargs, "body_b64": f"<{len(body)} bytes>"})


def create_app(settings: Settings, queue: TaskQueue | None = None) -> Flask:
    settings.require_webhook_secrets()
    secrets = settings.webhook_secrets
    # Re-read from SPARK_WEBHOOK_SECRETS_FILE when it changes (a secret rotation); never empty.
    accepted = AcceptedSecrets(secrets, settings.webhook_secrets_file)
    limit = settings.max_webhook_bytes
    if not secrets:
        logger.warning(
            "SPARK_WEBHOOK_ALLOW_UNSIGNED is set and no webhook secret is configured: "
            "ACCEPTING UNSIGNED WEBHOOKS FROM ANYONE. Never run this way outside a local "
            "experiment."
        )
    elif settings.allow_unsigned:
        logger.warning(
            "SPARK_WEBHOOK_ALLOW_UNSIGNED is ignored because webhook secrets are configured: "
            "every webhook must be signed"
        )
    # The process's one Celery app, shared by the webhook and POST /consumption.
    if queue is None:
        queue = TaskQueue(settings.redis_url)

    app = Flask(__name__)
    # One byte above our limit: Werkzeug stops reading a chunked body at this size without
    # complaint, so an oversized chunked body arrives here longer than `limit` instead of
    # silently truncated to it (and then failing the signature check as a misleading 401).
    app.config["MAX_CONTENT_LENGTH"] = limit + 1

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        response = exc.get_response()
        response.set_data(json.dumps({"error": exc.name}))
        response.mimetype = "application/json"
        return response

    # No automatic OPTIONS answers: every method a route does not name gets 405.
    @app.post("/webhooks/spark", provide_automatic_options=False)
    def spark_webhook() -> Response:
        received_at = datetime.now(UTC)
        started = time.perf_counter()
        try:
            body = request.get_data(cache=False)
        except RequestEntityTooLarge:
            body = None
        if body is None or len(body) > limit:
            logger.warning(
                "webhook rejected: body over %d bytes (Content-Length %s, from %s)",
                limit,
                request.content_length,
                request.remote_addr,
            )
            return _json(413, b'{"error":"payload too large"}')

        if secrets:
            header = request.headers.get(SIGNATURE_HEADER)
            if not verify(accepted.current(), body, header):
                logger.warning(
                    "webhook rejected: %s signature (%d bytes, from %s)",
                    "missing" if header is None else "invalid",
                    len(body),
                    request.remote_addr,
                )
                return _json(401, b'{"error":"invalid signature"}')

        kwargs = ingest_kwargs(body, received_at)
        try:
            task_id = queue.send(
                INGEST_EVENT_TASK, kwargs, kwargsrepr=ingest_kwargsrepr(body, kwargs)
            )
        except QueueUnavailable as exc:
            logger.error("webhook not queued, answering 503: %s (%d bytes)", exc, len(body))
            return _json(503, b'{"error":"queue unavailable"}')
        # DEBUG, not INFO: the worker logs every task it receives by the same id, and a second
        # line per webhook here is a measurable share of this hot path's CPU.
        logger.debug(
            "webhook queued as task %s (%d bytes, %.1f ms)",
            task_id,
            len(body),
            (time.perf_counter() - started) * 1000,
        )
        return _json(202, b'{"status":"queued"}')

    @app.get("/healthz", provide_automatic_options=False)
    def healthz() -> Response:
        return _json(200, b'{"status":"ok"}')

    @app.get("/readyz", provide_automatic_options=False)
    def readyz() -> Response:
        if queue.ping():
            return _json(200, b'{"status":"ready"}')
        logger.warning("not ready: Redis does not answer")
        return _json(503, b'{"status":"redis unreachable"}')

    app.register_blueprint(consumption_blueprint(settings, queue))
    install_metrics(app)
    # A body that does not arrive within BODY_TIMEOUT is a 408, never queued (slow clients).
    app.wsgi_app = BodyTimeout(app.wsgi_app)  # type: ignore[method-assign]
    return app
