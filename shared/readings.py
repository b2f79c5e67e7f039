"""One reading, and checking readings as they come in (JSON from the API or a task, rows of a
CSV file), with an error per field.

A reading is `{resourceId, locationId?, start, end, kWh, readingId?}`: the energy in kWh a
resource used in [start, end). Times are ISO 8601 with `Z` or a `±hh:mm` offset, never
without one.

This module is the definition of a valid reading, and the ingress imports it (standard
library only). Two places stand in for it where checking each row here would be slow, and
`tests/consumption/test_one_rule_set.py` feeds generated rows to every way in to hold them
to it: the checked way of a file, set-wise in SQL (`check_staged_readings`, given
TIME_SPELLING; a row only this module can judge sends its chunk here), and the fast way,
whose plain records are spelled as PLAIN_TIME and PLAIN_KWH and whose other rules are the
constraints of `readings` (migration 0011).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# The task that stores readings: the ingress enqueues it, partner code may too.
INGEST_READINGS_TASK = "consumption.ingest_readings"

FIELDS = ("resourceId", "locationId", "start", "end", "kWh", "readingId")
REQUIRED = ("resourceId", "start", "end", "kWh")
# UTF-8 bytes, as PostgreSQL counts them cheaply (octet_length).
MAX_ID_BYTES = 200
# Long enough for any meter interval or charging session; bounded so that the readings that
# may overlap a period are found by an index range (see consumption_bounds).
MAX_SPAN = timedelta(days=31)

FieldErrors = dict[str, list[str]]

# How a time is written: ISO 8601 date and time, with `Z` or a `±hh:mm` offset, in the range
# of values that Python and PostgreSQL both read the same way (PostgreSQL would take 24:00,
# a 60th second and offsets from 16 hours). The one definition: `parse_time` matches it, the
# checked way of a file (check_staged_readings) is given it, and the fast way's plain records
# are made of it. Whether the date exists is left to the parsers (both refuse February 30th).
# Years 1000 to 8999: at the ends of Python's range (years 1 and 9999) an offset moves the
# time out of it, which fuzzing POST /consumption found as a 500.
TIME_SPELLING = (
    r"[1-8][0-9]{3}-[0-9]{2}-[0-9]{2}[T ](?:[01][0-9]|2[0-3]):[0-5][0-9]"
    r"(?::[0-5][0-9](?:\.[0-9]{1,6})?)?(?:Z|[+-](?:0[0-9]|1[0-5]):[0-5][0-9])"
)
_TIME = re.compile(TIME_SPELLING)
# A file's values in the spellings that PostgreSQL reads as these rules do (`parse_time`,
# `parse_kwh`): a chunk whose rows all use them goes to PostgreSQL typed, unchecked here
# (csv_import.plain_record). Other spellings are checked the long way, not refused.
PLAIN_TIME = TIME_SPELLING.encode()
PLAIN_KWH = rb"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
# How kWh is written as text, the same way for `parse_kwh` and the checked way of a file
# (check_staged_readings): a decimal number, spaces around it allowed. Python's float() and
# PostgreSQL's would each take more, and not the same (`1_000`, `0x10`, other scripts' digits).
KWH_SPELLING = r"[ \t]*" + PLAIN_KWH.decode() + r"[ \t]*"
_KWH = re.compile(KWH_SPELLING)


@dataclass(frozen=True)
class Reading:
    resource_id: str
    location_id: str | None
    start: datetime
    end: datetime
    kwh: float
    reading_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "resourceId": self.resource_id,
            "locationId": self.location_id,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "kWh": self.kwh,
            "readingId": self.reading_id,
        }

    def copy_row(self) -> tuple[str, str | None, str, str, str, str | None]:
        """The reading as text for `staged_readings`: resource, location, start, end, kWh, id."""
        return (
            self.resource_id,
            self.location_id,
            self.start.isoformat(),
            self.end.isoformat(),
            repr(self.kwh),
            self.reading_id,
        )


def parse_time(value: str) -> datetime:
    """A time spelled as TIME_SPELLING says; ValueError otherwise."""
    if not _TIME.fullmatch(value):
        raise ValueError("must be an ISO 8601 date and time with Z or a ±hh:mm offset")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("is not a valid date and time") from None
    return parsed.astimezone(UTC)


def parse_kwh(value: Any) -> float:
    """A number from JSON, or the text of one from a file; finite and 0 or more."""
    if isinstance(value, str):
        if not _KWH.fullmatch(value):
            raise ValueError("must be a number")
        number = float(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        raise ValueError("must be a number")
    if not math.isfinite(number) or number < 0:
        raise ValueError("must be a finite number, 0 or more")
    return number


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _identifier(item: Mapping[str, Any], name: str, errors: FieldErrors) -> str | None:
    value = item.get(name)
    if value is None or value == "":
        if name in REQUIRED:
            errors[name] = ["is required"]
        return None
    if not isinstance(value, str):
        errors[name] = ["must be a string"]
        return None
    # Valid JSON (`\u0000`, a lone `\ud800`) that PostgreSQL's text cannot hold: taken, it
    # failed the worker's task and the batch was lost (found by fuzzing POST /consumption).
    if "\x00" in value or not _encodable(value):
        errors[name] = ["must not contain NUL or a lone surrogate"]
        return None
    if len(value.encode("utf-8")) > MAX_ID_BYTES:
        errors[name] = [f"is longer than {MAX_ID_BYTES} bytes"]
        return None
    return value


def _time(item: Mapping[str, Any], name: str, errors: FieldErrors) -> datetime | None:
    value = item.get(name)
    if value is None or value == "":
        errors[name] = ["is required"]
        return None
    if not isinstance(value, str):
        errors[name] = ["must be a string"]
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        errors[name] = [str(exc)]
        return None


def check_reading(item: Any) -> tuple[Reading | None, FieldErrors]:
    """The reading, or the errors per field (camelCase names) that keep it from being one."""
    if not isinstance(item, Mapping):
        return None, {"_schema": ["a reading must be an object"]}
    errors: FieldErrors = {}
    unknown = sorted(str(key) for key in item if key not in FIELDS)
    for key in unknown:
        errors[key] = ["is not a field of a reading"]
    resource_id = _identifier(item, "resourceId", errors)
    location_id = _identifier(item, "locationId", errors)
    reading_id = _identifier(item, "readingId", errors)
    start = _time(item, "start", errors)
    end = _time(item, "end", errors)
    kwh: float | None = None
    if item.get("kWh") is None or item.get("kWh") == "":
        errors["kWh"] = ["is required"]
    else:
        try:
            kwh = parse_kwh(item["kWh"])
        except ValueError as exc:
            errors["kWh"] = [str(exc)]
    if start is not None and end is not None:
        if end <= start:
            errors.setdefault("end", []).append("must be after start")
        elif end - start > MAX_SPAN:
            errors.setdefault("end", []).append("a reading may span at most 31 days")
    if errors or resource_id is None or start is None or end is None or kwh is None:
        return None, errors
    return Reading(resource_id, location_id, start, end, kwh, reading_id), {}


def check_readings(items: Iterable[Any]) -> tuple[list[Reading], dict[str, FieldErrors]]:
    """The readings, and the errors of those that are not, keyed by their index as text."""
    readings: list[Reading] = []
    errors: dict[str, FieldErrors] = {}
    for index, item in enumerate(items):
        reading, problems = check_reading(item)
        if reading is None:
            errors[str(index)] = problems
        else:
            readings.append(reading)
    return readings, errors


def describe(errors: FieldErrors) -> str:
    """Field errors as one line, for a row of a file."""
    return "; ".join(
        f"{name} {message}" for name, messages in errors.items() for message in messages
    )
