"""A reading is counted once: one stored row per (resource, readingId), the last one sent
winning, whichever way the readings come in (issue 11, point 0).

The case that was counted twice: a charging session sent first with its partial span, then
with its final one, under one readingId, in one file."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from shared.db import connect
from shared.db.migrate import discover, upgrade
from tests.fixtures.sandbox import SandboxHandle
from tests.fixtures.services import IngressServer, WorkerProcess
from tests.reports.support import (
    Tasks,
    accepted_reports,
    curve,
    import_readings,
    points_of,
    reading,
    rows,
    send_event_reports,
    wait_until,
    write_readings,
)
from worker.consumption.csv_import import import_csv

CET = timedelta(hours=1)
SESSION_START = datetime(2026, 11, 19, 14, 59, tzinfo=UTC) - CET
PARTIAL_END = datetime(2026, 11, 19, 18, 33, tzinfo=UTC) - CET
FINAL_END = datetime(2026, 11, 19, 20, 30, tzinfo=UTC) - CET
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
TOKEN = "a-token"
MIGRATION = "one_row_per_reading_id"

# The rows, as the partner's system wrote them (local time with its offset).
PARTIAL = {
    "resourceId": "r1", "locationId": "l1", "start": "2026-11-19T14:59:00+01:00",
    "end": "2026-11-19T18:33:00+01:00", "kWh": 31.908, "readingId": "log-1",
}  # fmt: skip
FINAL = {**PARTIAL, "end": "2026-11-19T20:30:00+01:00", "kWh": 49.422}
FINAL_ROW = ("r1", "l1", SESSION_START, FINAL_END, 49.422, "log-1")


def stored(database_url: str) -> list[tuple[Any, ...]]:
    return [
        (r["resource_id"], r["location_id"], r["start_at"], r["end_at"], r["kwh"], r["reading_id"])
        for r in rows(database_url, "SELECT * FROM readings ORDER BY start_at, end_at")
    ]


def csv_text(*readings: dict[str, Any]) -> bytes:
    header = "resourceId,locationId,start,end,kWh,readingId\n"
    lines = [",".join(str(r[name]) for name in header.strip().split(",")) for r in readings]
    return (header + "".join(line + "\n" for line in lines)).encode()


def test_it_stores_the_final_span_of_a_session_sent_twice_in_one_file(
    database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "sessions.csv"
    path.write_bytes(csv_text(PARTIAL, FINAL))

    result = import_readings(database_url, path, now=NOW)

    assert stored(database_url) == [FINAL_ROW]
    assert (result["readings"], result["inserted"], result["unchanged"]) == (2, 1, 1)


def test_it_stores_the_final_span_when_the_file_has_a_quoted_field(
    database_url: str, tmp_path: Path
) -> None:
    # A quoted field keeps the chunk off the fast way: the checked way keeps the last row too.
    text = csv_text(PARTIAL, FINAL).replace(b",log-1\n", b',"log-1"\n')

    with connect(database_url) as conn:
        import_csv(conn, io.BytesIO(text), now=NOW)

    assert stored(database_url) == [FINAL_ROW]


def test_it_stores_the_final_span_when_the_two_rows_are_in_different_chunks(
    database_url: str,
) -> None:
    with connect(database_url) as conn:
        result = import_csv(conn, io.BytesIO(csv_text(PARTIAL, FINAL)), now=NOW, chunk_bytes=10)

    assert stored(database_url) == [FINAL_ROW]
    assert (result.readings, result.inserted) == (2, 2)


def test_it_stores_the_final_span_of_a_session_split_across_two_files(
    database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "a.csv").write_bytes(csv_text(PARTIAL))
    (tmp_path / "b.csv").write_bytes(csv_text(FINAL))

    import_readings(database_url, tmp_path / "a.csv", now=NOW)
    import_readings(database_url, tmp_path / "b.csv", now=NOW + timedelta(minutes=5))

    assert stored(database_url) == [FINAL_ROW]


def test_it_keeps_the_last_span_sent_even_when_it_is_the_shorter_one(
    database_url: str, tmp_path: Path
) -> None:
    # The last occurrence wins, not the longest: a corrected session may shrink.
    (tmp_path / "a.csv").write_bytes(csv_text(FINAL, PARTIAL))

    import_readings(database_url, tmp_path / "a.csv", now=NOW)

    assert stored(database_url) == [("r1", "l1", SESSION_START, PARTIAL_END, 31.908, "log-1")]


def test_it_swaps_the_spans_of_two_reading_ids_in_one_file(
    database_url: str, tmp_path: Path
) -> None:
    t0 = SESSION_START
    hour = timedelta(hours=1)
    first = [
        reading("r1", t0, t0 + hour, 1.0, reading_id="a"),
        reading("r1", t0 + hour, t0 + 2 * hour, 2.0, reading_id="b"),
    ]
    swapped = [
        reading("r1", t0, t0 + hour, 3.0, reading_id="b"),
        reading("r1", t0 + hour, t0 + 2 * hour, 4.0, reading_id="a"),
    ]
    import_readings(database_url, write_readings(tmp_path / "a.csv", first), now=NOW)

    result = import_readings(database_url, write_readings(tmp_path / "b.csv", swapped), now=NOW)

    assert stored(database_url) == [
        ("r1", None, t0, t0 + hour, 3.0, "b"),
        ("r1", None, t0 + hour, t0 + 2 * hour, 4.0, "a"),
    ]
    assert (result["inserted"], result["replaced"]) == (0, 2)


def test_it_refuses_a_second_row_for_a_reading_id_in_the_table(database_url: str) -> None:
    insert = (
        "INSERT INTO readings (resource_id, start_at, end_at, kwh, reading_id, batch_id,"
        " received_at) VALUES ('r1', %s, %s, 1, 'log-1', 'b', now())"
    )
    with connect(database_url) as conn:
        conn.execute(insert, (SESSION_START, PARTIAL_END))
        with pytest.raises(psycopg.errors.UniqueViolation, match="readings_reading_id_key"):
            conn.execute(insert, (SESSION_START, FINAL_END))


def test_it_reports_the_final_span_only(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    # An event over the session's hours (14:00 to 21:00 local); the session's whole energy
    # falls inside it, so the report's points add up to the final span's 49.422 kWh.
    hours = [datetime(2026, 11, 19, 13, 0, tzinfo=UTC) + timedelta(hours=n) for n in range(7)]
    event = curve(sandbox, database_url, [("r1", "l1")], hours, created_at=hours[0] - 20 * CET)
    path = tmp_path / "sessions.csv"
    path.write_bytes(csv_text(PARTIAL, FINAL))
    import_readings(database_url, path, now=NOW)
    sandbox.control.set_clock(NOW, frozen=True)

    send_event_reports(database_url, sandbox, event.event_id, now=NOW)

    (sent,) = accepted_reports(sandbox, event.event_id)["reports"]
    total = sum(point["kiloWattHours"] for point in points_of(sent["body"], "r1"))
    # Each hour's point is rounded to a millionth of a kWh: seven of them, at most 7e-6 off.
    assert total == pytest.approx(49.422, abs=1e-5)


@pytest.fixture
def tasks(redis_url: str) -> Iterator[Tasks]:
    client = Tasks(redis_url)
    yield client
    client.close()


def stored_batch(database_url: str, batch_id: str) -> dict[str, Any]:
    found = wait_until(
        lambda: rows(
            database_url,
            "SELECT * FROM consumption_batches WHERE batch_id = %s AND stored_at IS NOT NULL",
            (batch_id,),
        ),
        30,
        f"batch {batch_id}",
    )
    batch: dict[str, Any] = found[0]
    return batch


@pytest.mark.slow
def test_it_stores_the_final_span_of_a_session_sent_twice_in_one_task(
    database_url: str,
    redis_url: str,
    tasks: Tasks,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    start_worker(database_url, redis_url, concurrency=1)

    batch_id = tasks.send("consumption.ingest_readings", queue="ingest", readings=[PARTIAL, FINAL])

    batch = stored_batch(database_url, batch_id)
    assert (batch["readings"], batch["inserted"], batch["unchanged"]) == (2, 1, 1)
    assert stored(database_url) == [FINAL_ROW]


def post(ingress: IngressServer, readings: list[dict[str, Any]]) -> str:
    answer = requests.post(
        f"{ingress.url}/consumption",
        data=json.dumps({"readings": readings}),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert answer.status_code == 202, answer.text
    batch_id: str = answer.json()["batchId"]
    return batch_id


@pytest.mark.slow
def test_it_stores_the_final_span_of_a_session_sent_twice_in_one_request_or_two(
    database_url: str,
    redis_url: str,
    start_ingress: Callable[..., IngressServer],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    ingress = start_ingress(redis_url, CONSUMPTION_API_TOKENS=TOKEN)
    start_worker(database_url, redis_url, concurrency=1)

    stored_batch(database_url, post(ingress, [PARTIAL, FINAL]))
    assert stored(database_url) == [FINAL_ROW]

    # Then the session again, split across two requests, the partial span first.
    stored_batch(database_url, post(ingress, [PARTIAL]))
    assert stored(database_url) == [("r1", "l1", SESSION_START, PARTIAL_END, 31.908, "log-1")]
    stored_batch(database_url, post(ingress, [FINAL]))
    assert stored(database_url) == [FINAL_ROW]


def test_it_keeps_the_last_stored_row_of_a_reading_id_when_migrating(
    empty_database_url: str, tmp_path: Path
) -> None:
    # The schema before the unique key, holding what the bug stored: the session twice from
    # one file (one batch), and a reading whose readingId was stored again by a later batch.
    before = tmp_path / "migrations"
    before.mkdir()
    for migration in discover():
        if migration.name != MIGRATION:
            (before / migration.path.name).write_bytes(migration.path.read_bytes())
    t0 = SESSION_START
    insert = (
        "INSERT INTO readings (resource_id, location_id, start_at, end_at, kwh, reading_id,"
        " batch_id, received_at) VALUES (%s, 'l1', %s, %s, %s, %s, %s, %s)"
    )
    with connect(empty_database_url) as conn:
        upgrade(conn, before)
        with conn.transaction():
            for row in (
                ("r1", t0, PARTIAL_END, 31.908, "log-1", "file", NOW),
                ("r1", t0, FINAL_END, 49.422, "log-1", "file", NOW),
                ("r2", t0, t0 + timedelta(hours=2), 5.0, "s", "later", NOW + CET),
                ("r2", t0, t0 + timedelta(hours=1), 2.0, "s", "earlier", NOW),
                ("r2", t0, t0 + timedelta(hours=3), 1.0, None, "other", NOW),
            ):
                conn.execute(insert, row)

        applied = upgrade(conn)

    assert [m.name for m in applied] == [MIGRATION]
    assert sorted((r[0], r[3], r[4]) for r in stored(empty_database_url)) == [
        ("r1", FINAL_END, 49.422),
        ("r2", t0 + timedelta(hours=2), 5.0),
        ("r2", t0 + timedelta(hours=3), 1.0),
    ]
