"""The delivery-log check: what Spark says about its deliveries to us, acted on.

1. `GET /webhooks`: a webhook Spark reports as `Unhealthy` or `TimeOut`, a disabled one, or
   none at all is an alert (`alert=spark_webhook_unhealthy`); the result is recorded as
   `webhook_healthy` for `status` and the metrics.
2. `GET /webhooks/logs`, newest first, back to where the last check got to (less an overlap,
   since a retried notification is logged again later): every notification whose event the
   inbox lacks is fetched with `GET /events/{eventId}` and queued down the normal ingest path.
   That covers the notifications Spark records as failed or timed out, and those it delivered
   that we never stored. A delivered one younger than SETTLE may still be on its way through
   the queue and is left for the next check.
3. The counts and the point reached are recorded in the ops mark `delivery_log_check`, in
   the transaction that ends the check.

The backfill (`GET /events`) would find the same events within 15 minutes; this check finds
them sooner where Spark's log shows a failure, and it is what notices Spark giving up on us.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared import logging as logs
from shared.db import Connection, connection, fetch_all
from shared.spark_api import SparkClient, SparkError
from shared.timeutil import isoformat_utc, parse_spark_datetime, utcnow
from worker.ops.marks import DELIVERY_LOG_CHECK, mark, marks

log = logging.getLogger(__name__)

# How far back the first check looks.
FIRST_LOOKBACK = timedelta(hours=24)
# Each later check reads again this far before where the last one stopped: a notification
# retried meanwhile is logged anew, and Spark's log may be written a little late.
OVERLAP = timedelta(minutes=30)
# A delivered notification younger than this may still be in the ingest queue.
SETTLE = timedelta(minutes=2)
# At most this many pages of the log per check (1000 entries each).
MAX_PAGES = 20
UNHEALTHY_STATUSES = ("Unhealthy", "TimeOut")

Enqueue = Callable[[bytes], object]


@dataclass
class DeliveryLogCheck:
    webhooks: int = 0
    # Webhooks Spark reports as unhealthy, timing out or disabled: id, url, status, enabled.
    unhealthy_webhooks: list[dict[str, Any]] = field(default_factory=list)
    webhook_healthy: bool | None = None
    pages: int = 0
    notifications: int = 0
    # Notifications whose latest attempt failed (no 2xx) or timed out.
    failed: int = 0
    timed_out: int = 0
    # Events named in the log that the inbox lacks...
    missing: int = 0
    # ...of which fetched from /events/{id} and queued for ingestion...
    recovered: int = 0
    # ...and of which Spark no longer has.
    not_found: int = 0
    checked_from: str | None = None
    checked_until: str | None = None
    error: str | None = None


def _failed(entry: dict[str, Any]) -> bool:
    status = entry.get("responseStatusCode")
    return bool(entry.get("requestTimeout")) or not (
        isinstance(status, int) and 200 <= status < 300
    )


def _sent_at(entry: dict[str, Any]) -> datetime | None:
    text = entry.get("notificationSent")
    if not isinstance(text, str):
        return None
    try:
        return parse_spark_datetime(text)
    except ValueError:
        return None


def check_webhooks(client: SparkClient, result: DeliveryLogCheck) -> None:
    webhooks = client.list_webhooks()
    result.webhooks = len(webhooks)
    for webhook in webhooks:
        if webhook.get("status") in UNHEALTHY_STATUSES or webhook.get("enabled") is False:
            result.unhealthy_webhooks.append(
                {
                    "webhookId": webhook.get("webhookId"),
                    "webhookUrl": webhook.get("webhookUrl"),
                    "status": webhook.get("status"),
                    "enabled": webhook.get("enabled"),
                }
            )
    result.webhook_healthy = bool(webhooks) and not result.unhealthy_webhooks
    if not webhooks:
        logs.alert(
            log,
            "spark_webhook_unhealthy",
            "no webhook is registered at Spark: events arrive only through the backfill",
        )
    for webhook in result.unhealthy_webhooks:
        logs.alert(
            log,
            "spark_webhook_unhealthy",
            "Spark reports webhook %s (%s) as %s%s",
            webhook["webhookId"],
            webhook["webhookUrl"],
            webhook["status"],
            "" if webhook["enabled"] is not False else ", and it is disabled",
        )


def recover_from_log(
    conn: Connection,
    client: SparkClient,
    result: DeliveryLogCheck,
    *,
    since: datetime,
    now: datetime,
    enqueue: Enqueue,
) -> None:
    """Read the log back to `since` and queue every event it names that the inbox lacks."""
    wanted: dict[str, bool] = {}  # event id -> whether a failed notification names it
    for page in client.iter_webhook_log_pages():
        result.pages += 1
        older = False
        for entry in page:
            sent_at = _sent_at(entry)
            if sent_at is not None and sent_at < since:
                older = True
                continue
            result.notifications += 1
            failed = _failed(entry)
            result.failed += failed
            result.timed_out += bool(entry.get("requestTimeout"))
            event_id = entry.get("partnerEventId")
            if not isinstance(event_id, str) or not event_id:
                continue
            settled = sent_at is None or now - sent_at >= SETTLE
            if failed or settled:
                wanted[event_id] = wanted.get(event_id, False) or failed
        if older or result.pages >= MAX_PAGES:
            break
    # The next check reads from here, less the overlap. Pages beyond MAX_PAGES are left to
    # the backfill.
    result.checked_until = isoformat_utc(now)
    if not wanted:
        return
    rows = fetch_all(conn, "known_event_ids", {"event_ids": list(wanted)})
    conn.commit()
    known = {row["event_id"] for row in rows}
    for event_id in wanted:
        if event_id in known:
            continue
        result.missing += 1
        event = client.get_event(event_id)
        if event is None:
            result.not_found += 1
            log.warning("event %s is in Spark's delivery log but not in /events", event_id)
            continue
        enqueue(json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode())
        result.recovered += 1
        log.info("event %s recovered from Spark's delivery log", event_id)


def check_delivery_log(
    client: SparkClient,
    database_url: str,
    *,
    enqueue: Enqueue,
    now: datetime | None = None,
) -> DeliveryLogCheck:
    now = now or utcnow()
    result = DeliveryLogCheck()
    with connection(database_url) as conn:
        previous = marks(conn).get(DELIVERY_LOG_CHECK)
        conn.commit()
        detail = previous.detail if previous and previous.detail else {}
        since = now - FIRST_LOOKBACK
        if isinstance(detail.get("checked_until"), str):
            since = max(since, datetime.fromisoformat(detail["checked_until"]) - OVERLAP)
        result.checked_from = isoformat_utc(since)
        try:
            check_webhooks(client, result)
            recover_from_log(conn, client, result, since=since, now=now, enqueue=enqueue)
        except SparkError as exc:
            result.error = str(exc)
            log.warning("delivery-log check stopped: %s", exc)
        recorded = asdict(result)
        if result.webhook_healthy is None:
            # Unknown is not unhealthy: leave the key out so `status` says so.
            recorded.pop("webhook_healthy")
        if result.error and not result.checked_until:
            recorded["checked_until"] = detail.get("checked_until")
        recorded["recovered_total"] = int(detail.get("recovered_total") or 0) + result.recovered
        with conn.transaction():
            mark(conn, DELIVERY_LOG_CHECK, at=now, detail=recorded)
    if result.recovered or result.not_found:
        log.info(
            "delivery-log check: %d event(s) recovered, %d no longer at Spark",
            result.recovered,
            result.not_found,
        )
    return result
