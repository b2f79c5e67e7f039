"""The `spark-partner` command group and what every command shares."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from shared.config import ConfigError, Settings, load_dotenv_into_environ, load_settings
from shared.db import Connection, connect
from shared.logging import configure_logging

if TYPE_CHECKING:
    from celery import Celery

    from shared.spark_api import SparkClient

NOTIFICATION_TYPES = (
    "PriceCurveCreated",
    "UserEligibilityUpdated",
    "LocationLPCRequested",
    "ResourceLPCRequested",
    "LPCReservationCreated",
)


def handled_types() -> list[str]:
    """The notification types this service has a handler for: what a webhook subscribes to
    by default (a type without one would only be stored as unhandled)."""
    from worker.events.handlers import HANDLERS

    return [name for name in NOTIFICATION_TYPES if name in HANDLERS]


def settings_or_fail() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def worker_app() -> Celery:
    """The Celery app `main` built from this command's settings and made the current app:
    whatever a command queues goes where the workers read."""
    app: Celery = click.get_current_context().find_root().obj
    return app


@contextmanager
def database() -> Iterator[Connection]:
    settings = settings_or_fail()
    try:
        conn = connect(settings.database_url)
    except Exception as exc:
        raise click.ClickException(f"cannot connect to the database: {exc}") from None
    with conn:
        yield conn


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return value


def retry_after_text(seconds: float | None) -> str:
    """ " (Retry-After 3 s)" for an attempt Spark told to wait, else nothing."""
    return "" if seconds is None else f" (Retry-After {seconds:g} s)"


def print_json(value: Any) -> None:
    click.echo(json.dumps(jsonable(value), indent=2, ensure_ascii=False))


@click.group()
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(".env"),
    show_default=True,
    help="Settings file read when present; the environment wins over it.",
)
def main(env_file: Path) -> None:
    """Operate the Spark partner service."""
    load_dotenv_into_environ(env_file)
    # Run inside a program that has set up logging already (a test runner), leave it be: its
    # handlers receive the records, and none is added next to them.
    if not logging.getLogger().handlers:
        try:
            # The root logger keeps its level (WARNING unless set): the commands print their
            # own results, and log lines are for what went wrong.
            configure_logging("cli", level=None)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
    # Settings are checked before any command runs: a deployment with broken settings fails
    # here, naming them, instead of halfway through a command.
    settings = settings_or_fail()
    from worker.celery_app import create_app

    click.get_current_context().obj = create_app(settings)


def spark_client() -> SparkClient:
    from shared.spark_api import SparkClient

    try:
        return SparkClient.from_settings(settings_or_fail())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
