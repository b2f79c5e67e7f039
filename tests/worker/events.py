"""Spark-format bodies for tests, built like Spark builds them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

SPARK_EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "spark"


def eligibility_payload(
    added: list[str] | None = None, removed: list[str] | None = None
) -> dict[str, Any]:
    return {
        "lastUpdated": "2024-09-12T13:40:00.0000000+00:00",
        "addedUsers": added if added is not None else [str(uuid.uuid4())],
        "removedUsers": removed or [],
        "payloadType": "UserEligibility",
    }


def notification(
    event_id: str | None = None,
    notification_type: str = "UserEligibilityUpdated",
    payload: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "notificationId": str(uuid.uuid4()),
        "eventId": event_id or str(uuid.uuid4()),
        "eventCreatedAtUtc": "2024-09-12T13:48:47.1936858+00:00",
        "notificationSentUtc": "2024-09-12T13:48:49.0000001+00:00",
        "notificationType": notification_type,
        "payload": payload if payload is not None else eligibility_payload(),
        **extra,
    }


def body(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def example(name: str) -> Any:
    return json.loads((SPARK_EXAMPLES / name).read_text())
