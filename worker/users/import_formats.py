"""The files `spark-partner users import FILE` reads, one row at a time, validated.

Both formats describe the same things: users, their locations and the resources at those
locations, and vehicles (which Spark registers on the user, not on a location). A file adds
and updates; it never removes what it does not mention.

JSON (`.json`): one array of users, read element by element (the file is never loaded whole)::

    [
      {
        "userId": "u-1",
        "consented": true,
        "locations": [
          {
            "locationId": "loc-1",
            "locationType": "Residential",
            "meterPointIds": ["707057500012345678"],
            "coordinates": {"latitude": 78.22, "longitude": 15.62},
            "resources": [
              {"resourceId": "res-1", "resourceType": "HotWaterTank",
               "meterPointId": "707057500012345678"}
            ]
          }
        ],
        "vehicles": [{"resourceId": "car-1"}]
      }
    ]

Only `userId` is required. `consented` left out keeps what the registry has (false for a new
user). `locationType` is one of Unknown (default), Residential, Commercial, Other;
`resourceType` one of Generic, Vehicle, Charger, HotWaterTank, HVAC, SolarInverter. Unknown
fields are errors. The "row" of an error is the user's 1-based position in the array.

CSV (`.csv`, UTF-8, header row required; a byte-order mark is fine)::

    user_id,consented,location_id,location_type,meter_point_ids,latitude,longitude,resource_id,resource_type,meter_point_id
    u-1,yes,loc-1,Residential,707057500012345678,78.22,15.62,res-1,HotWaterTank,707057500012345678
    u-1,,loc-1,,,,,res-2,Charger,
    u-1,,,,,,,car-1,Vehicle,
    u-2,no,,,,,,,,

One row per user, location or resource; a user's rows need not be adjacent. Only `user_id` is
required, and columns may be left out of the header. Blank cells mean "not stated":

- `consented` (true/false, yes/no, 1/0): a user's rows must not contradict each other; if no
  row states it, the registry keeps its value (false for a new user).
- `location_id` with any of `location_type`, `meter_point_ids` (separated by spaces,
  semicolons or commas), `latitude`+`longitude` describes the location; every row that
  describes a location must describe it the same way. Rows that only name the location
  (to attach a resource) leave an existing location as it is.
- `resource_id` with `location_id` is a resource at that location (`resource_type` required,
  `meter_point_id` optional); without `location_id` it is a vehicle (`resource_type` Vehicle
  or blank).

The "row" of an error is the line number in the file (the header is line 1).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from marshmallow import Schema, ValidationError, fields, pre_load, validates_schema
from marshmallow.validate import Length, OneOf, Range, Regexp

LOCATION_TYPES = ("Unknown", "Residential", "Commercial", "Other")
RESOURCE_TYPES = ("Generic", "Vehicle", "Charger", "HotWaterTank", "HVAC", "SolarInverter")
VEHICLE = "Vehicle"
CSV_COLUMNS = (
    "user_id",
    "consented",
    "location_id",
    "location_type",
    "meter_point_ids",
    "latitude",
    "longitude",
    "resource_id",
    "resource_type",
    "meter_point_id",
)
FORMATS = {".csv": "csv", ".json": "json"}

# Ids travel in URL paths at Spark; the bound keeps a pasted blob from becoming one.
_ID = Length(min=1, max=256)
_MPID = Regexp(r"^\S{1,64}$", error="must be 1 to 64 characters without spaces")
_MPID_SEPARATORS = re.compile(r"[\s;,]+")
_LATITUDE = Range(-90, 90)
_LONGITUDE = Range(-180, 180)

# One JSON element may be large (a business with thousands of locations) but not unbounded.
MAX_JSON_ITEM_CHARS = 16 * 1024 * 1024
_READ_CHARS = 64 * 1024


class ImportFormatError(Exception):
    """The file as a whole cannot be read: unknown extension, CSV header, broken JSON."""


@dataclass(frozen=True)
class UserRecord:
    row: int
    user_id: str
    consented: bool | None


@dataclass(frozen=True)
class LocationRecord:
    row: int
    user_id: str
    location_id: str
    # False when the row only names the location (a CSV resource row with blank location cells).
    describes: bool
    location_type: str
    meter_point_ids: tuple[str, ...]
    latitude: float | None
    longitude: float | None


@dataclass(frozen=True)
class ResourceRecord:
    row: int
    user_id: str
    # None for a vehicle.
    location_id: str | None
    resource_id: str
    resource_type: str
    meter_point_id: str | None


@dataclass
class ParsedRow:
    """What one CSV line or one JSON element said, or why it was refused."""

    row: int
    users: list[UserRecord] = field(default_factory=list)
    locations: list[LocationRecord] = field(default_factory=list)
    resources: list[ResourceRecord] = field(default_factory=list)
    error: str | None = None


def file_format(path: Path) -> str:
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ImportFormatError(f"{path.name}: expected a .csv or .json file")
    return kind


def read_rows(binary: BinaryIO, kind: str) -> Iterator[ParsedRow]:
    """Parse and validate `binary` (opened in binary mode) row by row.

    A bad row comes back with `error` set and no records; the caller decides what to do.
    """
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
    try:
        if kind == "csv":
            yield from _csv_rows(text)
        elif kind == "json":
            yield from _json_rows(text)
        else:
            raise ImportFormatError(f"unknown format {kind!r}")
    except UnicodeDecodeError as exc:
        raise ImportFormatError(f"the file is not UTF-8: {exc.reason}") from None
    finally:
        # The caller owns `binary`: leave it open.
        text.detach()


def flatten_messages(messages: Any, prefix: str = "") -> list[str]:
    """marshmallow's nested error dict as `path: message` lines."""
    if isinstance(messages, Mapping):
        lines: list[str] = []
        for key, value in messages.items():
            name = "" if key == "_schema" else str(key)
            path = ".".join(part for part in (prefix, name) if part)
            lines.extend(flatten_messages(value, path))
        return lines
    if isinstance(messages, list) and all(isinstance(item, str) for item in messages):
        return [f"{prefix}: {item}" if prefix else item for item in messages]
    if isinstance(messages, list):
        return [line for item in messages for line in flatten_messages(item, prefix)]
    return [f"{prefix}: {messages}" if prefix else str(messages)]


# CSV


class CsvRowSchema(Schema):
    user_id = fields.String(required=True, validate=_ID)
    consented = fields.Boolean(load_default=None)
    location_id = fields.String(load_default=None, validate=_ID)
    location_type = fields.String(load_default=None, validate=OneOf(LOCATION_TYPES))
    meter_point_ids = fields.List(fields.String(validate=_MPID), load_default=None)
    latitude = fields.Float(load_default=None, validate=_LATITUDE)
    longitude = fields.Float(load_default=None, validate=_LONGITUDE)
    resource_id = fields.String(load_default=None, validate=_ID)
    resource_type = fields.String(load_default=None, validate=OneOf(RESOURCE_TYPES))
    meter_point_id = fields.String(load_default=None, validate=_MPID)

    @pre_load
    def _split_meter_point_ids(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        value = data.get("meter_point_ids")
        if isinstance(value, str):
            data = {**data, "meter_point_ids": [p for p in _MPID_SEPARATORS.split(value) if p]}
        return data

    @validates_schema
    def _check_combinations(self, data: dict[str, Any], **_: Any) -> None:
        errors: dict[str, list[str]] = {}
        if (data["latitude"] is None) != (data["longitude"] is None):
            errors["latitude"] = ["latitude and longitude must be given together"]
        location_cells = ("location_type", "meter_point_ids", "latitude", "longitude")
        if data["location_id"] is None:
            for name in location_cells:
                if data[name] is not None:
                    errors.setdefault(name, []).append("needs a location_id")
        if data["resource_id"] is None:
            for name in ("resource_type", "meter_point_id"):
                if data[name] is not None:
                    errors.setdefault(name, []).append("needs a resource_id")
        elif data["location_id"] is None:
            if data["resource_type"] not in (None, VEHICLE):
                errors["resource_type"] = [
                    "a resource without a location_id is a vehicle: resource_type must be Vehicle"
                ]
            if data["meter_point_id"] is not None:
                errors["meter_point_id"] = ["a vehicle has no meter_point_id"]
        elif data["resource_type"] is None:
            errors["resource_type"] = ["required for a resource at a location"]
        if errors:
            raise ValidationError(errors)


_CSV_SCHEMA = CsvRowSchema()


def _csv_rows(text: io.TextIOWrapper) -> Iterator[ParsedRow]:
    reader = csv.reader(text, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise ImportFormatError(f"line 1: {exc}") from None
    columns = [name.strip().lower() for name in header]
    unknown = [name for name in columns if name not in CSV_COLUMNS]
    if unknown:
        raise ImportFormatError(
            f"line 1: unknown column(s) {', '.join(map(repr, unknown))}; "
            f"known columns: {', '.join(CSV_COLUMNS)}"
        )
    if len(set(columns)) != len(columns):
        raise ImportFormatError("line 1: a column is named twice")
    if "user_id" not in columns:
        raise ImportFormatError("line 1: the user_id column is required")
    line = reader.line_num
    while True:
        start = line + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportFormatError(f"line {start}: {exc}") from None
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(columns):
            yield ParsedRow(start, error=f"expected {len(columns)} cells, found {len(cells)}")
            continue
        given = {
            name: cell.strip() for name, cell in zip(columns, cells, strict=True) if cell.strip()
        }
        try:
            data = _CSV_SCHEMA.load(given)
        except ValidationError as exc:
            yield ParsedRow(start, error="; ".join(flatten_messages(exc.messages)))
            continue
        yield _csv_records(start, data)


def _csv_records(row: int, data: dict[str, Any]) -> ParsedRow:
    user_id: str = data["user_id"]
    parsed = ParsedRow(row, users=[UserRecord(row, user_id, data["consented"])])
    location_id: str | None = data["location_id"]
    if location_id is not None:
        mpids = data["meter_point_ids"]
        describes = any(
            data[name] is not None
            for name in ("location_type", "meter_point_ids", "latitude", "longitude")
        )
        parsed.locations.append(
            LocationRecord(
                row=row,
                user_id=user_id,
                location_id=location_id,
                describes=describes,
                location_type=data["location_type"] or "Unknown",
                meter_point_ids=_unique(mpids or []),
                latitude=data["latitude"],
                longitude=data["longitude"],
            )
        )
    if data["resource_id"] is not None:
        parsed.resources.append(
            ResourceRecord(
                row=row,
                user_id=user_id,
                location_id=location_id,
                resource_id=data["resource_id"],
                resource_type=data["resource_type"] or VEHICLE,
                meter_point_id=data["meter_point_id"],
            )
        )
    return parsed


# JSON


class CoordinatesSchema(Schema):
    latitude = fields.Float(required=True, validate=_LATITUDE)
    longitude = fields.Float(required=True, validate=_LONGITUDE)


class LocationResourceSchema(Schema):
    resource_id = fields.String(data_key="resourceId", required=True, validate=_ID)
    resource_type = fields.String(
        data_key="resourceType", required=True, validate=OneOf(RESOURCE_TYPES)
    )
    meter_point_id = fields.String(
        data_key="meterPointId", load_default=None, allow_none=True, validate=_MPID
    )


class VehicleSchema(Schema):
    resource_id = fields.String(data_key="resourceId", required=True, validate=_ID)
    resource_type = fields.String(
        data_key="resourceType", load_default=VEHICLE, validate=OneOf([VEHICLE])
    )


class LocationSchema(Schema):
    location_id = fields.String(data_key="locationId", required=True, validate=_ID)
    location_type = fields.String(
        data_key="locationType", load_default="Unknown", validate=OneOf(LOCATION_TYPES)
    )
    meter_point_ids = fields.List(
        fields.String(validate=_MPID), data_key="meterPointIds", load_default=list
    )
    coordinates = fields.Nested(CoordinatesSchema, load_default=None, allow_none=True)
    resources = fields.List(fields.Nested(LocationResourceSchema), load_default=list)


class UserSchema(Schema):
    user_id = fields.String(data_key="userId", required=True, validate=_ID)
    consented = fields.Boolean(load_default=None, allow_none=True)
    locations = fields.List(fields.Nested(LocationSchema), load_default=list)
    vehicles = fields.List(fields.Nested(VehicleSchema), load_default=list)


_USER_SCHEMA = UserSchema()


def _json_rows(text: io.TextIOWrapper) -> Iterator[ParsedRow]:
    for row, item in iter_json_array(text):
        try:
            data = _USER_SCHEMA.load(item)
        except ValidationError as exc:
            who = item.get("userId") if isinstance(item, dict) else None
            prefix = f"user {who}: " if isinstance(who, str) else ""
            yield ParsedRow(row, error=prefix + "; ".join(flatten_messages(exc.messages)))
            continue
        yield _json_records(row, data)


def _json_records(row: int, data: dict[str, Any]) -> ParsedRow:
    user_id: str = data["user_id"]
    parsed = ParsedRow(row, users=[UserRecord(row, user_id, data["consented"])])
    for location in data["locations"]:
        coordinates = location["coordinates"]
        parsed.locations.append(
            LocationRecord(
                row=row,
                user_id=user_id,
                location_id=location["location_id"],
                describes=True,
                location_type=location["location_type"],
                meter_point_ids=_unique(location["meter_point_ids"]),
                latitude=None if coordinates is None else coordinates["latitude"],
                longitude=None if coordinates is None else coordinates["longitude"],
            )
        )
        parsed.resources.extend(
            ResourceRecord(
                row=row,
                user_id=user_id,
                location_id=location["location_id"],
                resource_id=resource["resource_id"],
                resource_type=resource["resource_type"],
                meter_point_id=resource["meter_point_id"],
            )
            for resource in location["resources"]
        )
    parsed.resources.extend(
        ResourceRecord(
            row=row,
            user_id=user_id,
            location_id=None,
            resource_id=vehicle["resource_id"],
            resource_type=vehicle["resource_type"],
            meter_point_id=None,
        )
        for vehicle in data["vehicles"]
    )
    return parsed


def iter_json_array(text: io.TextIOBase) -> Iterator[tuple[int, Any]]:
    """The elements of a top-level JSON array with their 1-based positions, read in chunks.

    Memory holds one element at a time (up to MAX_JSON_ITEM_CHARS), whatever the file's size.
    """
    reader = _ChunkedText(text)
    if not reader.skip_space() or reader.peek() != "[":
        raise ImportFormatError("a JSON import file must hold one array of users")
    reader.advance(1)
    position = 0
    decoder = json.JSONDecoder()
    while True:
        if not reader.skip_space():
            raise ImportFormatError(f"the array ends early, after element {position}")
        if reader.peek() == "]" and position == 0:
            reader.advance(1)
            break
        value = reader.decode(decoder, position + 1)
        position += 1
        yield position, value
        if not reader.skip_space():
            raise ImportFormatError(f"the array ends early, after element {position}")
        separator = reader.peek()
        reader.advance(1)
        if separator == "]":
            break
        if separator != ",":
            raise ImportFormatError(f"expected ',' or ']' after element {position}")
    if reader.skip_space():
        raise ImportFormatError("unexpected data after the array")


class _ChunkedText:
    """A sliding window over a text stream, for decoding one JSON value at a time."""

    def __init__(self, text: io.TextIOBase) -> None:
        self._text = text
        self._buffer = ""
        self._pos = 0
        self._eof = False

    def _fill(self) -> bool:
        if self._eof:
            return False
        # Read at least as much as is buffered, so a large element costs linear time.
        chunk = self._text.read(max(_READ_CHARS, len(self._buffer) - self._pos))
        if not chunk:
            self._eof = True
            return False
        # Drop what was consumed, so the buffer holds about one element.
        self._buffer = self._buffer[self._pos :] + chunk
        self._pos = 0
        return True

    def skip_space(self) -> bool:
        """Move past whitespace; False at the end of the stream."""
        while True:
            while self._pos < len(self._buffer) and self._buffer[self._pos] in " \t\r\n":
                self._pos += 1
            if self._pos < len(self._buffer):
                return True
            if not self._fill():
                return False

    def peek(self) -> str:
        return self._buffer[self._pos]

    def advance(self, count: int) -> None:
        self._pos += count

    def decode(self, decoder: json.JSONDecoder, position: int) -> Any:
        while True:
            try:
                value, end = decoder.raw_decode(self._buffer, self._pos)
            except json.JSONDecodeError as exc:
                if len(self._buffer) - self._pos > MAX_JSON_ITEM_CHARS or not self._fill():
                    raise ImportFormatError(
                        f"element {position} is not valid JSON: {exc.msg}"
                    ) from None
                continue
            # A number or literal that touches the end of the buffer may continue in the
            # next chunk; objects and arrays end with their own bracket.
            if end == len(self._buffer) and not isinstance(value, dict | list) and self._fill():
                continue
            self._pos = end
            return value


def _unique(values: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))
