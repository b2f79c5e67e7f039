"""`/simulation/events/lpc/resources` and `/lpc/locations`: the event is stored for `/events`
and its payload is what the worker reads."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from celery import Celery

from shared.db import Connection
from tests.fixtures.sandbox import SandboxHandle
from tests.spec import spec_checked_json
from tests.worker.cli import run_json
from worker.events.inbox import ingest

RESOURCES = "/simulation/events/lpc/resources"
LOCATIONS = "/simulation/events/lpc/locations"


def test_it_publishes_a_resource_lpc_event_with_the_points_spacing_as_resolution(
    sandbox: SandboxHandle,
) -> None:
    request = {
        "resources": [
            {
                "resource": {"locationId": "loc-1", "resourceId": "r-1", "meterPointId": "7070"},
                "points": [
                    {"maxPowerInKiloWatts": 3.5, "timestamp": "2026-03-04T10:00:00+00:00"},
                    {"maxPowerInKiloWatts": 2, "timestamp": "2026-03-04T12:00:00+00:00"},
                ],
            }
        ]
    }

    response = sandbox.api("POST", RESOURCES, json=request)

    assert response.status_code == 200, response.text
    event = spec_checked_json(response)["simulatedEvent"]
    assert event["payload"]["payloadType"] == "ResourceLPC"
    [target] = event["payload"]["targets"]
    assert target["resolution"] == "02:00:00"
    assert (target["resourceId"], target["locationId"], target["meterPointId"]) == (
        "r-1",
        "loc-1",
        "7070",
    )
    assert [p["maxPowerInKiloWatts"] for p in target["points"]] == [3.5, 2]
    assert sandbox.api("GET", f"/events/{event['id']}").json() == event


def test_it_makes_caps_for_a_location_without_points_and_refuses_a_request_without_targets(
    sandbox: SandboxHandle,
) -> None:
    response = sandbox.api(
        "POST",
        LOCATIONS,
        json={"locations": [{"location": {"locationId": "l", "meterPointId": "m"}}]},
    )

    assert response.status_code == 200, response.text
    [target] = response.json()["simulatedEvent"]["payload"]["targets"]
    assert target["resolution"] == "02:00:00"
    assert len(target["points"]) == 4
    assert set(target) == {"locationId", "meterPointId", "resolution", "points"}
    refused = sandbox.api("POST", RESOURCES, json={})
    assert refused.status_code == 400
    assert "resources must be a non-empty array" in refused.json()
    no_mpid = sandbox.api(
        "POST", LOCATIONS, json={"locations": [{"location": {"locationId": "l"}}]}
    )
    assert no_mpid.status_code == 400
    assert "meterPointId" in no_mpid.json()


def test_it_gives_the_worker_an_event_it_stores_when_fetched_from_events(
    sandbox: SandboxHandle, database_url: str, db: Connection, worker_app: Celery
) -> None:
    request = {"locations": [{"location": {"locationId": "l-7", "meterPointId": "m-7"}}]}
    event_id = sandbox.api("POST", LOCATIONS, json=request).json()["simulatedEvent"]["id"]
    [polled] = [e for e in sandbox.api("GET", "/events").json()["events"] if e["id"] == event_id]

    result = ingest(
        db,
        delivery_id=str(uuid.uuid4()),
        raw=json.dumps(polled).encode(),
        received_at=datetime.now(UTC),
        source="poll",
        settings=worker_app.conf.spark_settings,
        sender=worker_app,
    )
    db.commit()

    assert result.status == "processed"
    shown = run_json(database_url, "lpc", "show", event_id)
    assert shown["kind"] == "location"
    [target] = shown["targetList"]
    assert (target["locationId"], target["meterPointId"], target["resolution"]) == (
        "l-7",
        "m-7",
        "02:00:00",
    )
    assert len(target["caps"]) == 4


def _resource_event(sandbox: SandboxHandle) -> str:
    resources = [
        {"resource": {"locationId": f"loc-{n}", "resourceId": f"r-{n}", "meterPointId": "m"}}
        for n in range(3)
    ]
    answer = sandbox.api("POST", RESOURCES, json={"resources": resources})
    return str(answer.json()["simulatedEvent"]["id"])


def _lpc_resource(n: int) -> dict[str, str]:
    return {"meterPointId": "m", "locationId": f"loc-{n}", "resourceId": f"r-{n}"}


def test_it_accepts_an_acknowledgement_naming_every_target_once_and_lists_when_it_came(
    sandbox: SandboxHandle,
) -> None:
    event_id = _resource_event(sandbox)
    body = {
        "eventId": event_id,
        "payloads": [
            {
                "payloadType": "ResourceLPCAcknowledgement",
                "acknowledgedTargets": [_lpc_resource(0), _lpc_resource(1)],
                "declinedTargets": [_lpc_resource(2)],
            }
        ],
    }

    answer = sandbox.api("POST", "/reports", json=body)

    assert answer.status_code == 200, answer.text
    [report] = sandbox.sandbox.reports.reports(event_id)
    assert report.body == body
    assert report.to_control()["createdAt"] == answer.json()["createdAt"]


def test_it_refuses_an_acknowledgement_with_unknown_repeated_or_missing_targets(
    sandbox: SandboxHandle,
) -> None:
    event_id = _resource_event(sandbox)

    def post(acknowledged: list[dict[str, str]], declined: list[dict[str, str]]) -> str:
        payload = {
            "payloadType": "ResourceLPCAcknowledgement",
            "acknowledgedTargets": acknowledged,
            "declinedTargets": declined,
        }
        answer = sandbox.api("POST", "/reports", json={"eventId": event_id, "payloads": [payload]})
        assert answer.status_code == 400
        return str(answer.json())

    unknown = post([_lpc_resource(0), _lpc_resource(1), _lpc_resource(7)], [_lpc_resource(2)])
    assert "Not targets of event" in unknown
    assert "resourceId=r-7" in unknown
    twice = post([_lpc_resource(0), _lpc_resource(1)], [_lpc_resource(2), _lpc_resource(1)])
    assert "more than once: meterPointId=m, locationId=loc-1, resourceId=r-1" in twice
    missing = post([_lpc_resource(0)], [_lpc_resource(2)])
    assert "neither acknowledged nor declined: meterPointId=m, locationId=loc-1" in missing
    wrong_type = sandbox.api(
        "POST",
        "/reports",
        json={"eventId": event_id, "payloads": [{"payloadType": "LocationLPCAcknowledgement"}]},
    )
    assert wrong_type.status_code == 400
    assert "must be ResourceLPCAcknowledgement" in wrong_type.json()
    assert sandbox.sandbox.reports.reports(event_id) == []
