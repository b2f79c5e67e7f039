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
import re
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from shared.db import Connection
from shared.readings import MAX_ID_BYTES, PLAIN_KWH, PLAIN_TIME
from worker.consumption.store import StoreResult, open_batch, store_csv_chunk

# Progress is shown and committed per chunk. A chunk's readings move each resource's coverage
# once, so larger chunks cost less per reading: 16 MB is about 180,000 readings.
CHUNK_BYTES = 16 * 1024 * 1024

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


# Per field: a value a plain record may hold (no quote, comma or line break in it).
_PLAIN_FIELDS = {
    "resourceId": rb'[^,"\r\n]{1,%d}' % MAX_ID_BYTES,
    "locationId": rb'[^,"\r\n]{0,%d}' % MAX_ID_BYTES,
    "readingId": rb'[^,"\r\n]{0,%d}' % MAX_ID_BYTES,
    "start": PLAIN_TIME,
    "end": PLAIN_TIME,
    "kWh": PLAIN_KWH,
}


@dataclass(frozen=True)
class Header:
    columns: tuple[str, ...]
    fields: tuple[str, ...]

    def plain_record(self) -> re.Pattern[bytes]:
        """A record on one line whose values PostgreSQL reads as our checks would (see
        shared.readings.PLAIN_TIME); a chunk of only such records can skip the row checks."""
        fields = b",".join(_PLAIN_FIELDS[name] for name in self.fields)
        return re.compile(rb"^" + fields + rb"\r?$", re.MULTILINE)


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


def is_plain(chunk: bytes, plain_record: re.Pattern[bytes], piece: int = 1 << 18) -> bool:
    """Every record of the chunk is a plain one (a match never spans a line). Matched a
    piece of lines at a time: a match holds the interpreter lock until it ends."""
    matched = 0
    start = 0
    while start < len(chunk):
        end = chunk.find(b"\n", start + piece) + 1 or len(chunk)
        matched += len(plain_record.findall(chunk, start, end))
        start = end
    return matched == count_records(chunk)


def checked_chunks(
    stream: BinaryIO, header: Header, size: int = CHUNK_BYTES
) -> Iterator[tuple[bytes, Future[bool]]]:
    """`chunks`, each with whether it is plain, worked out in a thread while the caller
    stores it: the check holds the interpreter, storing mostly waits for PostgreSQL."""
    plain_record = header.plain_record()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="csv-check") as checker:
        for chunk in chunks(stream, size):
            yield chunk, checker.submit(is_plain, chunk, plain_record)


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
    for chunk, plain in checked_chunks(stream, header, chunk_bytes):
        records = count_records(chunk)
        result = store_csv_chunk(
            conn,
            chunk,
            header.columns,
            header.fields,
            batch_id=batch_id,
            now=now,
            first_line=line,
            plain=plain.result,
        )
        line += records
        total.add(result)
        if progress is not None:
            progress(total)
    return total
