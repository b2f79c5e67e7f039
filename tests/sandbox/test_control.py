"""The sandbox's own `/_sandbox/` control endpoints: faults, logs, clock, switches, reset."""

from __future__ import annotations

import time

import requests

from tests.fixtures.sandbox import HTTP_TIMEOUT, WEBHOOK_SECRET, SandboxHandle
from tests.spec import assert_request_matches


def test_it_answers_queued_faults_in_order_then_behaves_normally(sandbox: SandboxHandle) -> None:
    sandbox.control.add_faults(
        "GET",
        "/energy-coordination/v1/events",
        [{"status": 503}, {"status": 429, "retryAfter": "1"}, {"status": 500, "delay": 0.2}],
    )

    first = sandbox.api("GET", "/events")
    second = sandbox.api("GET", "/events")
    started = time.monotonic()
    third = sandbox.api("GET", "/events")
    third_took = time.monotonic() - started
    fourth = sandbox.api("GET", "/events")

    assert first.status_code == 503
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "1"
    assert third.status_code == 500
    assert third_took >= 0.2
    assert fourth.status_code == 200


def test_it_applies_faults_only_to_the_matching_method_and_path(sandbox: SandboxHandle) -> None:
    sandbox.control.add_faults("POST", "/webhooks", [{"status": 503}])

    listed = sandbox.api("GET", "/webhooks")
    events = sandbox.api("GET", "/events")
    created = sandbox.api("POST", "/webhooks", json={"webhookUrl": "http://127.0.0.1:9/x"})
    created_again = sandbox.api("POST", "/webhooks", json={"webhookUrl": "http://127.0.0.1:9/x"})

    assert (listed.status_code, events.status_code) == (200, 200)
    assert created.status_code == 503
    assert created_again.status_code == 201
    assert len(sandbox.state.list_webhooks()) == 1


def test_it_can_fault_the_token_endpoint_and_return_a_body(sandbox: SandboxHandle) -> None:
    sandbox.control.add_faults(
        "POST", "/connect/token", [{"status": 500, "body": {"error": "server_error"}}]
    )

    response = requests.post(
        sandbox.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
        },
        timeout=HTTP_TIMEOUT,
    )

    assert response.status_code == 500
    assert response.json() == {"error": "server_error"}
    assert sandbox.token()


def test_it_slows_a_request_down_without_changing_its_answer(sandbox: SandboxHandle) -> None:
    sandbox.control.add_faults("GET", "/events", [{"delay": 0.2}])
    started = time.monotonic()

    response = sandbox.api("GET", "/events")

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.2


def test_it_rejects_malformed_fault_definitions(sandbox: SandboxHandle) -> None:
    url = sandbox.control.url + "/faults"
    bad_bodies = [
        {"method": "GET", "path": "/x", "responses": []},
        {"method": "GET", "path": "x", "responses": [{"status": 500}]},
        {"method": "GET", "path": "/x", "responses": [{"status": 1000}]},
        {"method": "GET", "path": "/x", "responses": [{}]},
        {"path": "/x", "responses": [{"status": 500}]},
    ]

    statuses = [requests.post(url, json=b, timeout=HTTP_TIMEOUT).status_code for b in bad_bodies]

    assert statuses == [400] * len(bad_bodies)
    assert sandbox.state.pending_faults() == {}


def test_it_logs_api_requests_without_secrets(sandbox: SandboxHandle) -> None:
    sandbox.control.clear_requests()
    sandbox.token()
    sandbox.register_webhook("http://127.0.0.1:9/hook")
    sandbox.api("GET", "/events", params={"page": "2", "pageSize": "5"})

    logged = sandbox.control.requests()

    assert [(r["method"], r["path"]) for r in logged] == [
        ("POST", "/connect/token"),
        ("POST", "/energy-coordination/v1/webhooks"),
        ("GET", "/energy-coordination/v1/events"),
    ]
    token_request, webhook_request, events_request = logged
    assert token_request["form"] == {
        "grant_type": "client_credentials",
        "client_id": sandbox.client_id,
    }
    assert webhook_request["json"]["webhookUrl"] == "http://127.0.0.1:9/hook"
    assert WEBHOOK_SECRET not in str(logged)
    assert sandbox.client_secret not in str(logged)
    assert events_request["query"] == {"page": "2", "pageSize": "5"}
    # What the log holds is what other suites check against the spec.
    assert_request_matches("POST", webhook_request["path"], webhook_request["json"])
    assert_request_matches("GET", events_request["path"], query=events_request["query"])


def test_it_clears_the_request_log(sandbox: SandboxHandle) -> None:
    sandbox.api("GET", "/events")

    sandbox.control.clear_requests()

    assert sandbox.control.requests() == []


def test_it_sets_advances_and_restores_the_clock(sandbox: SandboxHandle) -> None:
    frozen = sandbox.control.set_clock("2030-01-01T08:00:00+01:00", frozen=True)
    first = sandbox.api("POST", "/simulation/events/usereligibility").json()["simulatedEvent"]
    advanced = sandbox.control.advance_clock(90)
    second = sandbox.api("POST", "/simulation/events/usereligibility").json()["simulatedEvent"]
    real = sandbox.control.real_clock()

    assert frozen == {"now": "2030-01-01T07:00:00+00:00", "frozen": True, "real": False}
    assert first["createdAt"] == "2030-01-01T07:00:00+00:00"
    assert advanced["now"] == "2030-01-01T07:01:30+00:00"
    assert second["createdAt"] == "2030-01-01T07:01:30+00:00"
    assert real["real"] is True
    assert not real["now"].startswith("2030")


def test_it_keeps_a_set_clock_ticking_unless_frozen(sandbox: SandboxHandle) -> None:
    sandbox.control.set_clock("2030-01-01T00:00:00+00:00")
    time.sleep(0.05)

    view = sandbox.control.clock()

    assert view["frozen"] is False
    assert view["now"] > "2030-01-01T00:00:00.0400000+00:00"
    assert view["now"] < "2030-01-01T00:01:00+00:00"


def test_it_rejects_a_clock_without_offset(sandbox: SandboxHandle) -> None:
    response = requests.post(
        sandbox.control.url + "/clock", json={"now": "2030-01-01T00:00:00"}, timeout=HTTP_TIMEOUT
    )

    assert response.status_code == 400
    assert sandbox.control.clock()["real"] is True


def test_it_reports_and_validates_delivery_switches(sandbox: SandboxHandle) -> None:
    changed = sandbox.control.set_delivery(duplicate=True, delay=0.5)
    invalid = requests.post(
        sandbox.control.url + "/delivery", json={"drop": "yes"}, timeout=HTTP_TIMEOUT
    )
    current = requests.get(sandbox.control.url + "/delivery", timeout=HTTP_TIMEOUT).json()

    assert changed == {
        "enabled": True,
        "duplicate": True,
        "drop": False,
        "delay": 0.5,
        "fail": "off",
    }
    assert invalid.status_code == 400
    assert current == changed


def test_it_resets_data_logs_faults_switches_and_clock_but_not_tokens(
    sandbox: SandboxHandle,
) -> None:
    sandbox.register_webhook("http://127.0.0.1:9/hook")
    sandbox.api("POST", "/simulation/events/usereligibility")
    sandbox.control.add_faults("GET", "/webhooks", [{"status": 500}])
    sandbox.control.set_delivery(drop=True)
    sandbox.control.set_clock("2030-01-01T00:00:00+00:00")

    sandbox.control.reset()

    assert sandbox.api("GET", "/webhooks").json() == {"webhooks": []}
    assert sandbox.api("GET", "/events").json()["events"] == []
    assert sandbox.control.deliveries() == []
    assert sandbox.control.set_delivery()["drop"] is False
    assert sandbox.control.clock()["real"] is True
    assert [r["path"] for r in sandbox.control.requests()] == [
        "/energy-coordination/v1/webhooks",
        "/energy-coordination/v1/events",
    ]
