"""Spark's answer to a report is kept when the database fails the first try at recording it:
otherwise the report would go again once its lease ran out, a second copy at Spark."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from shared.config import load_settings
from shared.db import connect
from tests.db_faults import CancelTheNextWrite
from tests.fixtures.sandbox import SandboxHandle
from tests.reports.support import (
    HOUR,
    accepted_reports,
    curve,
    import_readings,
    local,
    reading,
    report_rows,
    spark_env,
    write_readings,
)
from worker.reports.ledger import ReportRules, sweep
from worker.reports.sender import report_client, send_due


def test_it_records_sparks_answer_again_when_the_database_cancels_the_record(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = local(2026, 3, 10, 17)
    event = curve(sandbox, database_url, [("car", "home")], [start, start + HOUR],
                  created_at=start - 20 * HOUR)  # fmt: skip
    end = start + 2 * HOUR
    path = write_readings(tmp_path / "r.csv", [reading("car", start, end, 4.0)])
    import_readings(database_url, path, now=end + HOUR)
    now = end + 24 * HOUR
    sandbox.control.set_clock(now.astimezone(UTC), frozen=True)
    settings = load_settings({**spark_env(sandbox), "DATABASE_URL": database_url})
    client = report_client(settings)
    # Spark takes the report; the statement recording its answer is then cancelled.
    fault = CancelTheNextWrite(database_url, "reports")
    spark_request = client.request

    def request_then_fault(*args: Any, **kwargs: Any) -> Any:
        answer = spark_request(*args, **kwargs)
        fault.start()
        return answer

    monkeypatch.setattr(client, "request", request_then_fault)

    rules = ReportRules.from_settings(settings)
    with connect(database_url) as conn, client:
        sweep(conn, rules, now=now)
        results = send_due(conn, client, rules, now=now)

    assert fault.errors == []
    assert fault.cancelled.is_set()
    assert [(r.status, r.attempt) for r in results] == [("sent", 1)]
    assert [r["status"] for r in report_rows(database_url, event.event_id)] == ["sent"]
    assert len(accepted_reports(sandbox, event.event_id)["reports"]) == 1
