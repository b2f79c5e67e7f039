"""Time: stored and exchanged in UTC; days and months are computed in the configured zone."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_spark_datetime(value: str) -> datetime:
    """Spark writes `2024-09-12T13:48:47.1936858+00:00` (.NET, 7 fraction digits); others `Z`.

    A value without an offset is refused rather than guessed, and so is one that the offset
    moves out of Python's years 1 to 9999 (`0001-01-01T00:00:00+01:00`): an OverflowError
    there failed the ingest task of a signed webhook instead of making it a dead letter.
    """
    parsed = datetime.fromisoformat(value.strip())
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"timestamp without a UTC offset: {value!r}")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"timestamp out of range: {value!r}") from None


def format_spark_datetime(value: datetime) -> str:
    """Spark's own shape: UTC, `+00:00`, seven fraction digits."""
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}0+00:00"


def isoformat_utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()
