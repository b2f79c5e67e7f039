"""`POST /consumption`: readings from the partner's own systems, queued for the worker.

Thin, like the webhook: a bearer token from CONSUMPTION_API_TOKENS (compared in constant
time), a size limit, a schema check of the JSON without any database, then the readings are
queued as one `consumption.ingest_readings` task and the answer is 202 with the batch id
(the task id: a message delivered twice stores its readings once).

    POST /consumption
    Authorization: Bearer <token>
    {"readings": [{"resourceId": "ev-1", "locationId": "home-1",
                   "start": "2026-03-04T10:00:00Z", "end": "2026-03-04T11:00:00Z",
                   "kWh": 7.2, "readingId": "session-881"}]}

    202 {"batchId": "…", "readings": 1, "status": "queued"}
        Location: /consumption/batches/…
    400 {"errors": {"readings": {"0": {"end": ["must be after start"]}}}}
    401 bad or missing token; 413 body over the limit; 503 the queue is unavailable.

    GET /consumption/batches/{batchId}, with the same token:
    200 {"status": "queued", …, "unknownAfter": "…"} or {"status": "stored", "inserted": …}
    404 {"status": "unknown", …}: send the readings again (shared/batch_status.py).

The API is described by ingress/consumption-openapi.json, served at GET /consumption/openapi.json.
The batch goes out through the ingress's one Celery app (ingress/queueing.py), as webhooks do.
"""

from __future__ import annotations

import hmac
import json
import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import redis
from flask import Blueprint, Response, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import PathConverter

from ingress.queueing import CONNECT_TIMEOUT, SOCKET_TIMEOUT, QueueUnavailable, TaskQueue
from shared.batch_status import mark_queued, read_status
from shared.config import Settings
from shared.readings import INGEST_READINGS_TASK, check_readings

logger = logging.getLogger(__name__)

# About 50,000 readings; a partner with more sends several batches.
MAX_CONSUMPTION_BYTES = 8 * 1024 * 1024


def enqueue(
    queue: TaskQueue, batch_id: str, readings: list[dict[str, Any]], received_at: datetime
) -> None:
    """Queue the readings as the worker's ingest task, under the batch id. Raises
    QueueUnavailable."""
    queue.send(
        INGEST_READINGS_TASK,
        {
            "readings": readings,
            "batch_id": batch_id,
            "source": "api",
            "received_at": received_at.isoformat(),
        },
        task_id=batch_id,
        # Readings may be personal data: logs and monitoring show their number only.
        kwargsrepr=f"{{'batch_id': {batch_id!r}, 'readings': <{len(readings)}>}}",
    )


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _authorized(header: str | None, tokens: Sequence[bytes]) -> bool:
    if not header or not tokens:
        return False
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    given = token.strip().encode("utf-8", errors="replace")
    # Every token is compared, so the time taken does not tell which one nearly matched.
    matches = [hmac.compare_digest(given, expected) for expected in tokens]
    return any(matches)


def _read_readings() -> list[Any] | Response:
    """The body's readings, or the answer that refuses the body (413, 400)."""
    # One byte over the limit, as for webhooks: a chunked body is then seen to be too long
    # instead of being cut to the limit.
    request.max_content_length = MAX_CONSUMPTION_BYTES + 1
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        body = None
    if body is None or len(body) > MAX_CONSUMPTION_BYTES:
        return _json(413, {"error": f"body over {MAX_CONSUMPTION_BYTES} bytes"})
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return _json(400, {"errors": {"_body": ["is not JSON"]}})
    readings = document.get("readings") if isinstance(document, dict) else None
    if not isinstance(readings, list) or not readings:
        return _json(400, {"errors": {"readings": ["must be a non-empty array of readings"]}})
    return readings


OPENAPI_DOCUMENT = "consumption-openapi.json"
OPENAPI_PATH = "/consumption/openapi.json"


def openapi_document() -> bytes:
    """The OpenAPI document of the consumption endpoints, as served."""
    return resources.files("ingress").joinpath(OPENAPI_DOCUMENT).read_bytes()


class _Anything(PathConverter):
    # Any character, newlines too (`.` stops at one): every id reads as a batch, if unknown.
    regex = r"[\s\S]*"
    # Spans slashes (werkzeug would infer the opposite from a regex without "/").
    part_isolating = False


def consumption_blueprint(settings: Settings, queue: TaskQueue) -> Blueprint:
    tokens = [token.encode("utf-8") for token in settings.consumption_api_tokens]
    if not tokens:
        logger.warning("CONSUMPTION_API_TOKENS is empty: POST /consumption refuses every request")
    pending = settings.consumption_batch_pending
    # The batches' status records (shared/batch_status.py), with the queue's timeouts: a hung
    # Redis is a 503, not a hung thread.
    statuses = redis.Redis.from_url(
        settings.redis_url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT
    )
    document = openapi_document()
    blueprint = Blueprint("consumption", __name__)

    @blueprint.post("/consumption", provide_automatic_options=False)
    def post_consumption() -> Response:
        received_at = datetime.now(UTC)
        if not _authorized(request.headers.get("Authorization"), tokens):
            return _json(401, {"error": "a valid bearer token is required"})
        readings = _read_readings()
        if isinstance(readings, Response):
            return readings
        checked, errors = check_readings(readings)
        if errors:
            return _json(400, {"errors": {"readings": errors}})
        batch_id = str(uuid.uuid4())
        try:
            # The status first: once the message is out, a worker may store the batch at once,
            # and its `stored` must not be overwritten by this `queued`.
            mark_queued(
                statuses, batch_id, received_at=received_at, now=received_at, pending=pending,
                readings=len(checked),
            )  # fmt: skip
            enqueue(queue, batch_id, [r.to_json() for r in checked], received_at)
        except (QueueUnavailable, redis.RedisError) as exc:
            logger.error("consumption batch not queued, answering 503: %s", exc)
            return _json(503, {"error": "queue unavailable"})
        logger.info("consumption batch %s queued (%d readings)", batch_id, len(checked))
        answer = _json(202, {"batchId": batch_id, "readings": len(checked), "status": "queued"})
        answer.headers["Location"] = f"/consumption/batches/{batch_id}"
        return answer

    # Any id, slashes and an empty one included, reads as a batch (unknown, for ids never
    # given), never as Flask's own 404 or a redirect (found by fuzzing the lookups).
    blueprint.record_once(lambda state: state.app.url_map.converters.update(anything=_Anything))

    @blueprint.get(
        "/consumption/batches/<anything:batch_id>",
        merge_slashes=False,
        provide_automatic_options=False,
    )
    def get_batch(batch_id: str) -> Response:
        if not _authorized(request.headers.get("Authorization"), tokens):
            return _json(401, {"error": "a valid bearer token is required"})
        try:
            found = read_status(statuses, batch_id, now=datetime.now(UTC))
        except redis.RedisError as exc:
            logger.error("consumption batch status not read, answering 503: %s", exc)
            return _json(503, {"error": "queue unavailable"})
        if found.status == "unknown":
            return _json(
                404,
                {
                    **found.record,
                    "error": "no record of this batch: send its readings again (a reading "
                    "sent twice is stored once)",
                },
            )
        return _json(200, found.record)

    @blueprint.get(OPENAPI_PATH, provide_automatic_options=False)
    def get_openapi() -> Response:
        return Response(document, status=200, mimetype="application/json")

    return blueprint
