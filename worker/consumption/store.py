"""Storing readings: COPY into `staged_readings`, check and merge set-wise, one transaction per
chunk.

1. The chunk is COPYed into `staged_readings` under a fresh batch token: a file's rows as the
   file has them (no Python per row), checked readings as text.
2. `merge_staged_readings` checks every row (a bad one is left out, with why), inserts new
   readings, replaces changed ones, leaves identical ones alone, and records coverage per
   resource and late data for built reports. A value its checks cannot catch makes it fail
   (a February 30th); the chunk is then checked row by row in Python
   (`readings.check_reading`) and its good rows staged and merged again.
3. `move_resent_readings`: a reading sent again under its readingId with another span
   replaces its old span.
4. The staged rows go, and the batch's counts grow by the chunk's.

A batch is a row in `consumption_batches`; its id comes from the caller (the API's task id, a
file import's uuid), so a task redelivered after its commit finds the batch stored and does
nothing.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from shared.db import Connection, execute, fetch_one
from worker.consumption.readings import FieldErrors, Reading, check_reading, describe

# Rejected rows kept per batch (all are counted).
MAX_BATCH_ERRORS = 100
# A 4 MB chunk of a file is about 45,000 rows, some 15 MB once checked.
CHUNK_WORK_MEM = "64MB"

# Staging columns, in the order `Reading.copy_row` gives them.
_COPY_READINGS = (
    "COPY staged_readings (resource_id, location_id, start_at, end_at, kwh, reading_id) FROM STDIN"
)


@dataclass(frozen=True)
class RowError:
    # 1-based: the place in the batch (API, task) or the line of the file.
    row: int
    error: str


@dataclass
class StoreResult:
    batch_id: str
    readings: int = 0
    inserted: int = 0
    replaced: int = 0
    unchanged: int = 0
    rejected: int = 0
    # Readings new or changed in the span of a curve whose report was built already.
    late: int = 0
    errors: list[RowError] = field(default_factory=list)
    # The batch had been stored before (a redelivered task): nothing was done.
    already_stored: bool = False

    def add(self, other: StoreResult) -> None:
        self.readings += other.readings
        self.inserted += other.inserted
        self.replaced += other.replaced
        self.unchanged += other.unchanged
        self.rejected += other.rejected
        self.late += other.late
        room = MAX_BATCH_ERRORS - len(self.errors)
        self.errors.extend(other.errors[: max(room, 0)])

    def to_json(self) -> dict[str, Any]:
        return {
            "batchId": self.batch_id,
            "readings": self.readings,
            "inserted": self.inserted,
            "replaced": self.replaced,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "late": self.late,
            "errors": [asdict(error) for error in self.errors],
            "alreadyStored": self.already_stored,
        }


def open_batch(conn: Connection, batch_id: str, *, source: str, received_at: datetime) -> bool:
    """Record the batch; False when it is known already."""
    with conn.transaction():
        row = fetch_one(
            conn,
            "open_consumption_batch",
            {"batch_id": batch_id, "source": source, "received_at": received_at},
        )
    return row is not None


def batch_stored(conn: Connection, batch_id: str) -> bool:
    with conn.transaction():
        row = fetch_one(conn, "get_consumption_batch", {"batch_id": batch_id})
    return row is not None and row["stored_at"] is not None


def store_readings(
    conn: Connection,
    readings: Sequence[Reading],
    *,
    batch_id: str,
    now: datetime,
    rejected: Sequence[RowError] = (),
) -> StoreResult:
    """Store checked readings as one chunk of the batch; `rejected` are the rows that did not
    pass the check, counted with it."""

    def stage(conn: Connection) -> None:
        with conn.cursor() as cursor, cursor.copy(_COPY_READINGS) as copy:
            for reading in readings:
                copy.write_row(reading.copy_row())

    return _store_chunk(
        conn, stage, None, batch_id=batch_id, now=now, first_row=1, rejected=rejected
    )


def store_csv_chunk(
    conn: Connection,
    chunk: bytes,
    columns: Sequence[str],
    header: Sequence[str],
    *,
    batch_id: str,
    now: datetime,
    first_line: int,
) -> StoreResult:
    """Store whole CSV records (`chunk`, without the header) of a file whose header maps to
    the staging `columns`; errors name the file's line (counting from `first_line`)."""
    copy_sql = "COPY staged_readings (" + ", ".join(columns) + ") FROM STDIN WITH (FORMAT csv)"

    def stage(conn: Connection) -> None:
        with conn.cursor() as cursor, cursor.copy(copy_sql.encode()) as copy:
            copy.write(chunk)

    def fallback() -> tuple[list[Reading], list[RowError], int]:
        return _check_csv_rows(chunk, header, first_line)

    return _store_chunk(conn, stage, fallback, batch_id=batch_id, now=now, first_row=first_line)


def _store_chunk(
    conn: Connection,
    stage: Any,
    fallback: Any,
    *,
    batch_id: str,
    now: datetime,
    first_row: int,
    rejected: Sequence[RowError] = (),
) -> StoreResult:
    """Stage, check, merge and count one chunk, all in one transaction."""
    result = StoreResult(batch_id, readings=len(rejected), rejected=len(rejected))
    errors: list[RowError] = list(rejected)
    token = str(uuid.uuid4())
    params = {"token": token, "batch_id": batch_id, "now": now}
    with conn.transaction():
        execute(conn, "set_batch_token", {"token": token})
        # The checked chunk is held once and read four times: in memory, not a temporary file.
        execute(conn, "set_local_setting", {"name": "work_mem", "value": CHUNK_WORK_MEM})
        try:
            with conn.transaction():
                stage(conn)
                merged = fetch_one(conn, "merge_staged_readings", params)
        except psycopg.DataError:
            if fallback is None:
                raise
            readings, problems, seen = fallback()
            errors.extend(problems)
            result.readings += seen - len(readings)
            result.rejected += len(problems)
            with conn.cursor() as cursor, cursor.copy(_COPY_READINGS) as copy:
                for reading in readings:
                    copy.write_row(reading.copy_row())
            merged = fetch_one(conn, "merge_staged_readings", params)
        moved = fetch_one(conn, "move_resent_readings", params)
        execute(conn, "clear_staged_readings", {"token": token})
        if merged is None or moved is None:
            raise RuntimeError("merging readings returned nothing")
        errors.extend(RowError(first_row + e["place"] - 1, e["error"]) for e in merged["errors"])
        result.readings += int(merged["rows"])
        result.rejected += int(merged["rejected"])
        result.inserted = int(merged["inserted"])
        result.replaced = int(merged["replaced"])
        result.late = int(merged["late"]) + int(moved["late"])
        # Identical to what was stored, or sent twice within the chunk.
        result.unchanged = (
            int(merged["rows"]) - int(merged["rejected"]) - result.inserted - result.replaced
        )
        result.errors = errors[:MAX_BATCH_ERRORS]
        _record(conn, result, batch_id, now)
    return result


def _record(conn: Connection, result: StoreResult, batch_id: str, now: datetime) -> None:
    execute(
        conn,
        "add_to_consumption_batch",
        {
            "batch_id": batch_id,
            "readings": result.readings,
            "inserted": result.inserted,
            "replaced": result.replaced,
            "unchanged": result.unchanged,
            "rejected": result.rejected,
            "late": result.late,
            "errors": json.dumps([asdict(error) for error in result.errors]),
            "max_errors": MAX_BATCH_ERRORS,
            "stored_at": now,
        },
    )


def _check_csv_rows(
    chunk: bytes, header: Sequence[str], first_line: int
) -> tuple[list[Reading], list[RowError], int]:
    """The slow path for a chunk PostgreSQL could not take: every row checked here."""
    text = chunk.decode("utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""))
    readings: list[Reading] = []
    errors: list[RowError] = []
    seen = 0
    line = first_line
    for record in reader:
        row_line = line
        line = first_line + reader.line_num
        if not any(value.strip() for value in record):
            continue
        seen += 1
        if len(record) != len(header):
            problems: FieldErrors = {
                "_row": [f"has {len(record)} fields, the header {len(header)}"]
            }
            errors.append(RowError(row_line, describe(problems)))
            continue
        item = {name: value for name, value in zip(header, record, strict=True) if value != ""}
        reading, problems = check_reading(item)
        if reading is None:
            errors.append(RowError(row_line, describe(problems)))
        else:
            readings.append(reading)
    return readings, errors, seen
