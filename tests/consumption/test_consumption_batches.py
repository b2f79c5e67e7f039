"""`spark-partner consumption batches`: where readings came from and what became of them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.reports.support import HOUR, cli, cli_json, reading, utc, write_readings

T0 = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)


def test_it_lists_the_latest_batches_with_their_counts(database_url: str, tmp_path: Path) -> None:
    first = write_readings(tmp_path / "a.csv", [reading("ev-1", T0, T0 + HOUR, 1.0)])
    second = write_readings(
        tmp_path / "b.csv",
        [reading("ev-1", T0, T0 + HOUR, 1.5), reading("ev-2", T0, T0 + HOUR, 2.0)],
    )
    a = cli_json(database_url, "consumption", "import", str(first), "--now", utc(T0 + 2 * HOUR))
    b = cli_json(database_url, "consumption", "import", str(second), "--now", utc(T0 + 3 * HOUR))

    listed = cli_json(database_url, "consumption", "batches")
    text = cli(database_url, "consumption", "batches", "--limit", "1")

    assert [item["batchId"] for item in listed] == [b["batchId"], a["batchId"]]
    assert [(i["source"], i["readings"], i["inserted"], i["replaced"]) for i in listed] == [
        ("file", 2, 1, 1),
        ("file", 1, 1, 0),
    ]
    assert text.exit_code == 0
    assert b["batchId"] in text.output
    assert a["batchId"] not in text.output
