"""The sandbox's notion of "now", and Spark's timestamp format.

Event times and simulation defaults (the "next local day" of a price curve) come from this
clock, so tests can pin a DST day or jump ahead without waiting. It runs on real UTC time until
someone sets it.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class Clock:
    """Real UTC time, optionally shifted by an offset or frozen at one instant."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        self._frozen_at: datetime | None = None

    def now(self) -> datetime:
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return datetime.now(UTC) + self._offset

    def set(self, when: datetime, *, frozen: bool = False) -> None:
        """Make `when` the current time; it keeps ticking from there unless `frozen`."""
        when = as_utc(when)
        with self._lock:
            if frozen:
                self._frozen_at = when
                self._offset = timedelta(0)
            else:
                self._frozen_at = None
                self._offset = when - datetime.now(UTC)

    def advance(self, seconds: float) -> None:
        step = timedelta(seconds=seconds)
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += step
            else:
                self._offset += step

    def reset(self) -> None:
        with self._lock:
            self._offset = timedelta(0)
            self._frozen_at = None

    @property
    def is_real(self) -> bool:
        with self._lock:
            return self._frozen_at is None and self._offset == timedelta(0)

    @property
    def is_frozen(self) -> bool:
        with self._lock:
            return self._frozen_at is not None


def as_utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("a timestamp needs an explicit offset")
    return when.astimezone(UTC)


def spark_timestamp(when: datetime) -> str:
    """Format like Spark (.NET DateTimeOffset): `2024-09-12T13:48:47.1936858+00:00`.

    Seven fractional digits when there is a fraction (Python has six, the seventh is 0), none
    when the time is a whole second, as .NET writes `2026-03-04T00:00:00+00:00`.
    """
    utc = as_utc(when)
    whole = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond == 0:
        return f"{whole}+00:00"
    return f"{whole}.{utc.microsecond:06d}0+00:00"


def parse_timestamp(text: str) -> datetime:
    """Parse ISO-8601 with an explicit offset (`Z` or `+hh:mm`, any number of fraction digits)
    into an aware UTC datetime; a timestamp without an offset is ambiguous and rejected."""
    return as_utc(datetime.fromisoformat(text.strip()))
