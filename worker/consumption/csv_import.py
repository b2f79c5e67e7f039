"""`spark-partner consumption import FILE.csv`: a file of readings, streamed in chunks.

The header names the columns, in any order: `resourceId`, `locationId`, `start`, `end`,
`kWh`, `readingId` (or resource_id, location_id, reading_id; any case); the first four are
required. Each chunk of whole records goes to PostgreSQL as it is (COPY, no Python per row)
and is committed on its own, so a large file shows progress and an interrupted import keeps
what it stored: importing the file again replaces those readings, it does not add to them.
Bad rows are reported with their line and skipped.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from shared.db import Connection
from worker.consumption.store import StoreResult, open_batch, store_csv_chunk

CHUNK_BYTES = 4 * 1024 * 1024

# Header name (lower case) -> (staging column, field name in readings.FIELDS).
_COLUMNS = {
    "resourceid": ("resource_id", "resourceId"),
    "resource_id": ("resource_id", "resourceId"),
    "locationid": ("location_id", "locationId"),
    "location_id": ("location_id", "locationId"),
    "start": ("start_at", "start"),
    "end": ("end_at", "end"),
    "kwh": ("kwh", "kWh"),
    "readingid": ("reading_id", "readingId"),
    "reading_id": ("reading_id", "readingId"),
}
_REQUIRED = ("resourceId", "start", "end", "kWh")


class BadFile(ValueError):
    """The file cannot be imported at all (its header)."""


@dataclass(frozen=True)
class Header:
    columns: tuple[str, ...]
    fields: tuple[str, ...]


def parse_header(line: bytes) -> Header:
    text = line.decode("utf-8-sig").strip("\r\n")
    names = next(csv.reader([text]), [])
    columns: list[str] = []
    fields: list[str] = []
    for name in names:
        known = _COLUMNS.get(name.strip().lower())
        if known is None:
            raise BadFile(
                f"unknown column {name!r}: the columns are resourceId, locationId, start, "
                "end, kWh, readingId"
            )
        if known[1] in fields:
            raise BadFile(f"column {name!r} appears twice")
        columns.append(known[0])
        fields.append(known[1])
    missing = [name for name in _REQUIRED if name not in fields]
    if missing:
        raise BadFile("missing column(s): " + ", ".join(missing))
    return Header(tuple(columns), tuple(fields))


def chunks(stream: BinaryIO, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Whole records of about `size` bytes: cut after a newline that is not inside quotes
    (an even number of quote characters before it)."""
    pending = b""
    while True:
        block = stream.read(size)
        if not block:
            break
        pending += block
        cut = pending.rfind(b"\n")
        while cut >= 0 and pending.count(b'"', 0, cut + 1) % 2:
            cut = pending.rfind(b"\n", 0, cut)
        if cut < 0:
            continue
        yield pending[: cut + 1]
        pending = pending[cut + 1 :]
    if pending.strip():
        yield pending if pending.endswith(b"\n") else pending + b"\n"


def count_records(chunk: bytes) -> int:
    """Lines of a chunk (records span one line unless a quoted field holds a newline)."""
    return chunk.count(b"\n")


def import_csv(
    conn: Connection,
    stream: BinaryIO,
    *,
    now: datetime,
    batch_id: str | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    progress: Callable[[StoreResult], None] | None = None,
) -> StoreResult:
    """Import the readings of a CSV file; `progress` sees the running totals per chunk."""
    header_line = stream.readline()
    if not header_line.strip():
        raise BadFile("the file is empty: a header line is required")
    header = parse_header(header_line)
    batch_id = batch_id or str(uuid.uuid4())
    open_batch(conn, batch_id, source="file", received_at=now)
    total = StoreResult(batch_id)
    line = 2
    for chunk in chunks(stream, chunk_bytes):
        result = store_csv_chunk(
            conn,
            chunk,
            header.columns,
            header.fields,
            batch_id=batch_id,
            now=now,
            first_line=line,
        )
        line += count_records(chunk)
        total.add(result)
        if progress is not None:
            progress(total)
    return total
