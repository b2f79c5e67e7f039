from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner, Result

from worker.cli import main


def run(database_url: str, *args: str, **env: str) -> Result:
    # --env-file points nowhere, so a developer's .env cannot leak into the test.
    return CliRunner().invoke(
        main,
        ["--env-file", "/nonexistent/.env", *args],
        env={"DATABASE_URL": database_url, **env},
        catch_exceptions=False,
    )


def run_json(database_url: str, *args: str) -> Any:
    result = run(database_url, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)
