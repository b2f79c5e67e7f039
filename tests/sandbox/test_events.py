"""`/events` (paged, newest first) and `/events/{eventId}`."""

from __future__ import annotations

from tests.fixtures.sandbox import SPARK_TIMESTAMP, SandboxHandle
from tests.spec import assert_request_matches, spec_checked_json


def _simulate(sandbox: SandboxHandle, count: int) -> list[str]:
    """Create `count` events, alternating kinds; their ids, oldest first."""
    ids = []
    for index in range(count):
        if index % 2:
            response = sandbox.api("POST", "/simulation/events/pricecurve", json={})
        else:
            response = sandbox.api("POST", "/simulation/events/usereligibility")
        assert response.status_code == 200, response.text
        ids.append(response.json()["simulatedEvent"]["id"])
    return ids


def test_it_lists_no_events_on_a_fresh_sandbox(sandbox: SandboxHandle) -> None:
    response = sandbox.api("GET", "/events")

    assert response.status_code == 200
    body = spec_checked_json(response)
    assert body["events"] == []
    assert body["pagination"]["totalRecords"] == 0
    assert body["pagination"]["currentPage"] == 1
    assert body["pagination"]["nextPage"] is None


def test_it_pages_events_newest_first(sandbox: SandboxHandle) -> None:
    ids = _simulate(sandbox, 5)
    assert_request_matches("GET", "/events", query={"page": "1", "pageSize": "2"})

    pages = [
        sandbox.api("GET", "/events", params={"page": page, "pageSize": 2}) for page in (1, 2, 3)
    ]

    bodies = [spec_checked_json(page) for page in pages]
    listed = [event["id"] for body in bodies for event in body["events"]]
    assert listed == list(reversed(ids))
    assert [len(body["events"]) for body in bodies] == [2, 2, 1]
    first, last = bodies[0]["pagination"], bodies[2]["pagination"]
    assert first == {
        "totalRecords": 5,
        "pageSize": 2,
        "currentPage": 1,
        "totalPages": 3,
        "nextPage": 2,
        "previousPage": None,
    }
    assert last["nextPage"] is None
    assert last["previousPage"] == 2


def test_it_returns_an_empty_page_past_the_end(sandbox: SandboxHandle) -> None:
    _simulate(sandbox, 2)

    response = sandbox.api("GET", "/events", params={"page": 5, "pageSize": 10})

    body = spec_checked_json(response)
    assert body["events"] == []
    assert body["pagination"]["totalRecords"] == 2


def test_it_accepts_a_page_size_of_1000(sandbox: SandboxHandle) -> None:
    _simulate(sandbox, 3)

    response = sandbox.api("GET", "/events", params={"pageSize": 1000})

    assert response.status_code == 200
    assert len(spec_checked_json(response)["events"]) == 3


def test_it_rejects_a_page_size_over_1000_as_a_problem(sandbox: SandboxHandle) -> None:
    response = sandbox.api("GET", "/events", params={"pageSize": 1001})

    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert "pageSize" in spec_checked_json(response)["errors"]


def test_it_rejects_pages_below_one_and_non_numbers(sandbox: SandboxHandle) -> None:
    zero = sandbox.api("GET", "/events", params={"page": 0})
    text = sandbox.api("GET", "/events", params={"pageSize": "many"})

    assert zero.status_code == 400
    assert "page" in spec_checked_json(zero)["errors"]
    assert text.status_code == 400
    assert "pageSize" in spec_checked_json(text)["errors"]


def test_it_fetches_one_event_by_id(sandbox: SandboxHandle) -> None:
    simulated = sandbox.api("POST", "/simulation/events/pricecurve", json={}).json()
    event_id = simulated["simulatedEvent"]["id"]

    response = sandbox.api("GET", f"/events/{event_id}")

    assert response.status_code == 200
    event = spec_checked_json(response)
    assert event == simulated["simulatedEvent"]
    assert list(event) == ["id", "createdAt", "payload"]
    assert SPARK_TIMESTAMP.match(event["createdAt"])


def test_it_answers_404_for_an_unknown_event(sandbox: SandboxHandle) -> None:
    response = sandbox.api("GET", "/events/00000000-0000-4000-8000-000000000000")

    assert response.status_code == 404
    assert response.content == b""
    spec_checked_json(response)
