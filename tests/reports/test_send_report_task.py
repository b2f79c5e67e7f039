"""`reports.send_report` and the retries it carries, in a real worker against a failing Spark:
30 % of the calls to /reports fail (500, 429 with Retry-After, answers lost after the report
was stored), and a worker is killed in the middle of a send."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fixtures.sandbox import SandboxHandle
from tests.fixtures.services import WorkerProcess
from tests.reports.support import (
    HOUR,
    Tasks,
    accepted_reports,
    cli_json,
    due_reports,
    report_rows,
    rows,
    set_report_faults,
    utc,
    wait_until,
)

pytestmark = pytest.mark.slow

START = datetime(2026, 5, 12, 8, 0, tzinfo=UTC)
EVENTS = 10


def test_it_sends_every_report_through_failures_and_a_killed_worker_without_needless_duplicates(
    sandbox: SandboxHandle,
    database_url: str,
    tasks: Tasks,
    spark_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    events = due_reports(sandbox, database_url, tmp_path, start=START, events=EVENTS)
    worker = spark_worker(2)
    now = START + 5 * HOUR
    sandbox.control.set_clock(now, frozen=True)

    # 1. Spark is slow; the worker process is killed while it waits for the first answer,
    #    which Spark gives anyway (to nobody): that report is stored there.
    set_report_faults(sandbox, errorRate=1.0, slowShare=1, slowSeconds=2.0)
    tasks.send("reports.sweep", now=utc(now))
    sending = wait_until(
        lambda: [r for r in report_rows(database_url) if r["status"] == "sending"],
        30,
        "a report being sent",
        interval=0.05,
    )
    wait_until(sandbox.control.requests, 10, "the request at Spark", interval=0.05)
    for pid in worker.children():
        os.kill(pid, signal.SIGKILL)
    (killed,) = sending
    wait_until(
        lambda: accepted_reports(sandbox, killed["event_id"])["reports"], 10, "the slow report"
    )

    # 2. Beat's next sweep, after the lease: 30 % of the calls fail from now on.
    set_report_faults(
        sandbox, errorRate=0.3, status500Share=1, status429Share=1, lostAnswerShare=1,
        retryAfter="1", lostAnswerMode="drop", seed=42,
    )  # fmt: skip
    later = now + timedelta(minutes=5)
    sandbox.control.set_clock(later, frozen=True)
    tasks.send("reports.sweep", now=utc(later))

    wait_until(
        lambda: {r["status"] for r in report_rows(database_url)} == {"sent"},
        120,
        "every report sent",
    )
    ledger = {r["event_id"]: r for r in report_rows(database_url)}
    record = accepted_reports(sandbox)
    faults = sandbox.http.get(sandbox.control.url + "/reports/faults", timeout=10).json()
    counts = record["countsByEventId"]
    assert set(counts) == set(events)
    duplicates = {event: n - 1 for event, n in counts.items() if n > 1}
    # Spark holds a second report only where an attempt's outcome was unknown, and we say so.
    for event, extra in duplicates.items():
        assert extra <= ledger[event]["ambiguous_attempts"], (event, extra)
    assert ledger[killed["event_id"]]["ambiguous_attempts"] >= 1
    assert killed["event_id"] in duplicates
    assert sum(duplicates.values()) <= record["lostAnswers"] + 1
    assert sum(faults["drawn"].values()) > 0
    attempts = rows(
        database_url, "SELECT outcome, http_status, retry_after_seconds FROM report_attempts"
    )
    outcomes = {(a["outcome"], a["http_status"]) for a in attempts}
    # The figures of README "Guarantees and figures" (`pytest -s` prints them).
    tally = Counter(f"{a['outcome']} {a['http_status'] or ''}".strip() for a in attempts)
    print(
        f"FAULT /reports failing 30 %, a sender killed mid-POST: {len(events)} reports, "
        f"{sum(r['status'] == 'sent' for r in ledger.values())} sent, missing 0, "
        f"second copies at Spark {sum(duplicates.values())} (ambiguous attempts "
        f"{sum(r['ambiguous_attempts'] for r in ledger.values())}); attempts "
        + ", ".join(f"{name} {n}" for name, n in sorted(tally.items()))
    )
    assert ("accepted", 200) in outcomes
    if faults["drawn"]["status429"]:
        assert ("failed", 429) in outcomes
        # Each 429's Retry-After is kept with its attempt (what `reports show` prints).
        assert {a["retry_after_seconds"] for a in attempts if a["http_status"] == 429} == {1.0}
    if faults["drawn"]["status500"]:
        assert ("failed", 500) in outcomes
    if faults["drawn"]["lostAnswer"]:
        assert ("unknown", None) in outcomes
    shown = cli_json(database_url, "reports", "show", killed["event_id"])
    (report,) = shown["reports"]
    assert report["ambiguousAttempts"] == ledger[killed["event_id"]]["ambiguous_attempts"]
    assert report["attemptLog"][0]["outcome"] == "unknown"
