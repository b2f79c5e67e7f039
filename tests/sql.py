"""Checking a statement against the migrated schema without running it."""

from __future__ import annotations

import re
from collections.abc import Sequence

import psycopg


def prepare(database_url: str, sql: str, setup: Sequence[str] = ()) -> None:
    """PREPARE resolves every table, column and type `sql` names: it fails where the schema
    the migrations build is not the one the statement expects. `setup` runs first, on the
    same connection (the temporary tables a statement reads)."""
    params = sorted(set(re.findall(r"%\((\w+)\)s", sql)))
    numbered = re.sub(r"%\((\w+)\)s", lambda m: f"${params.index(m[1]) + 1}", sql)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for statement in setup:
            conn.execute(statement.encode())
        conn.execute(f"PREPARE check_query AS {numbered}".encode())
