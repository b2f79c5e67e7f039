"""tests/spec.py: the spec checks pass what Spark documents and fail what it does not."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.spec import (
    assert_notification_matches,
    assert_request_matches,
    assert_response_matches,
    assert_schema_matches,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "spark"
# A real webhook body from Volue's signed test fixtures (see notes/spark-api.md §5.3).
NOTIFICATION = (
    b'{"notificationId":"b6a6bd4a-6d37-4c74-95d1-4eb7f27a9bdd",'
    b'"eventId":"ca05399b-c2d6-4dd6-b278-40a7e2061d42",'
    b'"eventCreatedAtUtc":"2000-01-01T00:00:00+00:00",'
    b'"notificationSentUtc":"2000-01-01T00:00:00+00:00",'
    b'"notificationType":"UserEligibilityUpdated",'
    b'"payload":{"lastUpdated":"2000-01-01T00:00:00+00:00",'
    b'"addedUsers":["6d263c2b-2074-4146-121f-67d702a6d9a6"],'
    b'"removedUsers":["cc7f94bd-5888-6abb-ce63-cce87228bc33"],"payloadType":"UserEligibility"}}'
)


def _example(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


def test_it_accepts_the_specs_own_examples() -> None:
    assert_response_matches(
        "GET", "/events", 200, _example("openapi-example.events-list-response.json")
    )
    assert_response_matches(
        "GET", "/events/x", 200, _example("openapi-example.event-by-id-response.pricecurve.json")
    )
    assert_response_matches(
        "POST", "/webhooks", 201, _example("openapi-example.webhook-create-response.json")
    )
    assert_request_matches(
        "POST", "/webhooks", _example("openapi-example.webhook-create-request.json")
    )
    assert_request_matches(
        "POST", "/reports", _example("openapi-example.report-request.energyusage.json")
    )
    assert_notification_matches(NOTIFICATION)


def test_it_rejects_a_field_the_spec_does_not_have() -> None:
    event = _example("openapi-example.event-by-id-response.pricecurve.json")
    event["payload"]["priceCurveDelta"]["unit"] = "kWh"

    with pytest.raises(AssertionError, match="unit"):
        assert_response_matches("GET", "/events/x", 200, event)


def test_it_rejects_a_payload_whose_type_does_not_match_its_fields() -> None:
    event = _example("openapi-example.event-by-id-response.pricecurve.json")
    event["payload"]["payloadType"] = "UserEligibility"

    with pytest.raises(AssertionError):
        assert_response_matches("GET", "/events/x", 200, event)


def test_it_rejects_a_status_the_operation_does_not_declare() -> None:
    with pytest.raises(AssertionError, match="401"):
        assert_response_matches("GET", "/events", 401, None, None)


def test_it_rejects_the_wrong_media_type_for_a_problem() -> None:
    with pytest.raises(AssertionError):
        assert_response_matches("GET", "/events", 400, {"title": "bad"}, "application/json")


def test_it_rejects_a_request_missing_its_required_body() -> None:
    with pytest.raises(AssertionError, match="body"):
        assert_request_matches("POST", "/simulation/events/pricecurve", None)


def test_it_rejects_a_report_payload_without_payload_type() -> None:
    report = _example("openapi-example.report-request.energyusage.json")
    del report["payloads"][0]["payloadType"]

    with pytest.raises(AssertionError):
        assert_request_matches("POST", "/reports", report)


def test_it_rejects_bad_query_parameters() -> None:
    with pytest.raises(AssertionError, match="page"):
        assert_request_matches("GET", "/events?page=first")


def test_it_rejects_a_notification_with_a_bad_timestamp() -> None:
    notification = json.loads(NOTIFICATION)
    broken = copy.deepcopy(notification)
    broken["eventCreatedAtUtc"] = "yesterday"

    with pytest.raises(AssertionError, match="eventCreatedAtUtc"):
        assert_notification_matches(broken)
    with pytest.raises(KeyError):
        assert_schema_matches("NoSuchSchema", notification)


def test_it_accepts_null_for_optional_object_and_enum_fields_as_spark_sends_them() -> None:
    assert_request_matches(
        "POST", "/users/u/locations", _example("openapi-example.location-create-request.json")
    )
    assert_request_matches(
        "PATCH", "/users/u/locations/l", _example("openapi-example.location-patch-request.json")
    )
    assert_response_matches(
        "GET",
        "/users/u/locations/l",
        200,
        {"locationId": "l", "locationType": None, "coordinates": None, "meterPointIds": []},
    )


def test_it_still_rejects_null_for_required_object_and_enum_fields() -> None:
    with pytest.raises(AssertionError, match="resourceType"):
        assert_request_matches(
            "POST", "/users/u/vehicles", {"resourceId": "r", "resourceType": None}
        )


def test_it_still_rejects_a_wrong_value_for_a_nullable_object_field() -> None:
    with pytest.raises(AssertionError, match="coordinates"):
        assert_response_matches(
            "GET", "/users/u/locations/l", 200, {"locationId": "l", "coordinates": "60,10"}
        )
