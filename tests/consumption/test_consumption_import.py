"""`spark-partner consumption import FILE.csv`: readings in from a file, streamed in chunks."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sandbox.state import Event
from shared.db import connect
from tests.fixtures.sandbox import SandboxHandle
from tests.reports.support import (
    HOUR,
    cli,
    cli_json,
    curve,
    execute,
    import_readings,
    reading,
    report_rows,
    rows,
    send_event_reports,
    utc,
    write_readings,
)
from worker.consumption.csv_import import import_csv

T0 = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 3, 18, 0, tzinfo=UTC)


def stored(
    database_url: str,
) -> list[tuple[str, str | None, datetime, datetime, float, str | None]]:
    return [
        (r["resource_id"], r["location_id"], r["start_at"], r["end_at"], r["kwh"], r["reading_id"])
        for r in rows(
            database_url,
            "SELECT * FROM readings ORDER BY resource_id, start_at, end_at",
        )
    ]


LATE_COLUMNS = (
    "event_id", "change", "resource_id", "location_id", "start_at", "end_at", "kwh",
    "kwh_in_event", "batch_id",
)  # fmt: skip


def late_rows(database_url: str) -> list[tuple[Any, ...]]:
    """Every late_readings row, as a tuple of LATE_COLUMNS, in a fixed order."""
    return [
        tuple(r[name] for name in LATE_COLUMNS)
        for r in rows(database_url, "SELECT * FROM late_readings ORDER BY change, event_id, id")
    ]


def test_it_stores_readings_and_replaces_rather_than_adds_when_sent_again(
    database_url: str, tmp_path: Path
) -> None:
    first = write_readings(
        tmp_path / "a.csv",
        [
            reading("ev-1", T0, T0 + HOUR, 7.5, location_id="home"),
            reading("ev-1", T0 + HOUR, T0 + 2 * HOUR, 3.25, location_id="home"),
            reading("heat-1", T0, T0 + HOUR / 4, 0.5),
        ],
    )
    again = write_readings(
        tmp_path / "b.csv",
        [
            reading("ev-1", T0, T0 + HOUR, 7.5, location_id="home"),  # unchanged
            reading("ev-1", T0 + HOUR, T0 + 2 * HOUR, 4.0, location_id="home"),  # corrected
        ],
    )

    one = cli_json(database_url, "consumption", "import", str(first), "--now", utc(NOW))
    two = cli_json(database_url, "consumption", "import", str(again), "--now", utc(NOW))

    assert (one["readings"], one["inserted"], one["replaced"], one["rejected"]) == (3, 3, 0, 0)
    assert (two["inserted"], two["replaced"], two["unchanged"]) == (0, 1, 1)
    assert stored(database_url) == [
        ("ev-1", "home", T0, T0 + HOUR, 7.5, None),
        ("ev-1", "home", T0 + HOUR, T0 + 2 * HOUR, 4.0, None),
        ("heat-1", None, T0, T0 + HOUR / 4, 0.5, None),
    ]
    coverage = rows(database_url, "SELECT * FROM consumption_coverage ORDER BY resource_id")
    assert [(c["resource_id"], c["data_until"]) for c in coverage] == [
        ("ev-1", T0 + 2 * HOUR),
        ("heat-1", T0 + HOUR / 4),
    ]


def test_it_replaces_a_session_sent_again_under_its_reading_id_with_a_longer_span(
    database_url: str, tmp_path: Path
) -> None:
    ongoing = [reading("ev-1", T0, T0 + HOUR, 7.0, reading_id="session-9")]
    finished = [reading("ev-1", T0, T0 + 3 * HOUR, 18.0, reading_id="session-9")]

    cli_json(
        database_url, "consumption", "import", str(write_readings(tmp_path / "a.csv", ongoing))
    )
    cli_json(
        database_url, "consumption", "import", str(write_readings(tmp_path / "b.csv", finished))
    )

    assert stored(database_url) == [("ev-1", None, T0, T0 + 3 * HOUR, 18.0, "session-9")]


def hour_curve(sandbox: SandboxHandle, database_url: str, start: datetime) -> Event:
    """A curve for the EV at home for the hour from `start`, sent the day before."""
    return curve(sandbox, database_url, [("ev-1", "home")], [start], created_at=T0 - 20 * HOUR)


def start_session(database_url: str, tmp_path: Path) -> None:
    """A charging session's first reading, imported at NOW: half of it in the hour from T0,
    half in the next."""
    ongoing = reading(
        "ev-1", T0 + HOUR / 2, T0 + 3 * HOUR / 2, 4.0, location_id="home", reading_id="session-9"
    )
    import_readings(database_url, write_readings(tmp_path / "a.csv", [ongoing]), now=NOW)


def finish_session(database_url: str, tmp_path: Path) -> Any:
    """The charging session sent again when it ended: same readingId, a longer span (a
    quarter of it in each hour), imported an hour after the first. It replaces the first."""
    finished = reading(
        "ev-1", T0 + HOUR / 2, T0 + 5 * HOUR / 2, 10.0, location_id="home", reading_id="session-9"
    )
    imported = import_readings(
        database_url, write_readings(tmp_path / "b.csv", [finished]), now=NOW + HOUR
    )
    assert stored(database_url) == [
        ("ev-1", "home", T0 + HOUR / 2, T0 + 5 * HOUR / 2, 10.0, "session-9")
    ]
    return imported


def test_it_records_the_old_span_of_a_resent_reading_as_moved_where_a_report_was_built(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    # Curves for the hours from T0, T0 + 1h and T0 + 2h; the first and the last are built.
    built, pending, after = (hour_curve(sandbox, database_url, T0 + n * HOUR) for n in range(3))
    start_session(database_url, tmp_path)
    sandbox.control.set_clock(NOW, frozen=True)
    for event in (built, after):
        send_event_reports(database_url, sandbox, event.event_id, now=NOW)
    states = {r["event_id"]: (r["status"], r["built_at"]) for r in report_rows(database_url)}
    assert states == {
        built.event_id: ("sent", NOW),
        pending.event_id: ("pending", None),
        after.event_id: ("empty", NOW),
    }
    imported = finish_session(database_url, tmp_path)

    batch = imported["batchId"]
    old = ("ev-1", "home", T0 + HOUR / 2, T0 + 3 * HOUR / 2, 4.0)
    new = ("ev-1", "home", T0 + HOUR / 2, T0 + 5 * HOUR / 2, 10.0)
    assert sorted(late_rows(database_url)) == sorted(
        [
            (built.event_id, "moved", *old, 2.0, batch),
            (built.event_id, "new", *new, 2.5, batch),
            (after.event_id, "new", *new, 2.5, batch),
        ]
    )
    assert (imported["inserted"], imported["late"]) == (1, 3)


def test_it_records_no_moved_reading_where_no_report_was_built_or_it_was_rejected(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    pending, refused = (hour_curve(sandbox, database_url, T0 + n * HOUR) for n in range(2))
    start_session(database_url, tmp_path)
    # Spark's clock is past the report's deadline (end of March plus a day): it refuses it.
    sandbox.control.set_clock(datetime(2026, 4, 2, 12, 0, tzinfo=UTC), frozen=True)
    sent = cli(
        database_url, "reports", "send", "--event", refused.event_id, "--now", utc(NOW),
        sandbox=sandbox,
    )  # fmt: skip
    assert sent.exit_code == 1, sent.output
    states = {r["event_id"]: (r["status"], r["built_at"]) for r in report_rows(database_url)}
    assert states == {pending.event_id: ("pending", None), refused.event_id: ("rejected", NOW)}
    imported = finish_session(database_url, tmp_path)

    assert late_rows(database_url) == []
    assert (imported["inserted"], imported["late"]) == (1, 0)


def test_it_skips_bad_rows_naming_their_line_and_exits_non_zero(
    database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(
        "resourceId,start,end,kWh\n"
        "ev-1,2026-03-03T10:00:00Z,2026-03-03T11:00:00Z,1.5\n"
        "ev-2,2026-03-03T10:00:00,2026-03-03T11:00:00Z,1\n"
        "ev-3,2026-03-03T11:00:00Z,2026-03-03T10:00:00Z,1\n"
        "ev-4,2026-03-03T10:00:00+01:00,2026-03-03T11:00:00+01:00,-2\n"
        ",2026-03-03T10:00:00Z,2026-03-03T11:00:00Z,1\n"
        "ev-5,2026-03-03T10:00:00Z,2026-03-03T11:00:00Z,1\n",
        encoding="utf-8",
    )

    result = cli(database_url, "consumption", "import", str(path))

    assert result.exit_code == 1
    assert (
        "line 3: start must be an ISO 8601 date and time with Z or a ±hh:mm offset" in result.output
    )
    assert "line 4: end must be after start" in result.output
    assert "line 5: kWh must be a finite number, 0 or more" in result.output
    assert "line 6: resourceId is required" in result.output
    assert [r[0] for r in stored(database_url)] == ["ev-1", "ev-5"]


def test_it_checks_row_by_row_what_postgresql_cannot_read(
    database_url: str, tmp_path: Path
) -> None:
    # February 30th passes the set-wise checks and fails the cast: the whole chunk is then
    # checked in Python, and its good rows are still stored.
    path = tmp_path / "feb.csv"
    path.write_text(
        "resourceId,start,end,kWh\n"
        "ev-1,2026-02-30T10:00:00Z,2026-03-01T11:00:00Z,1\n"
        "ev-2,2026-03-03T10:00:00Z,2026-03-03T11:00:00Z,2\n"
        "\n"
        "ev-3,2026-03-03T10:00:00Z,2026-03-03T11:00:00Z,1e999\n",
        encoding="utf-8",
    )

    result = cli(database_url, "consumption", "import", str(path), "--json")

    assert result.exit_code == 1
    assert [r[:1] for r in stored(database_url)] == [("ev-2",)]
    report = json.loads(result.stdout)
    assert (report["readings"], report["inserted"], report["rejected"]) == (3, 1, 2)
    assert report["errors"] == [
        {"row": 2, "error": "start is not a valid date and time"},
        {"row": 5, "error": "kWh must be a finite number, 0 or more"},
    ]


def test_it_streams_a_file_in_chunks_without_cutting_a_quoted_field(
    database_url: str, tmp_path: Path
) -> None:
    lines = ["resourceId,locationId,start,end,kWh"]
    for n in range(300):
        start = T0 + n * HOUR / 4
        location = '"home, ""main"" meter"' if n % 7 == 0 else "home"
        lines.append(f"ev-{n % 3},{location},{utc(start)},{utc(start + HOUR / 4)},0.25")
    data = ("\n".join(lines) + "\n").encode()
    seen: list[int] = []

    with connect(database_url) as conn:
        result = import_csv(
            conn,
            io.BytesIO(data),
            now=NOW,
            chunk_bytes=1000,
            progress=lambda t: seen.append(t.readings),
        )

    assert (result.readings, result.inserted, result.rejected) == (300, 300, 0)
    assert len(seen) > 10
    assert seen == sorted(seen)
    quoted = rows(
        database_url,
        "SELECT count(*) AS n FROM readings WHERE location_id = %s",
        ('home, "main" meter',),
    )
    assert quoted == [{"n": 43}]


def test_it_refuses_a_file_without_the_required_columns(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("resource,start,end,kWh\nev-1,a,b,1\n", encoding="utf-8")

    result = cli(database_url, "consumption", "import", str(path))

    assert result.exit_code == 1
    assert "unknown column 'resource'" in result.output
    execute(database_url, "SELECT 1")
    assert stored(database_url) == []


def import_text(database_url: str, tmp_path: Path, text: str) -> tuple[int, Any]:
    """Import a file with `text` in it: the CLI's exit code and its JSON answer."""
    path = tmp_path / "readings.csv"
    path.write_text(text, encoding="utf-8")
    result = cli(database_url, "consumption", "import", str(path), "--json")
    return result.exit_code, json.loads(result.stdout)


def test_it_names_a_plain_row_that_breaks_a_rule_and_stores_the_rest(
    database_url: str, tmp_path: Path
) -> None:
    # Every row is spelled plainly, so the chunk first goes the fast way; each bad one
    # breaks a constraint of `readings`, and the chunk is checked row by row instead.
    long_id = "x" * 201
    code, report = import_text(
        database_url,
        tmp_path,
        "resourceId,start,end,kWh\n"
        "ev-1,2026-03-03T10:00:00Z,2026-03-03T11:00:00Z,1.5\n"
        "ev-2,2026-03-03T11:00:00Z,2026-03-03T10:00:00Z,1\n"
        "ev-3,2026-03-03T10:00:00Z,2026-03-03T11:00:00Z,-2\n"
        "ev-4,2026-01-01T00:00:00Z,2026-02-02T00:00:00Z,1\n"
        f"{long_id},2026-03-03T10:00:00Z,2026-03-03T11:00:00Z,1\n"
        "ev-5,2026-03-03T10:00:00Z,2026-03-03T11:00:00Z,2\n",
    )

    assert code == 1
    assert report["errors"] == [
        {"row": 3, "error": "end must be after start"},
        {"row": 4, "error": "kWh must be a finite number, 0 or more"},
        {"row": 5, "error": "a reading may span at most 31 days"},
        {"row": 6, "error": "resourceId is longer than 200 bytes"},
    ]
    assert [r[0] for r in stored(database_url)] == ["ev-1", "ev-5"]
    assert (report["inserted"], report["rejected"]) == (2, 4)


@pytest.mark.parametrize(
    ("bad_row", "error"),
    [
        # PostgreSQL alone would read this start as UTC and store it.
        (
            "ev-1,2026-03-03T10:00:00,2026-03-03T11:00:00Z,1",
            "start must be an ISO 8601 date and time with Z or a ±hh:mm offset",
        ),
        # Spelled plainly, but not a date: the COPY fails.
        ("ev-1,2026-02-30T10:00:00Z,2026-03-01T11:00:00Z,1", "start is not a valid date and time"),
    ],
)
def test_it_checks_row_by_row_a_plain_looking_row_that_is_not_a_reading(
    database_url: str, tmp_path: Path, bad_row: str, error: str
) -> None:
    code, report = import_text(
        database_url,
        tmp_path,
        f"resourceId,start,end,kWh\n{bad_row}\n"
        "ev-2,2026-03-03T10:00:00+01:00,2026-03-03T11:00:00+01:00,2\n",
    )

    assert code == 1
    assert report["errors"] == [{"row": 2, "error": error}]
    assert stored(database_url) == [
        ("ev-2", None, utc_time("2026-03-03T09:00:00"), utc_time("2026-03-03T10:00:00"), 2.0, None)
    ]


def test_it_keeps_the_last_of_a_reading_sent_twice_in_one_plain_file(
    database_url: str, tmp_path: Path
) -> None:
    code, report = import_text(
        database_url,
        tmp_path,
        "resourceId,start,end,kWh\n"
        "ev-1,2026-03-03T10:00:00Z,2026-03-03T11:00:00Z,1\n"
        "ev-1,2026-03-03T10:00:00Z,2026-03-03T11:00:00Z,3\n",
    )

    assert code == 0
    assert (report["readings"], report["inserted"], report["unchanged"]) == (2, 1, 1)
    assert [(r[0], r[4]) for r in stored(database_url)] == [("ev-1", 3.0)]


def test_it_adds_new_readings_and_keeps_stored_ones_when_a_file_is_sent_again_longer(
    database_url: str, tmp_path: Path
) -> None:
    day = [reading("ev-1", T0 + n * HOUR, T0 + (n + 1) * HOUR, n + 0.5) for n in range(6)]
    first = import_readings(database_url, write_readings(tmp_path / "a.csv", day[:4]), now=NOW)
    # The first four again (one corrected) and two new: a chunk that is partly stored.
    day[1] = reading("ev-1", T0 + HOUR, T0 + 2 * HOUR, 9.0)
    again = import_readings(database_url, write_readings(tmp_path / "b.csv", day), now=NOW)

    assert (first["inserted"], first["replaced"], first["unchanged"]) == (4, 0, 0)
    assert (again["inserted"], again["replaced"], again["unchanged"]) == (2, 1, 3)
    assert [r[4] for r in stored(database_url)] == [0.5, 9.0, 2.5, 3.5, 4.5, 5.5]
    coverage = rows(database_url, "SELECT data_until FROM consumption_coverage")
    assert coverage == [{"data_until": T0 + 6 * HOUR}]


def test_it_stores_a_large_plain_file_the_same_in_small_chunks(
    database_url: str, tmp_path: Path
) -> None:
    lines = ["resourceId,locationId,start,end,kWh,readingId"]
    for n in range(2000):
        start = T0 + (n // 50) * HOUR
        lines.append(f"r-{n % 50},loc,{utc(start)},{utc(start + HOUR)},{n / 100},")
    data = ("\n".join(lines) + "\n").encode()

    with connect(database_url) as conn:
        result = import_csv(conn, io.BytesIO(data), now=NOW, chunk_bytes=10_000)

    assert (result.readings, result.inserted, result.rejected) == (2000, 2000, 0)
    total = rows(
        database_url, "SELECT count(*) AS n, round(sum(kwh)::numeric, 2) AS kwh FROM readings"
    )
    assert total == [{"n": 2000, "kwh": Decimal("19990.00")}]
    coverage = rows(database_url, "SELECT DISTINCT data_until FROM consumption_coverage")
    assert coverage == [{"data_until": T0 + 40 * HOUR}]


def utc_time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_it_moves_a_span_under_the_reading_id_of_a_row_replaced_in_the_same_file(
    database_url: str, tmp_path: Path
) -> None:
    # The same reading twice in one file, first under readingId A, then under B: B's row is
    # stored, and A's row still moves A's old span.
    first = [reading("ev-1", T0, T0 + HOUR, 1.0, reading_id="A")]
    import_readings(database_url, write_readings(tmp_path / "a.csv", first), now=NOW)
    again = [
        reading("ev-1", T0 + 2 * HOUR, T0 + 3 * HOUR, 1.0, reading_id="A"),
        reading("ev-1", T0 + 2 * HOUR, T0 + 3 * HOUR, 1.0, reading_id="B"),
    ]
    import_readings(database_url, write_readings(tmp_path / "b.csv", again), now=NOW)

    assert stored(database_url) == [("ev-1", None, T0 + 2 * HOUR, T0 + 3 * HOUR, 1.0, "B")]


def test_it_stores_each_chunk_alone_when_the_callers_transaction_is_open(
    database_url: str,
) -> None:
    # A session that grew: its first span, then the longer one, each a chunk of its own.
    data = (
        "resourceId,start,end,kWh,readingId\n"
        f"ev-1,{utc(T0)},{utc(T0 + HOUR)},1.0,s-1\n"
        f"ev-1,{utc(T0)},{utc(T0 + 2 * HOUR)},2.5,s-1\n"
    ).encode()

    with connect(database_url) as conn:
        conn.execute("SELECT 1")  # a transaction is open: each chunk's is a savepoint
        result = import_csv(conn, io.BytesIO(data), now=NOW, chunk_bytes=10)
        conn.commit()

    assert (result.readings, result.inserted) == (2, 2)
    assert stored(database_url) == [("ev-1", None, T0, T0 + 2 * HOUR, 2.5, "s-1")]
