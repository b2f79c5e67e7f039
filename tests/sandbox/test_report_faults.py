"""The random faults of `POST /reports` (`/_sandbox/reports/faults`): 500s, 429s with
Retry-After, slow answers and answers lost after the report was stored."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from tests.fixtures.sandbox import HTTP_TIMEOUT, SandboxHandle

HOUR = "2025-06-11T00:00:00+00:00"


@pytest.fixture
def report(sandbox: SandboxHandle) -> dict[str, Any]:
    """A valid report on a fresh price curve event."""
    sandbox.control.set_clock("2025-06-10T12:00:00+00:00", frozen=True)
    event = sandbox.simulate_price_curve(
        {
            "targets": [{"resourceId": "charger-1", "locationId": "home-1"}],
            "priceCurveDelta": {"points": [{"price": -0.5, "timestamp": HOUR}]},
        }
    )
    usage = {
        "resourceId": "charger-1",
        "locationId": "home-1",
        "points": [{"timestamp": HOUR, "kiloWattHours": 2.0}],
        "resolution": "01:00:00",
        "payloadType": "EnergyUsage",
    }
    return {"eventId": event["id"], "payloads": [usage]}


def _post(sandbox: SandboxHandle, body: Any, timeout: float = HTTP_TIMEOUT) -> requests.Response:
    return sandbox.api("POST", "/reports", json=body, timeout=timeout)


def test_it_answers_500_without_storing_the_report(
    sandbox: SandboxHandle, report: dict[str, Any]
) -> None:
    sandbox.control.set_report_faults(errorRate=1, status500Share=1)

    response = _post(sandbox, report)

    assert response.status_code == 500
    assert sandbox.control.reports()["reports"] == []
    assert sandbox.control.report_faults()["drawn"]["status500"] == 1


def test_it_answers_429_with_retry_after(sandbox: SandboxHandle, report: dict[str, Any]) -> None:
    sandbox.control.set_report_faults(errorRate=1, status429Share=1, retryAfter=3)

    response = _post(sandbox, report)

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert sandbox.control.reports()["reports"] == []


def test_it_answers_slowly_but_normally(sandbox: SandboxHandle, report: dict[str, Any]) -> None:
    sandbox.control.set_report_faults(errorRate=1, slowShare=1, slowSeconds=0.3)
    started = time.monotonic()

    response = _post(sandbox, report)

    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200
    assert len(sandbox.control.reports()["reports"]) == 1


def test_it_stores_the_report_and_drops_the_connection_for_a_lost_answer(
    sandbox: SandboxHandle, report: dict[str, Any]
) -> None:
    sandbox.control.set_report_faults(errorRate=1, lostAnswerShare=1)

    with pytest.raises(requests.ConnectionError):
        _post(sandbox, report)

    listed = sandbox.control.reports()
    (stored,) = listed["reports"]
    assert stored["body"] == report
    assert stored["answerLost"] is True
    assert listed["lostAnswers"] == 1
    assert listed["countsByEventId"] == {report["eventId"]: 1}


def test_it_stores_the_report_and_answers_too_late_for_a_delayed_lost_answer(
    sandbox: SandboxHandle, report: dict[str, Any]
) -> None:
    sandbox.control.set_report_faults(
        errorRate=1, lostAnswerShare=1, lostAnswerMode="delay", lostAnswerSeconds=5
    )

    with pytest.raises(requests.Timeout):
        _post(sandbox, report, timeout=0.3)

    listed = sandbox.control.reports()
    assert listed["lostAnswers"] == 1
    assert listed["reports"][0]["answerLost"] is True


def test_it_answers_a_rejected_report_even_when_its_answer_would_be_lost(
    sandbox: SandboxHandle, report: dict[str, Any]
) -> None:
    sandbox.control.set_report_faults(errorRate=1, lostAnswerShare=1)

    response = _post(sandbox, {**report, "eventId": "no-such-event"})

    assert response.status_code == 400
    assert sandbox.control.reports()["lostAnswers"] == 0


def test_it_faults_a_seeded_share_of_requests_reproducibly(
    sandbox: SandboxHandle, report: dict[str, Any]
) -> None:
    faults = {"errorRate": 0.5, "status500Share": 1, "status429Share": 1, "seed": 7}

    runs = []
    for _ in range(2):
        sandbox.control.set_report_faults(**faults)
        runs.append([_post(sandbox, report).status_code for _ in range(30)])

    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 429, 500}
    drawn = sandbox.control.report_faults()["drawn"]
    assert drawn["status500"] + drawn["status429"] == 30 - runs[1].count(200)
    assert sandbox.control.reports()["countsByEventId"] == {
        report["eventId"]: 2 * runs[0].count(200)
    }


def test_it_switches_faults_off(sandbox: SandboxHandle, report: dict[str, Any]) -> None:
    sandbox.control.set_report_faults(errorRate=1, status500Share=1)

    sandbox.control.clear_report_faults()

    assert _post(sandbox, report).status_code == 200
    assert sandbox.control.report_faults()["errorRate"] == 0


def test_it_shows_the_settings_with_their_defaults(sandbox: SandboxHandle) -> None:
    view = sandbox.control.set_report_faults(errorRate=0.25, lostAnswerShare=2, seed=1)

    assert view == {
        "errorRate": 0.25,
        "status500Share": 0.0,
        "status429Share": 0.0,
        "slowShare": 0.0,
        "lostAnswerShare": 2.0,
        "retryAfter": "1",
        "slowSeconds": 2.0,
        "lostAnswerMode": "drop",
        "lostAnswerSeconds": 30.0,
        "seed": 1,
        "drawn": {"status500": 0, "status429": 0, "slow": 0, "lostAnswer": 0},
    }


@pytest.mark.parametrize(
    "body",
    [
        {"errorRate": 1.5, "status500Share": 1},
        {"errorRate": 0.5},
        {"errorRate": 0.5, "status500Share": -1},
        {"errorRate": 0.5, "slowShare": 1, "slowSeconds": "long"},
        {"errorRate": 0.5, "lostAnswerShare": 1, "lostAnswerMode": "vanish"},
        {"errorRate": 0.5, "status429Share": 1, "retryAfter": ["1"]},
        {"errorRate": 0.5, "status500Share": 1, "seed": "seven"},
    ],
)
def test_it_rejects_bad_fault_settings(sandbox: SandboxHandle, body: dict[str, Any]) -> None:
    response = requests.post(
        sandbox.control.url + "/reports/faults", json=body, timeout=HTTP_TIMEOUT
    )

    assert response.status_code == 400
    assert response.json()["error"]
    assert sandbox.control.report_faults()["errorRate"] == 0
