"""One definition of a valid reading (issue 12, point 6): `shared.readings.check_reading`.

The other places that judge a reading only stand in for it where it would be slow: the
checked way of a file (`check_staged_readings`, set-wise in SQL), and the fast way (the plain
spellings of `shared.readings` and the constraints of `readings`). This property test feeds
the same generated rows (good, bad, re-sent, moved to another span, oddly spelled) to every
way in, one batch after another, and asserts that each way stores the same readings, counts
the same and refuses the same rows as the Python check does:

- a file, as `spark-partner consumption import` takes it (the fast way when it can);
- a file, the checked way only;
- JSON readings, as the ingest task (and behind it `POST /consumption`) takes them; the
  ingress refuses a body with the same rows, by the same `check_readings`.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.db import Connection, connect
from shared.readings import FIELDS, check_reading
from worker.consumption.csv_import import import_csv, parse_header
from worker.consumption.store import StoreResult, open_batch, store_csv_chunk, store_items

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
BASE = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
Row = dict[str, str]


def good_spellings(when: datetime) -> list[str]:
    plus_one = when + HOUR
    return [
        when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        when.strftime("%Y-%m-%dT%H:%MZ"),
        plus_one.strftime("%Y-%m-%d %H:%M:%S+01:00"),
        (when - 2.5 * HOUR).strftime("%Y-%m-%dT%H:%M:%S.250-02:30"),
        when.strftime("%Y-%m-%dT%H:%M:%S.123456Z"),
        (when + 15 * HOUR).strftime("%Y-%m-%dT%H:%M:%S+15:00"),
    ]


def odd_spellings(when: datetime) -> list[str]:
    """Not a time with an offset, or one that PostgreSQL alone would read."""
    plus_one = when + HOUR
    return [
        when.strftime("%Y-%m-%dT%H:%M:%S"),
        when.strftime("%Y-%m-%dT%H:%M:%Sz"),
        plus_one.strftime("%Y-%m-%dT%H:%M:%S+0100"),
        plus_one.strftime("%Y-%m-%dT%H+01:00"),
        when.strftime("%Y-%m-%dT%H:%M:%S.1234567Z"),
        when.strftime("%Y-%m-%dT%H:%M:60Z"),
        when.strftime("%Y-%m-%dT24:00:00Z"),
        (when + 16 * HOUR).strftime("%Y-%m-%dT%H:%M:%S+16:00"),
        when.strftime("%Y-02-30T%H:%M:%SZ"),  # no such day: PostgreSQL cannot read it
        when.strftime("%Y-%m-%dT%H:%M:%S") + "\u00a0Z",
        # Out of Python's range once the offset is applied (a 500 that fuzzing found), and
        # the years either side of 1000 to 8999.
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:00:00-05:00",
        when.strftime("0999-%m-%dT%H:%M:%SZ"),
        when.strftime("9000-%m-%dT%H:%M:%SZ"),
        "",
        "soon",
    ]


GOOD_KWH = ["1", "2.5", "0", "-0", "1e3", "1E-3", "+3", ".5", "5.", " 2.5", "0.1000000000000001"]
ODD_KWH = ["", "-1", "NaN", "inf", "Infinity", "1_000", "abc", "1e999", "0x10", "\u0661"]
GOOD_DURATIONS = [HOUR / 2, HOUR, 2 * HOUR, timedelta(days=31)]
ODD_DURATIONS = [-HOUR, timedelta(0), timedelta(days=31, minutes=1)]
ODD = ["resourceId", "locationId", "readingId", "start", "end", "span", "kWh"]


@st.composite
def rows(draw: st.DrawFn) -> Row:
    """A reading, or one with one thing wrong or oddly spelled; from few resources, spans and
    readingIds, so that rows are sent again and move."""
    odd = draw(st.sampled_from([None, None, *ODD]))
    start = BASE + draw(st.integers(0, 3)) * HOUR / 2
    end = start + draw(st.sampled_from(ODD_DURATIONS if odd == "span" else GOOD_DURATIONS))

    def pick(field: str, good: list[str], bad: list[str]) -> str:
        return draw(st.sampled_from(bad if odd == field else good))

    return {
        "resourceId": pick("resourceId", ["r1", "r1", "r2", "é" * 100], ["", "é" * 101]),
        "locationId": pick("locationId", ["", "l1", "l2"], ["x" * 201]),
        "start": pick("start", good_spellings(start), odd_spellings(start)),
        "end": pick("end", good_spellings(end), odd_spellings(end)),
        "kWh": pick("kWh", GOOD_KWH, ODD_KWH),
        "readingId": pick("readingId", ["", "", "a", "b"], ["x" * 201]),
    }


def batches() -> st.SearchStrategy[list[list[Row]]]:
    return st.lists(st.lists(rows(), min_size=1, max_size=8), min_size=1, max_size=3)


def as_json(row: Row) -> dict[str, str]:
    """The row as a reading in JSON: an empty field is one left out, as in a file."""
    return {name: value for name, value in row.items() if value != ""}


def as_file(rows: list[Row]) -> bytes:
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(FIELDS)
    for row in rows:
        writer.writerow([row[name] for name in FIELDS])
    return text.getvalue().encode()


Outcome = tuple[tuple[int, int, int, int, int], list[int]]


def outcome(result: StoreResult, first_row: int) -> Outcome:
    """The counts and the refused rows (0-based) of a batch."""
    counts = (result.readings, result.inserted, result.replaced, result.unchanged, result.rejected)
    return counts, sorted(error.row - first_row for error in result.errors)


def file_import(conn: Connection, rows: list[Row]) -> Outcome:
    return outcome(import_csv(conn, io.BytesIO(as_file(rows)), now=NOW), first_row=2)


def checked_file_import(conn: Connection, rows: list[Row]) -> Outcome:
    data = as_file(rows)
    header_line, _, body = data.partition(b"\n")
    header = parse_header(header_line)
    batch_id = str(uuid.uuid4())
    open_batch(conn, batch_id, source="file", received_at=NOW)
    result = store_csv_chunk(
        conn, body, header.columns, header.fields, batch_id=batch_id, now=NOW, first_line=2
    )
    return outcome(result, first_row=2)


def task(conn: Connection, rows: list[Row]) -> Outcome:
    batch_id = str(uuid.uuid4())
    open_batch(conn, batch_id, source="task", received_at=NOW)
    result = store_items(conn, [as_json(row) for row in rows], batch_id=batch_id, now=NOW)
    return outcome(result, first_row=1)


WAYS: dict[str, Callable[[Connection, list[Row]], Outcome]] = {
    "file": file_import,
    "file, checked way": checked_file_import,
    "task": task,
}


def stored(conn: Connection) -> list[tuple[Any, ...]]:
    return [
        tuple(row.values())
        for row in conn.execute(
            "SELECT resource_id, location_id, start_at, end_at, kwh, reading_id FROM readings"
            " ORDER BY start_at, resource_id, end_at"
        ).fetchall()
    ]


@settings(
    deadline=None,
    # One database for every example: each way empties it before its batches.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(batches=batches())
def test_it_stores_and_refuses_the_same_rows_whichever_way_they_come_in(
    database_url: str, batches: list[list[Row]]
) -> None:
    expected_refusals = [
        [place for place, row in enumerate(batch) if check_reading(as_json(row))[0] is None]
        for batch in batches
    ]
    results: dict[str, tuple[list[Outcome], list[tuple[Any, ...]]]] = {}
    with connect(database_url) as conn:
        for name, way in WAYS.items():
            conn.execute(
                "TRUNCATE readings, consumption_batches, consumption_coverage, late_readings"
            )
            conn.commit()
            outcomes = [way(conn, batch) for batch in batches]
            results[name] = (outcomes, stored(conn))

    for name, (outcomes, _) in results.items():
        assert [refused for _, refused in outcomes] == expected_refusals, name
    first = results["task"]
    for name, result in results.items():
        assert result == first, name
