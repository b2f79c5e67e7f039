"""`spark-partner db`: the PostgreSQL schema."""

from __future__ import annotations

import click

from worker.cli.base import database


@click.group()
def db() -> None:
    """The PostgreSQL schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the migrations that are missing (safe to repeat)."""
    from shared.db.migrate import applied_versions, upgrade

    with database() as conn:
        applied = upgrade(conn)
        versions = applied_versions(conn)
    for migration in applied:
        click.echo(f"applied {migration.version:04d}_{migration.name}")
    click.echo(f"schema at version {max(versions, default=0):04d}")
