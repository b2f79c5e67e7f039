"""`spark-partner eligibility sync` and `eligibility status`."""

from __future__ import annotations

import json
from typing import Any

from shared.db import Connection
from tests.eligibility.support import (
    eligible_in_spark,
    eligible_users,
    local_user,
    not_eligible_in_spark,
    transitions,
)
from tests.fixtures.sandbox import SandboxHandle, spark_env
from tests.worker.cli import run, run_json

ELIGIBLE_PATH = "/energy-coordination/v1/users/eligible"


def sync_json(database_url: str, sandbox: SandboxHandle) -> dict[str, Any]:
    result = run(database_url, "eligibility", "sync", "--json", **spark_env(sandbox))
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.output)
    return summary


def test_it_syncs_with_spark_now_and_prints_the_counts(
    sandbox: SandboxHandle, database_url: str, db: Connection
) -> None:
    local_user(db, "gains")
    local_user(db, "loses", eligible=True)
    eligible_in_spark(sandbox, "gains", "stranger")
    not_eligible_in_spark(sandbox, "loses")

    summary = sync_json(database_url, sandbox)

    assert summary["outcome"] == "done"
    assert summary["trigger"] == "manual"
    counts = [summary[k] for k in ("sparkEligible", "becameEligible", "lostEligibility")]
    assert counts == [2, 2, 1]
    assert summary["unknownUsers"] == 1
    assert eligible_users(db) == {"gains", "stranger"}
    assert {t[0] for t in transitions(db)} == {"gains", "stranger", "loses"}

    text = run(database_url, "eligibility", "sync", **spark_env(sandbox))
    assert text.exit_code == 0, text.output
    assert "done; Spark lists 2 eligible, 0 became eligible" in text.output


def test_it_exits_with_an_error_when_spark_refuses(
    sandbox: SandboxHandle, database_url: str, db: Connection
) -> None:
    local_user(db, "keeps", eligible=True)
    sandbox.control.add_faults("GET", ELIGIBLE_PATH, [{"status": 403}])

    result = run(database_url, "eligibility", "sync", **spark_env(sandbox))

    assert result.exit_code == 1
    assert "403" in result.output
    assert eligible_users(db) == {"keeps"}


def test_it_refuses_to_sync_without_spark_settings(database_url: str) -> None:
    result = run(database_url, "eligibility", "sync")

    assert result.exit_code == 1
    assert "SPARK_API_URL" in result.output


def test_it_shows_the_latest_reconciles(
    sandbox: SandboxHandle, database_url: str, db: Connection
) -> None:
    assert run_json(database_url, "eligibility", "status") == []
    eligible_in_spark(sandbox, "a")
    first = sync_json(database_url, sandbox)
    not_eligible_in_spark(sandbox, "b")
    second = sync_json(database_url, sandbox)

    shown = run_json(database_url, "eligibility", "status")

    assert [item["reconcileId"] for item in shown] == [
        second["reconcileId"],
        first["reconcileId"],
    ]
    assert shown[1]["status"] == "done"
    assert (shown[1]["sparkEligible"], shown[1]["becameEligible"]) == (1, 1)
    assert shown[1]["unknownUsers"] == 1
    text = run(database_url, "eligibility", "status", "--limit", "1")
    assert text.exit_code == 0
    assert len(text.output.strip().splitlines()) == 1
    assert f"{second['reconcileId']:>6}  manual  done" in text.output
