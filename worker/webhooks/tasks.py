"""Tasks of the webhooks domain: the periodic check of Spark's delivery log."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from celery import shared_task

from shared.queues import SPARK_QUEUE
from shared.spark_api import SparkClient
from worker.celery_app import RELIABLE_TASK_OPTIONS, current_settings
from worker.events.tasks import enqueue_ingest
from worker.webhooks.delivery_log import DeliveryLogCheck, check_delivery_log

log = logging.getLogger(__name__)

CHECK_DELIVERY_LOG_TASK = "webhooks.check_delivery_log"


def enqueue_polled(raw: bytes) -> str:
    return enqueue_ingest(raw, source="poll")


@shared_task(
    name=CHECK_DELIVERY_LOG_TASK,
    queue=SPARK_QUEUE,
    time_limit=280,
    soft_time_limit=250,
    **{**RELIABLE_TASK_OPTIONS, "max_retries": 5},
)
def check_delivery_log_task() -> dict[str, Any]:
    settings = current_settings()
    if not settings.spark_configured:
        log.info("delivery-log check skipped: no Spark API configured")
        return asdict(DeliveryLogCheck(error="Spark API not configured"))
    with SparkClient.from_settings(settings) as client:
        return asdict(check_delivery_log(client, settings.database_url, enqueue=enqueue_polled))
