from __future__ import annotations

from shared.db import connect
from shared.db.migrate import applied_versions, discover
from tests.worker.cli import run


def test_it_upgrades_an_empty_database_and_says_so(empty_database_url: str) -> None:
    first = run(empty_database_url, "db", "upgrade")
    second = run(empty_database_url, "db", "upgrade")

    assert first.exit_code == 0, first.output
    assert "applied 0001_inbox" in first.output
    assert second.exit_code == 0
    assert "applied" not in second.output
    latest = max(m.version for m in discover())
    assert f"schema at version {latest:04d}" in second.output
    with connect(empty_database_url) as conn:
        assert applied_versions(conn)[-1] == latest


def test_it_fails_clearly_when_the_database_is_unreachable() -> None:
    result = run("postgresql://postgres@127.0.0.1:1/none?connect_timeout=1", "db", "upgrade")
    assert result.exit_code == 1
    assert "cannot connect to the database" in result.output
