"""Turning raw bodies into events: a webhook's EventNotification or an event from `GET /events`.

Anything that is signed but cannot be read raises `BrokenBody` with a reason for the dead
letter. Unknown fields are tolerated (Spark's enums and schemas have grown over time), and
unknown notification types are kept as they are: deciding what to do with them is the
registry's job, not the parser's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields

from shared.timeutil import parse_spark_datetime

# Spark's payloads are a few levels deep; anything far deeper is garbage or an attack, and
# would hit Python's recursion limit somewhere later (json.dumps, psycopg) if let through.
MAX_NESTING = 32

# `GET /events` has no notificationType; it follows from the payload's discriminator.
NOTIFICATION_TYPE_BY_PAYLOAD_TYPE = {
    "PriceCurve": "PriceCurveCreated",
    "UserEligibility": "UserEligibilityUpdated",
    "LocationLPC": "LocationLPCRequested",
    "ResourceLPC": "ResourceLPCRequested",
    "LPCReservation": "LPCReservationCreated",
}


class BrokenBody(ValueError):
    """A body that is authentic but unusable; `reason` says why, for the dead letter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SparkDateTime(fields.Field[datetime]):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if not isinstance(value, str):
            raise ValidationError("not a timestamp string")
        try:
            return parse_spark_datetime(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


def _not_blank(value: str) -> None:
    # A validator must raise: marshmallow 4 ignores one that returns False.
    if not value.strip():
        raise ValidationError("must not be blank")


class _PayloadSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    payloadType = fields.String(load_default=None)


class EventNotificationSchema(Schema):
    """The webhook envelope (`EventNotification` in openapi.json)."""

    class Meta:
        unknown = EXCLUDE

    notificationId = fields.String(required=True)
    eventId = fields.String(required=True, validate=_not_blank)
    eventCreatedAtUtc = SparkDateTime(load_default=None)
    notificationSentUtc = SparkDateTime(load_default=None)
    notificationType = fields.String(required=True)
    payload = fields.Dict(required=True)


class PolledEventSchema(Schema):
    """One event of `GET /events` (`GetEventResponse`)."""

    class Meta:
        unknown = EXCLUDE

    id = fields.String(required=True, validate=_not_blank)
    createdAt = SparkDateTime(load_default=None)
    payload = fields.Dict(required=True)


@dataclass(frozen=True)
class Envelope:
    event_id: str
    notification_id: str | None
    notification_type: str
    payload_type: str | None
    created_at: datetime | None
    payload: dict[str, Any]


def _depth(value: Any) -> int:
    """Nesting depth without recursion, so a hostile body cannot exhaust the stack here."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if deepest > MAX_NESTING:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _unstorable(document: Any) -> str | None:
    """The first string (key or value) that PostgreSQL's text and jsonb cannot hold: one with
    NUL or a lone surrogate, both valid JSON as `\\u` escapes. Stored, it would fail the task
    on every delivery; it is a dead letter instead. Iterative, like `_depth`."""
    stack: list[Any] = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return item
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return item
    return None


def _load_json(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BrokenBody(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        document = json.loads(text)
    except RecursionError:
        raise BrokenBody(f"JSON nested deeper than {MAX_NESTING} levels") from None
    except ValueError as exc:
        raise BrokenBody(f"not JSON: {exc}") from None
    if _depth(document) > MAX_NESTING:
        raise BrokenBody(f"JSON nested deeper than {MAX_NESTING} levels")
    if (unstorable := _unstorable(document)) is not None:
        raise BrokenBody(
            "a string with NUL or a lone surrogate, which PostgreSQL cannot hold: "
            f"{unstorable[:40]!r}"
        )
    if not isinstance(document, dict):
        raise BrokenBody(f"not an event envelope: a JSON {type(document).__name__}")
    return document


def _validate(schema: Schema, document: dict[str, Any]) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = schema.load(document)
    except ValidationError as exc:
        errors = json.dumps(exc.messages, sort_keys=True)
        raise BrokenBody(f"not an event envelope: {errors}") from None
    return loaded


def _payload_type(payload: dict[str, Any]) -> str | None:
    value = payload.get("payloadType")
    return value if isinstance(value, str) else None


def parse_notification(raw: bytes) -> Envelope:
    data = _validate(EventNotificationSchema(), _load_json(raw))
    return Envelope(
        event_id=data["eventId"],
        notification_id=data["notificationId"],
        notification_type=data["notificationType"],
        payload_type=_payload_type(data["payload"]),
        created_at=data["eventCreatedAtUtc"],
        payload=data["payload"],
    )


def parse_polled_event(raw: bytes) -> Envelope:
    data = _validate(PolledEventSchema(), _load_json(raw))
    payload_type = _payload_type(data["payload"])
    return Envelope(
        event_id=data["id"],
        notification_id=None,
        notification_type=NOTIFICATION_TYPE_BY_PAYLOAD_TYPE.get(payload_type or "", "Unknown"),
        payload_type=payload_type,
        created_at=data["createdAt"],
        payload=data["payload"],
    )


def parse(raw: bytes, source: str) -> Envelope:
    return parse_polled_event(raw) if source == "poll" else parse_notification(raw)
