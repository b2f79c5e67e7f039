"""Storing readings, against a plain COPY of the same rows into a table with their key.
Target: at least 0.3 of its rate.

    .venv/bin/python -m bench.consumption [--resources N] [--hours N] [--rounds N]

One CSV file of hourly readings (`--resources` x `--hours` rows, the columns of
`spark-partner consumption import`) is loaded into a fresh database (every migration) three
ways, interleaved for --rounds rounds, each after an emptied table and a CHECKPOINT:

- plain COPY into a keyed table, the baseline of the target: `COPY ... FROM STDIN (FORMAT
  csv)` of the file's bytes into a table with the file's columns and the key of `readings`
  (start, resource, end), nothing else. A store that replaces a re-sent reading rather than
  adding it needs that key, so this is the least any such store does. It is the baseline
  bench.eligibility uses too: a plain COPY of the same ids into a table with a primary key.
- plain COPY into a bare table, for information: the same, with no key at all;
- the import: `import_csv`, what `spark-partner consumption import` runs, committed chunk
  by chunk. The file's readings are all new and plainly spelled, so each chunk takes the fast
  way (worker/consumption/store.py): its spelling checked in a thread, COPYed into a
  temporary table, one INSERT into `readings` (whose constraints and unique keys are the
  row rules), then coverage per resource, the longest reading and late data.

After each import the same file is imported again, for information: every reading is then
stored already, so each chunk goes the checked way (staged as text, checked row by row,
merged), which replaces readings that changed and leaves the rest.

The rates are readings per second; the median of the import's rate over each baseline's is
the result.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from bench.support import fresh_database, print_result
from shared.db import connect
from worker.consumption.csv_import import import_csv
from worker.consumption.store import StoreResult

TARGET_RATIO = 0.3
START = datetime(2026, 3, 1, tzinfo=UTC)
COLUMNS = "resource_id, location_id, start_at, end_at, kwh, reading_id"


def write_file(path: Path, resources: int, hours: int) -> int:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["resourceId", "locationId", "start", "end", "kWh", "readingId"])
        for hour in range(hours):
            start = START + timedelta(hours=hour)
            begin, end = start.isoformat(), (start + timedelta(hours=1)).isoformat()
            for n in range(resources):
                kwh = round(((n * 7919 + hour * 104729) % 3000) / 1000, 3)
                writer.writerow([f"resource-{n:07d}", f"location-{n:07d}", begin, end, kwh, ""])
    return resources * hours


def prepare_tables(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE plain_copy (resource_id text, location_id text, start_at timestamptz,"
            " end_at timestamptz, kwh double precision, reading_id text)"
        )
        conn.execute(
            "CREATE TABLE keyed_copy (LIKE plain_copy, PRIMARY KEY (start_at, resource_id, end_at))"
        )


def reset(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE plain_copy, keyed_copy, readings, consumption_batches,"
            " consumption_coverage, late_readings"
        )
        conn.execute("CHECKPOINT")


def plain_copy(url: str, path: Path, table: str) -> float:
    began = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        sql = f"COPY {table} ({COLUMNS}) FROM STDIN WITH (FORMAT csv, HEADER true)"
        with cursor.copy(sql.encode()) as copy, path.open("rb") as file:
            while block := file.read(1 << 20):
                copy.write(block)
    return time.perf_counter() - began


def our_import(url: str, path: Path) -> tuple[float, StoreResult]:
    began = time.perf_counter()
    with connect(url) as conn, path.open("rb") as file:
        result = import_csv(conn, file, now=datetime.now(UTC))
    return time.perf_counter() - began, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--resources", type=int, default=10_000)
    parser.add_argument("--hours", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)

    with (
        tempfile.TemporaryDirectory() as directory,
        fresh_database(args.database_url, "consumption") as url,
    ):
        path = Path(directory) / "readings.csv"
        count = write_file(path, args.resources, args.hours)
        print(f"file: {count} readings, {path.stat().st_size / 1e6:.1f} MB")
        prepare_tables(url)
        versus_keyed, versus_plain = [], []
        keyed_rates, import_rates = [], []
        for round_no in range(1, args.rounds + 1):
            reset(url)
            keyed = plain_copy(url, path, "keyed_copy")
            reset(url)
            plain = plain_copy(url, path, "plain_copy")
            reset(url)
            ours, result = our_import(url, path)
            assert result.inserted == count, (result, count)
            versus_keyed.append(keyed / ours)
            keyed_rates.append(count / keyed)
            import_rates.append(count / ours)
            versus_plain.append(plain / ours)
            again, result = our_import(url, path)
            assert result.unchanged == count, (result, count)
            print(
                f"round {round_no}: COPY keyed {count / keyed:9,.0f}/s   "
                f"COPY bare {count / plain:9,.0f}/s   "
                f"import {count / ours:9,.0f}/s   "
                f"ratios {versus_keyed[-1]:.2f} / {versus_plain[-1]:.2f}   "
                f"(the same file again, the checked way: {count / again:,.0f}/s)"
            )
    keyed_ratio = statistics.median(versus_keyed)
    plain_ratio = statistics.median(versus_plain)
    verdict = "meets" if keyed_ratio >= TARGET_RATIO else "MISSES"
    print(
        f"median import / plain COPY into a keyed table: {keyed_ratio:.2f} "
        f"({verdict} the target >= {TARGET_RATIO})"
    )
    print(f"median import / plain COPY into a bare table: {plain_ratio:.2f}")
    met = print_result(
        "bench.consumption",
        ("plain COPY into a keyed table", statistics.median(keyed_rates), "readings/s"),
        ("import_csv (consumption import)", statistics.median(import_rates), "readings/s"),
        keyed_ratio,
        f">= {TARGET_RATIO}",
    )
    return 0 if met else 2


if __name__ == "__main__":
    raise SystemExit(main())
