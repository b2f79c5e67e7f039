"""Running `spark-partner status` against a test's database and Redis."""

from __future__ import annotations

import json
from typing import Any

from tests.worker.cli import run


def status(database_url: str, redis_url: str, **env: str) -> tuple[int, dict[str, Any]]:
    result = run(database_url, "status", "--json", REDIS_URL=redis_url, **env)
    return result.exit_code, json.loads(result.stdout)


def checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in report["checks"]}


def levels(report: dict[str, Any]) -> dict[str, str]:
    return {check["name"]: check["level"] for check in report["checks"]}
