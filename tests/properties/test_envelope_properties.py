"""Property tests of envelope parsing (worker/events/envelope.py).

What could fail: a well-formed notification or polled event read back with another id, type
or payload (extra fields Spark adds one day included); any body at all, however broken,
raising something other than `BrokenBody` (the ingest task would crash and retry forever
instead of dead-lettering it); a body nested deeper than MAX_NESTING let through.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.events.envelope import (
    MAX_NESTING,
    NOTIFICATION_TYPE_BY_PAYLOAD_TYPE,
    BrokenBody,
    Envelope,
    parse,
    parse_notification,
    parse_polled_event,
)

# Text PostgreSQL can hold: no NUL, and no lone surrogate (what UTF-8 can encode). A body
# with either is a dead letter, checked below.
storable = st.characters(codec="utf-8", exclude_characters="\x00")


def texts(min_size: int = 0, max_size: int = 20) -> st.SearchStrategy[str]:
    return st.text(storable, min_size=min_size, max_size=max_size)


# Any JSON value, a few levels deep (well inside MAX_NESTING).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(texts(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
ids = texts(min_size=1, max_size=40).filter(lambda text: text.strip() != "")
payload_types = st.sampled_from([*NOTIFICATION_TYPE_BY_PAYLOAD_TYPE, "SomethingNew"])
offsets = st.sampled_from([timedelta(0), timedelta(hours=1), timedelta(hours=-5, minutes=-30)])


@st.composite
def timestamps(draw: st.DrawFn) -> tuple[str, datetime]:
    """A timestamp as Spark or others write it (7 fraction digits, `Z`, other offsets), and
    the instant it means."""
    instant = draw(
        st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC))  # noqa: DTZ001 (hypothesis bounds are naive)
    ).replace(microsecond=draw(st.integers(0, 999_999)))
    offset = draw(offsets)
    local = instant.astimezone(timezone(offset))
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + f".{local.microsecond:06d}"
    text += draw(st.sampled_from(["", "0"]))  # .NET writes a seventh digit
    text += (
        "Z"
        if offset == timedelta(0) and draw(st.booleans())
        else local.strftime("%z")[:3] + ":" + local.strftime("%z")[3:]
    )
    return text, instant


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, Any]:
    payload: dict[str, Any] = draw(st.dictionaries(texts(max_size=10), json_values, max_size=4))
    if draw(st.booleans()):
        payload["payloadType"] = draw(payload_types)
    return payload


extras = st.dictionaries(
    texts(max_size=10).filter(
        lambda key: (
            key
            not in {
                "notificationId",
                "eventId",
                "eventCreatedAtUtc",
                "notificationSentUtc",
                "notificationType",
                "payload",
                "id",
                "createdAt",
            }
        )
    ),
    json_values,
    max_size=3,
)


@given(
    event_id=ids, notification_id=ids, notification_type=ids, created=timestamps(),
    payload=payloads(), extra=extras, ensure_ascii=st.booleans(),
)  # fmt: skip
def test_it_reads_back_any_well_formed_notification(
    *,
    event_id: str,
    notification_id: str,
    notification_type: str,
    created: tuple[str, datetime],
    payload: dict[str, Any],
    extra: dict[str, Any],
    ensure_ascii: bool,
) -> None:
    document = {
        **extra,
        "notificationId": notification_id,
        "eventId": event_id,
        "eventCreatedAtUtc": created[0],
        "notificationSentUtc": created[0],
        "notificationType": notification_type,
        "payload": payload,
    }
    raw = json.dumps(document, ensure_ascii=ensure_ascii).encode()

    envelope = parse(raw, "webhook")

    kind = payload.get("payloadType")
    assert envelope == Envelope(
        event_id=event_id,
        notification_id=notification_id,
        notification_type=notification_type,
        payload_type=kind if isinstance(kind, str) else None,
        created_at=created[1],
        payload=payload,
    )
    assert envelope.created_at is not None
    assert envelope.created_at.tzinfo is not None


@given(event_id=ids, created=timestamps(), payload=payloads(), extra=extras)
def test_it_reads_back_any_well_formed_polled_event(
    event_id: str, created: tuple[str, datetime], payload: dict[str, Any], extra: dict[str, Any]
) -> None:
    raw = json.dumps({**extra, "id": event_id, "createdAt": created[0], "payload": payload})

    envelope = parse(raw.encode(), "poll")

    kind = payload.get("payloadType")
    assert (envelope.event_id, envelope.created_at, envelope.payload) == (
        event_id,
        created[1],
        payload,
    )
    assert envelope.notification_type == NOTIFICATION_TYPE_BY_PAYLOAD_TYPE.get(
        kind if isinstance(kind, str) else "", "Unknown"
    )


def _parse_or_refuse(raw: bytes, source: str) -> None:
    try:
        parse(raw, source)
    except BrokenBody as exc:
        reason = exc.reason
    else:
        return
    assert reason  # the dead letter says why


@given(raw=st.binary(max_size=512), source=st.sampled_from(["webhook", "poll"]))
def test_it_reads_or_refuses_any_bytes_with_a_reason(raw: bytes, source: str) -> None:
    _parse_or_refuse(raw, source)


@given(value=json_values, source=st.sampled_from(["webhook", "poll"]))
def test_it_reads_or_refuses_any_json_document_with_a_reason(value: Any, source: str) -> None:
    _parse_or_refuse(json.dumps(value).encode(), source)


@given(
    document=st.fixed_dictionaries(
        {},
        optional={
            "notificationId": json_values,
            "eventId": json_values | ids,
            "eventCreatedAtUtc": json_values | timestamps().map(lambda t: t[0]),
            "notificationType": json_values | ids,
            "payload": json_values | payloads(),
            "id": json_values | ids,
            "createdAt": json_values,
        },
    ),
    source=st.sampled_from(["webhook", "poll"]),
)
def test_it_reads_or_refuses_an_envelope_with_any_field_of_any_type(
    document: dict[str, Any], source: str
) -> None:
    _parse_or_refuse(json.dumps(document).encode(), source)


def _nested(depth: int, kind: str) -> bytes:
    """A notification whose payload holds `depth` more levels: the envelope is level 1 and
    its payload level 2, so the document is `depth` + 2 deep."""
    inner = "[" * depth + "1" + "]" * depth if kind == "[" else '{"a":' * depth + "1" + "}" * depth
    return (
        '{"notificationId":"n","eventId":"e","notificationType":"T","payload":{"x":' + inner + "}}"
    ).encode()


@given(depth=st.integers(0, MAX_NESTING - 2), kind=st.sampled_from(["[", "{"]))
def test_it_reads_a_payload_nested_up_to_the_limit(depth: int, kind: str) -> None:
    assert parse_notification(_nested(depth, kind)).event_id == "e"


@given(depth=st.integers(MAX_NESTING - 1, 5 * MAX_NESTING), kind=st.sampled_from(["[", "{"]))
def test_it_refuses_a_payload_nested_deeper_than_the_limit(depth: int, kind: str) -> None:
    raw = _nested(depth, kind)

    with pytest.raises(BrokenBody, match="nested deeper"):
        parse_notification(raw)
    with pytest.raises(BrokenBody, match="nested deeper"):
        parse_polled_event(raw.replace(b'"eventId"', b'"id"'))


@given(
    event_id=ids,
    payload=payloads(),
    bad=st.sampled_from(["\\u0000", "\\ud800", "a\\udfffb"]),
    where=st.sampled_from(["eventId", "payload", "key"]),
)
def test_it_refuses_a_string_postgresql_cannot_hold(
    event_id: str, payload: dict[str, Any], bad: str, where: str
) -> None:
    # NUL and lone surrogates are valid JSON as \u escapes, and nothing PostgreSQL can store.
    document = {
        "notificationId": "n",
        "eventId": "EVENT" if where == "eventId" else event_id,
        "notificationType": "T",
        "payload": {**payload, "x": "VALUE"} if where == "payload" else payload,
        **({"KEY": 1} if where == "key" else {}),
    }
    raw = json.dumps(document).replace('"EVENT"', f'"{bad}"')
    raw = raw.replace('"VALUE"', f'"{bad}"').replace('"KEY"', f'"{bad}"')

    with pytest.raises(BrokenBody, match="PostgreSQL cannot hold"):
        parse_notification(raw.encode())
