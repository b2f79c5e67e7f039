"""Storing readings, one transaction per chunk, set-wise in PostgreSQL.

A chunk's readings take one of two ways into `readings`; both leave the good ones in the
session's temporary `incoming_readings` for what follows.

- New readings of a plain file (every record on one line, values in the spellings of
  readings.PLAIN_TIME and PLAIN_KWH): COPYed into `incoming_readings` typed, then one plain
  INSERT (`insert_incoming_readings`). The constraints of `readings` are the row rules, so
  a bad row, a reading stored before or one sent twice in the chunk (its span or its
  readingId) stops it; under a savepoint, so that nothing of it stays and the chunk goes the
  checked way instead.
- The checked way: the chunk is COPYed into `staged_readings` as text under a fresh batch
  token, and `check_staged_readings` checks every row (a bad one is left out, with why) and
  keeps the last row of each readingId and of each span. A value its checks cannot catch
  makes it fail (a February 30th); the chunk is then checked row by row in Python
  (`readings.check_reading`) and its good rows staged and checked again. Then
  `move_resent_readings` removes the old span of a readingId sent again with another one
  (one row per readingId: readings_reading_id_key), and `merge_incoming_readings` inserts
  new readings, replaces changed ones and leaves identical ones alone.

Then, either way: `account_incoming_readings` (coverage per resource, the longest reading,
late data for built reports), and the batch's counts grow by the chunk's.

A batch is a row in `consumption_batches`; its id comes from the caller (the API's task id, a
file import's uuid), so a task redelivered after its commit finds the batch stored and does
nothing.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import DictRow

from shared.db import Connection, execute, fetch_one
from shared.readings import (
    KWH_SPELLING,
    TIME_SPELLING,
    FieldErrors,
    Reading,
    check_reading,
    check_readings,
    describe,
)

# Rejected rows kept per batch (all are counted).
MAX_BATCH_ERRORS = 100
# A 16 MB chunk of a file (csv_import.CHUNK_BYTES) is about 180,000 rows, some 60 MB once
# checked.
CHUNK_WORK_MEM = "256MB"

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


def get_batch(conn: Connection, batch_id: str) -> DictRow | None:
    """The batch's row of `consumption_batches`, counts and first errors included."""
    with conn.transaction():
        return fetch_one(conn, "get_consumption_batch", {"batch_id": batch_id})


def batch_counts(row: DictRow) -> dict[str, Any]:
    """A stored batch's counts as `GET /consumption/batches/{id}` shows them."""
    return {
        "readings": row["readings"],
        "inserted": row["inserted"],
        "replaced": row["replaced"],
        "unchanged": row["unchanged"],
        "rejected": row["rejected"],
        "late": row["late"],
        "errors": row["errors"],
    }


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


def store_items(
    conn: Connection, items: Sequence[Any], *, batch_id: str, now: datetime
) -> StoreResult:
    """Store readings as JSON gives them (the ingest task's): each checked here, the good
    ones stored, the others counted with their place (1-based)."""
    checked, errors = check_readings(items)
    rejected = [RowError(int(index) + 1, describe(problems)) for index, problems in errors.items()]
    return store_readings(conn, checked, batch_id=batch_id, now=now, rejected=rejected)


def store_csv_chunk(
    conn: Connection,
    chunk: bytes,
    columns: Sequence[str],
    header: Sequence[str],
    *,
    batch_id: str,
    now: datetime,
    first_line: int,
    plain: Callable[[], bool] | None = None,
) -> StoreResult:
    """Store whole CSV records (`chunk`, without the header) of a file whose header maps to
    the staging `columns`; errors name the file's line (counting from `first_line`).
    `plain` says whether every record is on one line and in the plain spellings
    (csv_import.is_plain); it may still be working while the chunk goes in the fast way,
    which is kept only when it says yes."""
    copy_sql = "COPY staged_readings (" + ", ".join(columns) + ") FROM STDIN WITH (FORMAT csv)"

    def stage(conn: Connection) -> None:
        with conn.cursor() as cursor, cursor.copy(copy_sql.encode()) as copy:
            copy.write(chunk)

    def fallback() -> tuple[list[Reading], list[RowError], int]:
        return _check_csv_rows(chunk, header, first_line)

    def copy_new(conn: Connection) -> None:
        sql = "COPY incoming_readings (" + ", ".join(columns) + ") FROM STDIN WITH (FORMAT csv)"
        with conn.cursor() as cursor, cursor.copy(sql.encode()) as copy:
            copy.write(chunk)

    return _store_chunk(
        conn,
        stage,
        fallback,
        batch_id=batch_id,
        now=now,
        first_row=first_line,
        copy_new=copy_new,
        plain=plain,
    )


def _store_chunk(
    conn: Connection,
    stage: Any,
    fallback: Any,
    *,
    batch_id: str,
    now: datetime,
    first_row: int,
    rejected: Sequence[RowError] = (),
    copy_new: Callable[[Connection], None] | None = None,
    plain: Callable[[], bool] | None = None,
) -> StoreResult:
    """Store and count one chunk, all in one transaction: by `copy_new` when the chunk is
    `plain` and every reading in it is new and good, else staged, checked and merged."""
    result = StoreResult(batch_id, readings=len(rejected), rejected=len(rejected))
    errors: list[RowError] = list(rejected)
    params = {"batch_id": batch_id, "now": now}
    with conn.transaction():
        execute(conn, "create_incoming_readings")
        execute(conn, "clear_incoming_readings")
        inserted = None
        if copy_new is not None and plain is not None:
            inserted = _insert_new(conn, copy_new, plain, params)
        if inserted is not None:
            result.readings += inserted
            result.inserted = inserted
        else:
            checked = _check(conn, stage, fallback, params=params, result=result, errors=errors)
            errors.extend(
                RowError(first_row + e["place"] - 1, e["error"]) for e in checked["errors"]
            )
            result.readings += int(checked["rows"])
            result.rejected += int(checked["rejected"])
            if checked["with_reading_id"]:
                # Looked up by readingId, a few rows each: the index, in a nested loop.
                execute(conn, "set_local_setting", {"name": "enable_nestloop", "value": "on"})
                moved = fetch_one(conn, "move_resent_readings", params)
                if moved is None:
                    raise RuntimeError("moving re-sent readings returned nothing")
                result.late += int(moved["late"])
                execute(conn, "set_local_setting", {"name": "enable_nestloop", "value": "off"})
            merged = fetch_one(conn, "merge_incoming_readings", params)
            if merged is None:
                raise RuntimeError("merging readings returned nothing")
            result.inserted = int(merged["inserted"])
            result.replaced = int(merged["replaced"])
            # Identical to what was stored, or sent again later within the chunk.
            result.unchanged = (
                int(checked["rows"]) - int(checked["rejected"]) - result.inserted - result.replaced
            )
        accounted = fetch_one(conn, "account_incoming_readings", params)
        if accounted is None:
            raise RuntimeError("accounting for readings returned nothing")
        result.late += int(accounted["late"])
        result.errors = errors[:MAX_BATCH_ERRORS]
        _record(conn, result, batch_id, now)
    return result


class _NotPlain(Exception):
    """The chunk went in the fast way, but is not plain: undo it."""


def _insert_new(
    conn: Connection,
    copy_new: Callable[[Connection], None],
    plain: Callable[[], bool],
    params: dict[str, Any],
) -> int | None:
    """The chunk COPYed typed and INSERTed as new readings; None, with nothing of it left,
    when it is not plain (a time without an offset would have been read as UTC), a value
    does not parse, a row breaks a rule or a reading is stored already."""
    try:
        with conn.transaction():
            copy_new(conn)
            inserted = execute(conn, "insert_incoming_readings", params).rowcount
            if not plain():
                raise _NotPlain
            return inserted
    except (psycopg.DataError, psycopg.IntegrityError, _NotPlain):
        return None


def _check(
    conn: Connection,
    stage: Any,
    fallback: Any,
    *,
    params: dict[str, Any],
    result: StoreResult,
    errors: list[RowError],
) -> DictRow:
    """Stage the chunk as text and check it into `incoming_readings`; rows only Python can
    judge make the chunk go through `fallback` (its problems added to `result` and
    `errors`)."""
    token = str(uuid.uuid4())
    params = {
        **params,
        "token": token,
        "time_spelling": f"^(?:{TIME_SPELLING})$",
        "kwh_spelling": f"^(?:{KWH_SPELLING})$",
    }
    execute(conn, "set_batch_token", {"token": token})
    # The checked chunk is held once and read several times: in memory, not a temporary file.
    execute(conn, "set_local_setting", {"name": "work_mem", "value": CHUNK_WORK_MEM})
    # The planner expects a few rows from each step of the check and the merge where there
    # are a chunk's worth; joined in a nested loop, a 16 MB chunk's rows would take hours.
    execute(conn, "set_local_setting", {"name": "enable_nestloop", "value": "off"})
    # Nested loops off make every plan look dear (PostgreSQL adds a huge cost for them); left
    # on, JIT would then compile each statement that follows, a second each even for a
    # batch of one reading.
    execute(conn, "set_local_setting", {"name": "jit", "value": "off"})
    try:
        with conn.transaction():
            stage(conn)
            checked = fetch_one(conn, "check_staged_readings", params)
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
        checked = fetch_one(conn, "check_staged_readings", params)
    execute(conn, "clear_staged_readings", {"token": token})
    if checked is None:
        raise RuntimeError("checking readings returned nothing")
    return checked


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
