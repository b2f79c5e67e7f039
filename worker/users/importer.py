"""Load a CSV or JSON file of users into the registry (formats: `worker.users.import_formats`).

1. Stream the file row by row; each row is validated on its own and its records are COPYed
   into the staged_* tables, so memory stays flat whatever the file's size. One import runs at
   a time (an advisory lock), and the staging tables are emptied before and after.
2. Check set-wise what no single row can show: rows that contradict each other, locations or
   resources that belong to another user, users deleted earlier (skipped, with a warning).
   A bad row is reported with its row number and left out; the good rows go on.
3. Merge in batches of users, each in its own transaction: insert what is new, update only
   what changed. An update of a location or resource clears its `synced_at`, which is how the
   sync knows to push it; re-importing the same file changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow

from shared.db import Connection, execute, fetch_all, fetch_one
from worker.users.import_formats import ParsedRow, file_format, read_rows

BATCH_USERS = 1000
# Records buffered in memory before a COPY to the staging tables.
FLUSH_RECORDS = 5000
# How often (in rows) progress is reported while reading.
PROGRESS_EVERY = 1000
ERROR_LIMIT = 1000
WARNING_LIMIT = 20
IMPORT_LOCK_KEY = 0x5BA2_1A01

# Statements that cannot be prepared, so they are not among the named queries.
_EMPTY_STAGING = (
    "TRUNCATE staged_users, staged_locations, staged_resources, staged_row_errors,"
    " staged_user_batches"
)
# Fresh statistics after the COPY: autovacuum would come too late for this import's plans.
_ANALYZE_STAGING = "ANALYZE staged_users, staged_locations, staged_resources"
_COPY_USERS = "COPY staged_users (row_no, user_id, consented) FROM STDIN"
_COPY_LOCATIONS = (
    "COPY staged_locations (row_no, user_id, location_id, describes, location_type,"
    " meter_point_ids, latitude, longitude) FROM STDIN"
)
_COPY_RESOURCES = (
    "COPY staged_resources (row_no, user_id, location_id, resource_id, resource_type,"
    " meter_point_id) FROM STDIN"
)
_COPY_ERRORS = "COPY staged_row_errors (row_no, message) FROM STDIN"

_CHECKS = (
    "import_check_consent",
    "import_check_location_owner",
    "import_check_location_attributes",
    "import_check_location_registry_owner",
    "import_check_resources",
    "import_check_resource_registry_owner",
    "import_check_resource_meter_point",
)


class ImportBusy(Exception):
    """Another import is running; the staging tables are its."""


@dataclass
class Counts:
    total: int = 0
    inserted: int = 0
    updated: int = 0

    @property
    def unchanged(self) -> int:
        return self.total - self.inserted - self.updated

    def to_json(self) -> dict[str, int]:
        return {
            "total": self.total,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
        }


@dataclass(frozen=True)
class RowError:
    row: int
    message: str


@dataclass(frozen=True)
class SkippedUser:
    user_id: str
    deleted_at: datetime
    rows: int
    first_row: int


@dataclass(frozen=True)
class LocationWithoutMeter:
    location_id: str
    user_id: str


@dataclass
class ImportReport:
    rows: int = 0
    users: Counts = field(default_factory=Counts)
    locations: Counts = field(default_factory=Counts)
    resources: Counts = field(default_factory=Counts)
    # The first ERROR_LIMIT errors by row; error_count counts them all.
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    skipped_deleted: list[SkippedUser] = field(default_factory=list)
    without_meter: list[LocationWithoutMeter] = field(default_factory=list)
    without_meter_count: int = 0
    # Eligible, not enrolled users who consent as of this import (for SPARK_AUTO_ENROLL).
    to_enroll: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(c.inserted or c.updated for c in (self.users, self.locations, self.resources))

    def warnings(self) -> list[str]:
        lines = [
            f"user {s.user_id} was deleted on {s.deleted_at:%Y-%m-%d}: "
            f"{s.rows} row(s) from row {s.first_row} skipped"
            for s in self.skipped_deleted
        ]
        if self.without_meter_count:
            shown = ", ".join(f"{m.location_id} (user {m.user_id})" for m in self.without_meter)
            more = self.without_meter_count - len(self.without_meter)
            lines.append(
                f"{self.without_meter_count} location(s) have no meterPointIds and will not "
                f"be compensated: {shown}" + (f" and {more} more" if more else "")
            )
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "users": self.users.to_json(),
            "locations": self.locations.to_json(),
            "resources": self.resources.to_json(),
            "errorCount": self.error_count,
            "errors": [{"row": e.row, "message": e.message} for e in self.errors],
            "skippedDeletedUsers": [
                {"userId": s.user_id, "deletedAt": s.deleted_at, "rows": s.rows}
                for s in self.skipped_deleted
            ],
            "locationsWithoutMeterCount": self.without_meter_count,
            "locationsWithoutMeter": [
                {"locationId": m.location_id, "userId": m.user_id} for m in self.without_meter
            ],
            "warnings": self.warnings(),
        }


ReadProgress = Callable[[int], None]
BatchProgress = Callable[[int, int], None]


def import_path(
    conn: Connection,
    path: Path,
    *,
    on_read: ReadProgress | None = None,
    on_batch: BatchProgress | None = None,
    batch_users: int = BATCH_USERS,
) -> ImportReport:
    """Import the file at `path` (`.csv` or `.json`). `on_read` gets the bytes read so far,
    `on_batch` (done, total) merge batches."""
    kind = file_format(path)
    with path.open("rb") as binary:
        return import_file(
            conn, binary, kind, on_read=on_read, on_batch=on_batch, batch_users=batch_users
        )


def import_file(
    conn: Connection,
    binary: BinaryIO,
    kind: str,
    *,
    on_read: ReadProgress | None = None,
    on_batch: BatchProgress | None = None,
    batch_users: int = BATCH_USERS,
) -> ImportReport:
    """Import from `binary` (a file opened in binary mode) of `kind` "csv" or "json".

    `conn` must not be inside a transaction: the import commits batch by batch.
    """
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise RuntimeError("import_file needs a connection outside any transaction")
    with conn.transaction():
        locked = _one(conn, "try_import_lock", {"key": IMPORT_LOCK_KEY})["locked"]
    if not locked:
        raise ImportBusy("another import is running; try again when it is done")
    report = ImportReport()
    try:
        with conn.transaction():
            # Whatever an import that crashed left behind.
            conn.execute(_EMPTY_STAGING)
            stager = _Stager(conn)
            for parsed in read_rows(binary, kind):
                report.rows += 1
                stager.add(parsed)
                if on_read is not None and report.rows % PROGRESS_EVERY == 0:
                    on_read(binary.tell())
            stager.flush()
            if on_read is not None:
                on_read(binary.tell())
            conn.execute(_ANALYZE_STAGING)
        with conn.transaction():
            _check(conn, report)
        _merge(conn, report, batch_users, on_batch)
        _collect_findings(conn, report)
    finally:
        # A failed transaction has already been rolled back by the block that raised.
        with conn.transaction():
            conn.execute(_EMPTY_STAGING)
        with conn.transaction():
            execute(conn, "release_import_lock", {"key": IMPORT_LOCK_KEY})
    return report


class _Stager:
    """Buffers records and COPYs them into the staging tables."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._users: list[tuple[Any, ...]] = []
        self._locations: list[tuple[Any, ...]] = []
        self._resources: list[tuple[Any, ...]] = []
        self._errors: list[tuple[Any, ...]] = []

    def add(self, parsed: ParsedRow) -> None:
        if parsed.error is not None:
            self._errors.append((parsed.row, parsed.error))
        self._users.extend((u.row, u.user_id, u.consented) for u in parsed.users)
        self._locations.extend(
            (
                loc.row,
                loc.user_id,
                loc.location_id,
                loc.describes,
                loc.location_type,
                list(loc.meter_point_ids),
                loc.latitude,
                loc.longitude,
            )
            for loc in parsed.locations
        )
        self._resources.extend(
            (r.row, r.user_id, r.location_id, r.resource_id, r.resource_type, r.meter_point_id)
            for r in parsed.resources
        )
        buffered = len(self._users) + len(self._locations) + len(self._resources)
        if buffered + len(self._errors) >= FLUSH_RECORDS:
            self.flush()

    def flush(self) -> None:
        self._copy(_COPY_USERS, ["int4", "text", "bool"], self._users)
        self._copy(
            _COPY_LOCATIONS,
            ["int4", "text", "text", "bool", "text", "text[]", "float8", "float8"],
            self._locations,
        )
        self._copy(
            _COPY_RESOURCES,
            ["int4", "text", "text", "text", "text", "text"],
            self._resources,
        )
        self._copy(_COPY_ERRORS, ["int4", "text"], self._errors)

    def _copy(self, statement: str, types: list[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        with self._conn.cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)
        rows.clear()


def _check(conn: Connection, report: ImportReport) -> None:
    report.skipped_deleted = [
        SkippedUser(row["user_id"], row["deleted_at"], row["rows"], row["first_row"])
        for row in fetch_all(conn, "import_deleted_users")
    ]
    if report.skipped_deleted:
        execute(conn, "import_drop_deleted_users")
    # One check at a time: rows a check rejects are gone before the next one looks.
    for check in _CHECKS:
        if execute(conn, check).rowcount:
            execute(conn, "import_drop_error_rows")


def _merge(
    conn: Connection, report: ImportReport, batch_users: int, on_batch: BatchProgress | None
) -> None:
    with conn.transaction():
        execute(conn, "import_plan_batches", {"batch_size": batch_users})
        conn.execute("ANALYZE staged_user_batches")
        totals = _one(conn, "import_totals")
        bounds = fetch_all(conn, "import_batch_bounds")
    report.users.total = totals["users"]
    report.locations.total = totals["locations"]
    report.resources.total = totals["resources"]
    for done, batch in enumerate(bounds, start=1):
        params = {"first_user": batch["first_user"], "last_user": batch["last_user"]}
        # Its own transaction: row locks last one batch, and a re-run after a failure
        # finds the batches already merged unchanged.
        with conn.transaction():
            for query in ("import_upsert_stated_users", "import_upsert_unstated_users"):
                for user in fetch_all(conn, query, params):
                    if user["inserted"]:
                        report.users.inserted += 1
                        continue
                    report.users.updated += 1
                    if user["consented"] and user["eligible"] and not user["enrolled"]:
                        report.to_enroll.append(user["user_id"])
            located = _one(conn, "import_upsert_locations", params)
            report.locations.inserted += located["inserted"]
            report.locations.updated += located["updated"]
            bare = _one(conn, "import_insert_bare_locations", params)
            report.locations.inserted += bare["inserted"]
            resourced = _one(conn, "import_upsert_resources", params)
            report.resources.inserted += resourced["inserted"]
            report.resources.updated += resourced["updated"]
        if on_batch is not None:
            on_batch(done, len(bounds))


def _one(conn: Connection, name: str, params: dict[str, Any] | None = None) -> DictRow:
    """The row of a query that always returns exactly one (an aggregate)."""
    row = fetch_one(conn, name, params)
    if row is None:
        raise RuntimeError(f"query {name} returned no row")
    return row


def _collect_findings(conn: Connection, report: ImportReport) -> None:
    with conn.transaction():
        errors = fetch_all(conn, "import_error_rows", {"limit": ERROR_LIMIT})
        meterless = fetch_all(conn, "import_locations_without_mpid", {"limit": WARNING_LIMIT})
    report.errors = [RowError(row["row_no"], row["message"]) for row in errors]
    report.error_count = errors[0]["total"] if errors else 0
    report.without_meter = [
        LocationWithoutMeter(row["location_id"], row["user_id"]) for row in meterless
    ]
    report.without_meter_count = meterless[0]["total"] if meterless else 0
