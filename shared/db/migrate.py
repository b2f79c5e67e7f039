"""Numbered plain-SQL migrations, applied in order, each once, each in its own transaction."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from shared.db import Connection

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_FILENAME = re.compile(r"^(\d{4})_(\w+)\.sql$")
# Any constant works; it only has to be the same for every process running migrations.
_LOCK_KEY = 0x5BA2C0DE


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILENAME.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name} is not named NNNN_name.sql")
        migrations.append(Migration(int(match[1]), match[2], path))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise ValueError("two migrations share a version number")
    return migrations


def upgrade(conn: Connection, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply what is missing; safe to run from several processes at once."""
    applied_now: list[Migration] = []
    with conn.transaction():
        # IF NOT EXISTS is not safe against a concurrent CREATE; the lock is.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
    for migration in discover(directory):
        with conn.transaction():
            # Serialise concurrent upgrades; the second one then sees the row and skips.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            done = conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = %s", (migration.version,)
            ).fetchone()
            if done:
                continue
            log.info("applying migration %04d_%s", migration.version, migration.name)
            conn.execute(migration.path.read_text(encoding="utf-8").encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
            applied_now.append(migration)
    return applied_now


def applied_versions(conn: Connection) -> list[int]:
    rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    return [row["version"] for row in rows]
