from __future__ import annotations

import threading
from pathlib import Path

import pytest

from shared.db import connect
from shared.db.migrate import MIGRATIONS_DIR, applied_versions, discover, upgrade
from shared.db.queries import QUERIES, parse_queries
from tests.sql import prepare


def test_it_applies_every_migration_once_and_is_idempotent(empty_database_url: str) -> None:
    with connect(empty_database_url) as conn:
        first = upgrade(conn)
        second = upgrade(conn)
        versions = applied_versions(conn)

    assert [m.version for m in first] == [m.version for m in discover()]
    assert second == []
    assert versions == [m.version for m in discover()]


def test_it_serialises_concurrent_upgrades(empty_database_url: str) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with connect(empty_database_url) as conn:
                upgrade(conn)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    with connect(empty_database_url) as conn:
        assert applied_versions(conn) == [m.version for m in discover()]


# Statements that make the temporary tables others read: run, not prepared, before those.
TEMPORARY_TABLES = {"incoming_readings": "create_incoming_readings"}


@pytest.mark.parametrize("name", sorted(set(QUERIES) - set(TEMPORARY_TABLES.values())))
def test_it_has_a_migrated_schema_that_every_named_query_fits(database_url: str, name: str) -> None:
    sql = QUERIES[name]
    setup = [QUERIES[create] for table, create in TEMPORARY_TABLES.items() if table in sql]
    prepare(database_url, sql, setup)


def test_it_names_migrations_in_order_with_unique_numbers() -> None:
    # Gaps are allowed: numbers are reserved for work landing in parallel.
    versions = [m.version for m in discover()]
    assert versions == sorted(set(versions))
    assert versions[0] == 1


def test_it_refuses_a_badly_named_migration(tmp_path: Path) -> None:
    (tmp_path / "1_oops.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match="NNNN_name"):
        discover(tmp_path)


def test_it_refuses_a_query_defined_twice() -> None:
    with pytest.raises(ValueError, match="defined twice"):
        parse_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n")


def test_it_ships_migrations_inside_the_package() -> None:
    assert MIGRATIONS_DIR.is_relative_to(Path(__file__).resolve().parents[2] / "shared")
