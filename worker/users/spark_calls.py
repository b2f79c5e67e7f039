"""What the registry's Spark calls share: ids in paths, and telling Spark's failures apart."""

from __future__ import annotations

from urllib.parse import quote

from shared.spark_api import SparkAuthError, SparkHTTPError


def path_id(value: str) -> str:
    """An id as one URL path segment (ids are the partner's strings: anything may be in them)."""
    return quote(value, safe="")


def is_fatal(exc: SparkHTTPError) -> bool:
    """A failure that says nothing about the row at hand: Spark is failing (5xx/429 after the
    client's retries) or refuses our credentials. Stop and try later rather than blame the row."""
    if exc.retryable or isinstance(exc, SparkAuthError):
        return True
    return exc.status in (401, 403)


def describe(exc: SparkHTTPError) -> str:
    """A refusal as stored in an error column: status and the start of Spark's body."""
    body = exc.body.strip()
    return f"Spark answered {exc.status}" + (f": {body[:300]}" if body else "")
