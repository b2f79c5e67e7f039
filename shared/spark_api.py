"""Client for Spark's Energy Coordination API: OAuth2 client credentials, timeouts, retries.

Every request to the API first takes a slot in the shared schedule of Spark calls
(`SparkRateLimit`, SPARK_RATE_LIMIT per second across every process), retries and the resend
after a fresh token included; a slot further ahead than `max_wait` is refused with
`SparkRateLimited` rather than slept for. Every call has a connect and a read timeout.
Connection problems, timeouts, 429 and 5xx are retried with full-jitter exponential backoff,
waiting at least as long as `Retry-After` asks. A 401 fetches a fresh token once and resends.
What still fails becomes a typed exception, so callers decide between "try again later"
(`SparkUnavailable`, a retryable `SparkHTTPError`) and "this will never work" (any other
`SparkHTTPError`).

One client holds one `requests` session and one cached token: give each thread or worker
process its own client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import quote

import requests
from authlib.integrations.requests_client import OAuth2Session
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from shared.config import ConfigError, Settings
from shared.db import connection, fetch_one

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 1000

# Failures where the request may not have reached Spark, or Spark may answer differently soon.
_TRANSIENT_EXCEPTIONS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class SparkError(Exception):
    """Base class for every failure talking to Spark."""


class SparkHTTPError(SparkError):
    """Spark (or its token endpoint) answered with a non-2xx status, after any retries."""

    def __init__(
        self,
        status: int,
        body: str,
        retry_after: float | None = None,
        *,
        method: str = "",
        path: str = "",
    ) -> None:
        self.status = status
        self.body = body
        # Seconds Spark asked us to wait before trying again, when it said so.
        self.retry_after = retry_after
        self.method = method
        self.path = path
        super().__init__(status, body, retry_after)

    @property
    def retryable(self) -> bool:
        return is_retryable_status(self.status)

    def __str__(self) -> str:
        where = f" to {self.method} {self.path}" if self.method else ""
        return f"Spark answered {self.status}{where}: {self.body[:300]}"


class SparkNotFound(SparkHTTPError):
    """404."""


class SparkConflict(SparkHTTPError):
    """409."""


class SparkAuthError(SparkHTTPError):
    """The token endpoint refused to issue a token or answered something unusable."""


class SparkUnavailable(SparkError):
    """No usable connection to Spark (refused, reset, timed out), after any retries."""


class SparkRateLimited(SparkUnavailable):
    """The next free slot of the shared Spark schedule is further ahead than we block for.
    Nothing was sent; `retry_after` is how far ahead that slot was, in seconds."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(
            f"Spark rate limit: the next free slot is {retry_after:.1f}s ahead; nothing sent"
        )


class RateLimit(Protocol):
    """What the client takes before every request: returns once the request may go, or raises
    `SparkRateLimited`."""

    def take(self) -> None: ...


# The longest a request waits for its slot. Well below the reports' 3-minute sending lease,
# which must also cover a token fetch and the connect and read timeouts (twice, after a 401).
MAX_RATE_WAIT_SECONDS = 30.0


class SparkRateLimit:
    """Spark calls at most `rate` per second across every process: each call takes the next
    slot of a schedule kept in PostgreSQL (table spark_rate_limit) and sleeps until it. A slot
    more than `max_wait` seconds ahead is not taken (so it stays free for a later call) and
    the call raises `SparkRateLimited`."""

    def __init__(
        self, database_url: str, rate: float, max_wait: float = MAX_RATE_WAIT_SECONDS
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.database_url = database_url
        self.interval = timedelta(seconds=1 / rate)
        self.max_wait = timedelta(seconds=max_wait)

    def take(self) -> None:
        params = {"interval": self.interval, "max_wait": self.max_wait}
        with connection(self.database_url) as conn, conn.transaction():
            row = fetch_one(conn, "take_spark_slot", params)
            if row is None:
                ahead = fetch_one(conn, "next_spark_slot")
        if row is None:
            wait = ahead["ahead"] if ahead else self.max_wait
            raise SparkRateLimited(wait.total_seconds())
        delay: float = (row["slot"] - row["now"]).total_seconds()
        if delay > 0:
            time.sleep(delay)


def is_retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delay-seconds or an HTTP-date (RFC 9110)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are GMT; a zone-less parse result means the same.
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def _http_error(response: requests.Response, method: str, path: str) -> SparkHTTPError:
    error_class: type[SparkHTTPError] = SparkHTTPError
    if response.status_code == 404:
        error_class = SparkNotFound
    elif response.status_code == 409:
        error_class = SparkConflict
    return error_class(
        response.status_code,
        response.text,
        parse_retry_after(response.headers.get("Retry-After")),
        method=method,
        path=path,
    )


def _retry_after_of(state: RetryCallState) -> float | None:
    """The `Retry-After` of the attempt that just failed, if it carried one."""
    outcome = state.outcome
    if outcome is None:
        return None
    if outcome.failed:
        error = outcome.exception()
        return error.retry_after if isinstance(error, SparkHTTPError) else None
    response: requests.Response = outcome.result()
    return parse_retry_after(response.headers.get("Retry-After"))


def _is_transient_error(error: BaseException) -> bool:
    if isinstance(error, _TRANSIENT_EXCEPTIONS):
        return True
    return isinstance(error, SparkHTTPError) and error.retryable


def _is_retryable_response(response: requests.Response) -> bool:
    return is_retryable_status(response.status_code)


class _WaitAtLeastRetryAfter(wait_base):
    """Full-jitter backoff, stretched to whatever `Retry-After` asked for."""

    def __init__(self, backoff: wait_base) -> None:
        self._backoff = backoff

    def __call__(self, retry_state: RetryCallState) -> float:
        delay: float = self._backoff(retry_state)
        retry_after = _retry_after_of(retry_state)
        return delay if retry_after is None else max(delay, retry_after)


class _StopWhenRetryAfterExceeds(stop_base):
    """Give up at once when Spark asks for a longer pause than we are willing to block.

    Retrying earlier than asked would only earn another 429; the caller gets the error with
    `retry_after` set and can schedule the next try itself (the reports outbox does).
    """

    def __init__(self, limit: float) -> None:
        self._limit = limit

    def __call__(self, retry_state: RetryCallState) -> bool:
        retry_after = _retry_after_of(retry_state)
        return retry_after is not None and retry_after > self._limit


class SparkClient:
    def __init__(
        self,
        api_url: str,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        timeout: tuple[float, float] = (5.0, 30.0),
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 60.0,
        token_leeway: int = 60,
        rate_limit: RateLimit | None = None,
    ) -> None:
        """`timeout` is (connect, read) seconds for every request, token requests included.

        `max_attempts` bounds the tries of one call. Backoff before try n is uniformly random
        in [0, min(backoff_max, backoff_base * 2**(n-1))]; a `Retry-After` longer than
        `backoff_max` ends the retries instead. The token is renewed `token_leeway` seconds
        before its `expires_in` runs out. `rate_limit`, when given, is taken before every
        request to the API (`from_settings` gives the shared SPARK_RATE_LIMIT schedule).
        """
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.api_url = api_url.rstrip("/")
        self.token_url = token_url
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.rate_limit = rate_limit
        self.backoff_max = backoff_max
        self._backoff = wait_random_exponential(multiplier=backoff_base, max=backoff_max)
        self._session = OAuth2Session(
            client_id=client_id,
            client_secret=client_secret,
            # Spark's token endpoint takes the credentials as form fields, not Basic auth.
            token_endpoint_auth_method="client_secret_post",  # noqa: S106 (a method name)
            token_endpoint=token_url,
            grant_type="client_credentials",
            leeway=token_leeway,
            default_timeout=timeout,
        )
        self._session.register_compliance_hook("access_token_response", self._check_token_response)

    @classmethod
    def from_settings(cls, settings: Settings) -> SparkClient:
        settings.require_spark()
        api_url = settings.spark_api_url
        token_url = settings.spark_token_url
        client_id = settings.spark_client_id
        client_secret = settings.spark_client_secret
        # require_spark() has checked these; the test tells mypy so without asserts.
        if not (api_url and token_url and client_id and client_secret):
            raise ConfigError("Spark API settings are incomplete")
        return cls(
            api_url,
            token_url,
            client_id,
            client_secret,
            rate_limit=SparkRateLimit(settings.database_url, settings.spark_rate_limit),
        )

    def __repr__(self) -> str:
        return f"SparkClient(api_url={self.api_url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    # -- generic requests -------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        retry: bool = True,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send one API call; return the 2xx response or raise a `SparkError`.

        `path` is relative to the API URL ("/events"). `retry=False` makes exactly one try
        (plus the resend after a token refresh), for callers that keep their own schedule.
        A refused rate slot raises `SparkRateLimited` at once: it is not retried here.
        """
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/': {path!r}")
        method = method.upper()
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts if retry else 1)
            | _StopWhenRetryAfterExceeds(self.backoff_max),
            wait=_WaitAtLeastRetryAfter(self._backoff),
            retry=retry_if_exception(_is_transient_error) | retry_if_result(_is_retryable_response),
            before_sleep=self._log_retry,
            # Out of attempts: hand back the last response, or raise the last exception.
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        try:
            response: requests.Response = retrying(self._send, method, path, params, json, headers)
        except _TRANSIENT_EXCEPTIONS as exc:
            raise SparkUnavailable(
                f"Spark unreachable for {method} {path}: {type(exc).__name__}: {exc}"
            ) from exc
        if not 200 <= response.status_code < 300:
            raise _http_error(response, method, path)
        return response

    def get_json(
        self, path: str, params: dict[str, Any] | None = None, *, retry: bool = True
    ) -> Any:
        """The decoded JSON body of a GET (None for an empty body)."""
        return _json_of(self.request("GET", path, params=params, retry=retry))

    def post_json(self, path: str, body: Any, *, retry: bool = True) -> Any:
        """The decoded JSON body of a POST of `body` (None for an empty body)."""
        return _json_of(self.request("POST", path, json=body, retry=retry))

    # -- Spark operations -------------------------------------------------------------------

    def iter_event_pages(self, page_size: int = MAX_PAGE_SIZE) -> Iterator[list[dict[str, Any]]]:
        """Pages of `GET /events`, newest events first, until the last page."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        page = 1
        while True:
            data = self.get_json("/events", params={"page": page, "pageSize": page_size})
            events: list[dict[str, Any]] = data.get("events") or []
            if not events:
                return
            yield events
            pagination = data.get("pagination") or {}
            next_page = pagination.get("nextPage")
            total_pages = pagination.get("totalPages")
            # A next page that does not move forward would loop for ever.
            if next_page is None or next_page <= page:
                return
            if total_pages is not None and next_page > total_pages:
                return
            page = next_page

    def get_event(self, event_id: str) -> dict[str, Any] | None:
        try:
            event: dict[str, Any] = self.get_json(f"/events/{quote(event_id, safe='')}")
        except SparkNotFound:
            return None
        return event

    def register_webhook(
        self,
        url: str,
        secret: str,
        notification_types: Sequence[str],
        name: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "webhookUrl": url,
            "webhookSecret": secret,
            "notificationTypes": list(notification_types),
        }
        if name is not None:
            body["name"] = name
        webhook: dict[str, Any] = self.post_json("/webhooks", body)
        return webhook

    def list_webhooks(self) -> list[dict[str, Any]]:
        webhooks: list[dict[str, Any]] = self.get_json("/webhooks").get("webhooks") or []
        return webhooks

    def get_webhook(self, webhook_id: str) -> dict[str, Any]:
        webhook: dict[str, Any] = self.get_json(f"/webhooks/{quote(webhook_id, safe='')}")
        return webhook

    def patch_webhook(self, webhook_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """`PATCH /webhooks/{id}` with the given camelCase fields (webhookUrl, webhookSecret,
        notificationTypes, name, enabled); the others stay as they are."""
        response = self.request("PATCH", f"/webhooks/{quote(webhook_id, safe='')}", json=changes)
        webhook: dict[str, Any] = _json_of(response)
        return webhook

    def set_webhook_enabled(self, webhook_id: str, enabled: bool) -> None:
        self.request(
            "PUT",
            f"/webhooks/{quote(webhook_id, safe='')}/enabled",
            params={"enabled": "true" if enabled else "false"},
        )

    def delete_webhook(self, webhook_id: str) -> None:
        self.request("DELETE", f"/webhooks/{quote(webhook_id, safe='')}")

    def iter_webhook_log_pages(
        self, webhook_id: str | None = None, page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of `GET /webhooks/logs` (WebhookNotificationLog), as Spark orders them
        (newest first in the sandbox), until the last page."""
        page = 1
        while True:
            params: dict[str, Any] = {"page": page, "pageSize": page_size}
            if webhook_id is not None:
                params["webhookId"] = webhook_id
            data = self.get_json("/webhooks/logs", params=params) or {}
            logs: list[dict[str, Any]] = data.get("webhookNotificationLogs") or []
            if not logs:
                return
            yield logs
            next_page = (data.get("pagination") or {}).get("nextPage")
            if next_page is None or next_page <= page:
                return
            page = next_page

    # -- internals --------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        json: Any,
        headers: dict[str, str] | None,
    ) -> requests.Response:
        """One attempt. A 401 gets one fresh token and one resend; a second 401 is final
        (401 is not a retryable status, so no later attempt follows it)."""
        # authlib renews a token `leeway` seconds before it expires, but fetches no first one.
        if not self._session.token:
            self._fetch_token()
        response = self._call(method, path, params, json, headers)
        if response.status_code == 401:
            # Spark may revoke a token before its expiry; one fresh token settles which.
            response.close()
            self._fetch_token()
            response = self._call(method, path, params, json, headers)
        return response

    def _call(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        json: Any,
        headers: dict[str, str] | None,
    ) -> requests.Response:
        if self.rate_limit is not None:
            self.rate_limit.take()
        response: requests.Response = self._session.request(
            method,
            self.api_url + path,
            params=params,
            json=json,
            headers=headers,
            timeout=self.timeout,
            allow_redirects=False,
        )
        return response

    def _fetch_token(self) -> None:
        log.debug("fetching a Spark access token from %s", self.token_url)
        self._session.fetch_token(self.token_url, grant_type="client_credentials")

    def _check_token_response(self, response: requests.Response) -> requests.Response:
        """Turn a failed token request into a SparkAuthError before authlib parses it."""
        usable = 200 <= response.status_code < 300
        if usable:
            try:
                payload = response.json()
            except ValueError:
                payload = None
            usable = isinstance(payload, dict) and bool(payload.get("access_token"))
        if usable:
            return response
        # Error bodies carry an error code and description, never the credentials.
        raise SparkAuthError(
            response.status_code,
            response.text if response.status_code >= 300 else "token response without a token",
            parse_retry_after(response.headers.get("Retry-After")),
            method="POST",
            path=self.token_url,
        )

    def _log_retry(self, state: RetryCallState) -> None:
        outcome = state.outcome
        if outcome is None:
            return
        if outcome.failed:
            error = outcome.exception()
            reason = (
                f"status {error.status}"
                if isinstance(error, SparkHTTPError)
                else type(error).__name__
            )
        else:
            response: requests.Response = outcome.result()
            reason = f"status {response.status_code}"
        method, path = state.args[0], state.args[1]
        log.warning(
            "Spark %s %s failed (%s), attempt %d of %d; retrying in %.2fs",
            method,
            path,
            reason,
            state.attempt_number,
            self.max_attempts,
            state.upcoming_sleep,
        )


def _json_of(response: requests.Response) -> Any:
    if not response.content:
        return None
    return response.json()
