"""shared.spark_api: the Spark client against the local sandbox (token, retries, errors, paging)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import psycopg
import pytest

from shared.config import ConfigError, load_settings
from shared.spark_api import (
    SparkAuthError,
    SparkClient,
    SparkConflict,
    SparkHTTPError,
    SparkNotFound,
    SparkRateLimit,
    SparkRateLimited,
    SparkUnavailable,
    parse_retry_after,
)
from tests.fixtures.sandbox import SandboxHandle
from tests.spec import assert_request_matches, assert_response_matches

EVENTS = "/energy-coordination/v1/events"
TOKEN = "/connect/token"

MakeClient = Callable[..., SparkClient]


@pytest.fixture
def make_client(sandbox: SandboxHandle) -> Iterator[MakeClient]:
    """Clients for the sandbox with millisecond backoff; keyword arguments override."""
    clients: list[SparkClient] = []

    def make(**overrides: Any) -> SparkClient:
        options: dict[str, Any] = {
            "timeout": (2.0, 5.0),
            "max_attempts": 4,
            "backoff_base": 0.01,
            "backoff_max": 3.0,
        }
        urls = {"api_url": sandbox.base_url, "token_url": sandbox.token_url}
        urls.update({k: overrides.pop(k) for k in ("api_url", "token_url") if k in overrides})
        options.update(overrides)
        client = SparkClient(
            urls["api_url"],
            urls["token_url"],
            sandbox.client_id,
            options.pop("client_secret", sandbox.client_secret),
            **options,
        )
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            client.close()


@pytest.fixture
def client(make_client: MakeClient) -> SparkClient:
    return make_client()


def received(sandbox: SandboxHandle, method: str, path: str) -> list[dict[str, Any]]:
    return [r for r in sandbox.control.requests() if r["method"] == method and r["path"] == path]


def simulate_price_curves(client: SparkClient, count: int) -> list[str]:
    """Create `count` events through the API; their ids, oldest first."""
    ids = []
    for _ in range(count):
        created = client.post_json("/simulation/events/pricecurve", {})
        ids.append(created["simulatedEvent"]["id"])
    return ids


def closed_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# Tokens


def test_it_fetches_the_token_once_and_reuses_it(
    sandbox: SandboxHandle, client: SparkClient
) -> None:
    client.get_json("/events")
    client.get_json("/webhooks")
    client.get_json("/events", params={"page": 1, "pageSize": 5})

    token_requests = received(sandbox, "POST", TOKEN)
    assert len(token_requests) == 1
    # Credentials as form fields, no scope (the sandbox drops client_secret from its log).
    assert token_requests[0]["form"] == {
        "grant_type": "client_credentials",
        "client_id": sandbox.client_id,
    }
    assert len(received(sandbox, "GET", EVENTS)) == 2


def test_it_refreshes_the_token_once_when_spark_rejects_it(
    sandbox: SandboxHandle, client: SparkClient
) -> None:
    client.get_json("/events")
    sandbox.control.expire_tokens()

    body = client.get_json("/events")

    assert body["events"] == []
    assert len(received(sandbox, "POST", TOKEN)) == 2
    # First call, the 401, and the resend with the fresh token.
    assert len(received(sandbox, "GET", EVENTS)) == 3


def test_it_renews_the_token_before_it_expires(
    start_sandbox: Callable[..., SandboxHandle],
) -> None:
    # Without waiting: the sandbox's tokens live 30 s, and with a leeway of 60 s the client
    # counts each one as due for renewal from the start, while the sandbox still accepts it.
    private = start_sandbox(token_ttl=30)
    with SparkClient(
        private.base_url,
        private.token_url,
        private.client_id,
        private.client_secret,
        token_leeway=60,
    ) as client:
        client.get_json("/events")
        private.control.clear_requests()
        client.get_json("/events")

    # Renewed ahead of time: a new token before the call, and no call answered 401 and resent.
    assert [r["path"] for r in private.control.requests()] == [TOKEN, EVENTS]


def test_it_raises_an_auth_error_for_wrong_credentials(
    sandbox: SandboxHandle, make_client: MakeClient
) -> None:
    client = make_client(client_secret="not-the-secret")

    with pytest.raises(SparkAuthError) as caught:
        client.get_json("/events")

    assert caught.value.status == 400
    assert "invalid_client" in caught.value.body
    assert "not-the-secret" not in str(caught.value)
    # Refused credentials are not retried, and the API is never called without a token.
    assert len(received(sandbox, "POST", TOKEN)) == 1
    assert received(sandbox, "GET", EVENTS) == []


def test_it_retries_the_token_endpoint_when_it_is_unavailable(
    sandbox: SandboxHandle, client: SparkClient
) -> None:
    sandbox.control.add_faults("POST", TOKEN, [{"status": 503}])

    client.get_json("/events")

    assert len(received(sandbox, "POST", TOKEN)) == 2
    assert len(received(sandbox, "GET", EVENTS)) == 1


# Retries


def test_it_retries_a_503_then_succeeds(sandbox: SandboxHandle, client: SparkClient) -> None:
    sandbox.control.add_faults("GET", EVENTS, [{"status": 503}, {"status": 502}])

    body = client.get_json("/events")

    assert "pagination" in body
    assert len(received(sandbox, "GET", EVENTS)) == 3


def test_it_waits_at_least_retry_after_seconds_on_429(
    sandbox: SandboxHandle, client: SparkClient
) -> None:
    sandbox.control.add_faults("GET", EVENTS, [{"status": 429, "retryAfter": "1"}])

    started = time.monotonic()
    client.get_json("/events")
    elapsed = time.monotonic() - started

    assert elapsed >= 0.95
    attempts = received(sandbox, "GET", EVENTS)
    assert len(attempts) == 2


def test_it_honours_retry_after_given_as_an_http_date(
    sandbox: SandboxHandle, client: SparkClient
) -> None:
    # HTTP dates have whole seconds: two seconds ahead is at least one second away.
    when = datetime.now(UTC) + timedelta(seconds=2)
    header = format_datetime(when, usegmt=True)
    sandbox.control.add_faults("GET", EVENTS, [{"status": 503, "retryAfter": header}])

    started = time.monotonic()
    client.get_json("/events")

    assert time.monotonic() - started >= 0.95
    assert len(received(sandbox, "GET", EVENTS)) == 2


def test_it_gives_up_at_once_when_retry_after_exceeds_the_backoff_cap(
    sandbox: SandboxHandle, client: SparkClient
) -> None:
    sandbox.control.add_faults("GET", EVENTS, [{"status": 429, "retryAfter": "120"}])

    started = time.monotonic()
    with pytest.raises(SparkHTTPError) as caught:
        client.get_json("/events")

    assert time.monotonic() - started < 1.0
    assert caught.value.status == 429
    assert caught.value.retry_after == 120.0
    assert len(received(sandbox, "GET", EVENTS)) == 1


def test_it_raises_the_last_status_when_retries_run_out(
    sandbox: SandboxHandle, make_client: MakeClient
) -> None:
    client = make_client(max_attempts=3)
    sandbox.control.add_faults(
        "GET", EVENTS, [{"status": 503}, {"status": 500}, {"status": 504, "body": "down"}]
    )

    with pytest.raises(SparkHTTPError) as caught:
        client.get_json("/events")

    assert caught.value.status == 504
    assert caught.value.body == '"down"'
    assert caught.value.retryable
    assert len(received(sandbox, "GET", EVENTS)) == 3


def test_it_does_not_retry_when_retry_is_false(sandbox: SandboxHandle, client: SparkClient) -> None:
    sandbox.control.add_faults("GET", EVENTS, [{"status": 503}, {"status": 503}])

    with pytest.raises(SparkHTTPError) as caught:
        client.request("GET", "/events", retry=False)

    assert caught.value.status == 503
    assert len(received(sandbox, "GET", EVENTS)) == 1


def test_it_raises_unavailable_when_spark_refuses_connections(
    sandbox: SandboxHandle, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    dead_api = f"http://127.0.0.1:{closed_port()}/energy-coordination/v1"
    client = make_client(api_url=dead_api, max_attempts=3)

    with (
        caplog.at_level(logging.WARNING, logger="shared.spark_api"),
        pytest.raises(SparkUnavailable) as caught,
    ):
        client.get_json("/events")

    assert "GET /events" in str(caught.value)
    # Three attempts: a warning before each of the two retries, then the error.
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 2


def test_it_retries_a_read_timeout(sandbox: SandboxHandle, make_client: MakeClient) -> None:
    client = make_client(timeout=(2.0, 0.3))
    sandbox.control.add_faults("GET", EVENTS, [{"delay": 1.0}])

    started = time.monotonic()
    body = client.get_json("/events")

    assert "pagination" in body
    assert time.monotonic() - started < 1.0
    assert len(received(sandbox, "GET", EVENTS)) == 2


def test_it_raises_unavailable_when_every_attempt_times_out(
    sandbox: SandboxHandle, make_client: MakeClient
) -> None:
    client = make_client(timeout=(2.0, 0.2), max_attempts=2)
    sandbox.control.add_faults("GET", EVENTS, [{"delay": 0.6}, {"delay": 0.6}])

    with pytest.raises(SparkUnavailable):
        client.get_json("/events")

    assert len(received(sandbox, "GET", EVENTS)) == 2


# Errors callers tell apart


def test_it_returns_none_for_an_unknown_event(sandbox: SandboxHandle, client: SparkClient) -> None:
    [event_id] = simulate_price_curves(client, 1)

    assert client.get_event("no-such-event") is None
    event = client.get_event(event_id)
    assert event is not None
    assert event["id"] == event_id
    assert_response_matches("GET", f"/events/{event_id}", 200, event)


def test_it_raises_not_found_and_conflict_without_retrying(
    sandbox: SandboxHandle, client: SparkClient
) -> None:
    sandbox.control.add_faults("POST", "/webhooks", [{"status": 409}])

    with pytest.raises(SparkNotFound) as missing:
        client.request("GET", "/webhooks/unknown-webhook")
    with pytest.raises(SparkConflict) as conflict:
        client.register_webhook("http://127.0.0.1:9/hook", "s3cret", ["PriceCurveCreated"])

    assert missing.value.status == 404
    assert conflict.value.status == 409
    assert len(received(sandbox, "POST", "/energy-coordination/v1/webhooks")) == 1


# Operations


def test_it_walks_all_event_pages_newest_first(sandbox: SandboxHandle, client: SparkClient) -> None:
    created = simulate_price_curves(client, 5)

    pages = list(client.iter_event_pages(page_size=2))

    assert [len(page) for page in pages] == [2, 2, 1]
    assert [event["id"] for page in pages for event in page] == list(reversed(created))
    page_queries = [r["query"] for r in received(sandbox, "GET", EVENTS)]
    assert page_queries == [
        {"page": "1", "pageSize": "2"},
        {"page": "2", "pageSize": "2"},
        {"page": "3", "pageSize": "2"},
    ]
    for query in page_queries:
        assert_request_matches("GET", EVENTS, query=query)


def test_it_stops_paging_on_an_empty_first_page(
    sandbox: SandboxHandle, client: SparkClient
) -> None:
    assert list(client.iter_event_pages()) == []
    assert len(received(sandbox, "GET", EVENTS)) == 1


def test_it_registers_a_webhook_as_the_spec_describes(
    sandbox: SandboxHandle, client: SparkClient
) -> None:
    webhook = client.register_webhook(
        "https://partner.example/webhooks/spark",
        "webhook-secret-1",
        ["PriceCurveCreated", "UserEligibilityUpdated"],
        name="partner",
    )

    [sent] = received(sandbox, "POST", "/energy-coordination/v1/webhooks")
    assert sent["json"]["webhookUrl"] == "https://partner.example/webhooks/spark"
    assert sent["json"]["notificationTypes"] == ["PriceCurveCreated", "UserEligibilityUpdated"]
    assert sent["json"]["name"] == "partner"
    assert sent["contentType"] == "application/json"
    assert_request_matches("POST", sent["path"], sent["json"])
    assert_response_matches("POST", "/webhooks", 201, webhook)

    listed = client.list_webhooks()
    assert [w["webhookId"] for w in listed] == [webhook["webhookId"]]
    assert listed[0]["notificationTypes"] == ["PriceCurveCreated", "UserEligibilityUpdated"]


def test_it_builds_a_working_client_from_settings(
    sandbox: SandboxHandle, database_url: str
) -> None:
    settings = load_settings(
        {
            "DATABASE_URL": database_url,
            "SPARK_API_URL": sandbox.base_url + "/",
            "SPARK_TOKEN_URL": sandbox.token_url,
            "SPARK_CLIENT_ID": sandbox.client_id,
            "SPARK_CLIENT_SECRET": sandbox.client_secret,
        }
    )

    with SparkClient.from_settings(settings) as client:
        assert client.list_webhooks() == []
        # Paced by the shared schedule of SPARK_RATE_LIMIT (10 a second by default).
        assert isinstance(client.rate_limit, SparkRateLimit)
        assert client.rate_limit.interval == timedelta(seconds=0.1)

    with pytest.raises(ConfigError, match="SPARK_CLIENT_SECRET"):
        SparkClient.from_settings(load_settings({"SPARK_API_URL": sandbox.base_url}))


def test_it_keeps_secrets_out_of_reprs_errors_and_logs(
    sandbox: SandboxHandle, client: SparkClient, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.control.add_faults("GET", EVENTS, [{"status": 503}])

    tokens = []
    with caplog.at_level(logging.DEBUG):
        client.get_json("/events")
        # The client's own bearer tokens, read from its session only to search the logs.
        tokens.append(client._session.token["access_token"])
        sandbox.control.expire_tokens()
        client.register_webhook("https://partner.example/hook", "hook-secret", [])
        tokens.append(client._session.token["access_token"])

    logged = caplog.text
    assert "retrying" in logged
    assert tokens[0] != tokens[1]
    for secret in (sandbox.client_secret, "hook-secret", *tokens):
        assert secret not in logged
        assert secret not in repr(client)


def test_it_parses_retry_after_forms() -> None:
    now = datetime(2026, 3, 3, 12, 0, 0, tzinfo=UTC)

    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("Tue, 03 Mar 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Tue, 03 Mar 2026 11:59:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


# The shared rate limit


class CountingRateLimit:
    """The real schedule in PostgreSQL, counting the slots this client took."""

    def __init__(self, limit: SparkRateLimit) -> None:
        self.limit = limit
        self.taken = 0

    def take(self) -> None:
        self.limit.take()
        self.taken += 1


def next_slot(database_url: str) -> datetime | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT next_slot FROM spark_rate_limit WHERE name = 'spark'").fetchone()
    return row[0] if row else None


def test_it_takes_a_rate_slot_for_every_request_retries_and_resends_included(
    sandbox: SandboxHandle, make_client: MakeClient, database_url: str
) -> None:
    counting = CountingRateLimit(SparkRateLimit(database_url, rate=1000))
    client = make_client(rate_limit=counting)
    client.get_json("/events")
    sandbox.control.add_faults("GET", EVENTS, [{"status": 503}, {"status": 429}])
    sandbox.control.expire_tokens()

    client.get_json("/events")

    # First call; then a 503 and a 429 retried, the 401 of the expired token and its resend.
    requests_made = received(sandbox, "GET", EVENTS)
    assert len(requests_made) == 5
    assert counting.taken == len(requests_made)
    assert next_slot(database_url) is not None


def test_it_refuses_a_rate_slot_further_ahead_than_its_cap_instead_of_sleeping(
    sandbox: SandboxHandle, make_client: MakeClient, database_url: str
) -> None:
    # One call per 100 s: the first goes at once, a retry's slot would be 100 s ahead.
    client = make_client(rate_limit=SparkRateLimit(database_url, rate=0.01, max_wait=30))
    sandbox.control.add_faults("GET", EVENTS, [{"status": 503}])

    began = time.monotonic()
    with pytest.raises(SparkRateLimited) as refused:
        client.get_json("/events")
    waited = time.monotonic() - began

    assert waited < 5
    # Nothing was sent for the refused slot, and the slot stays free for a later call.
    assert len(received(sandbox, "GET", EVENTS)) == 1
    assert 60 < refused.value.retry_after <= 100
    before = next_slot(database_url)
    with pytest.raises(SparkRateLimited):
        client.get_json("/events")
    assert next_slot(database_url) == before
    # A retryable failure to every caller: "no usable connection, try again later".
    assert isinstance(refused.value, SparkUnavailable)
