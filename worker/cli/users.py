"""`spark-partner users`: the registry of users, locations and resources, and its Spark side."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from shared.config import Settings
from shared.db import Connection, fetch_one
from shared.spark_api import SparkError
from shared.timeutil import parse_spark_datetime, utcnow
from worker.cli.base import database, jsonable, print_json, settings_or_fail, spark_client

if TYPE_CHECKING:
    # click's progress bar type is not exported; only the annotation needs it.
    from click._termui_impl import ProgressBar

    from worker.users.importer import ImportReport

# Files at least this large show their progress on stderr.
LARGE_FILE_BYTES = 1024 * 1024


@click.group()
def users() -> None:
    """The partner's users, their locations and resources, and their life at Spark."""


# import and sync


@users.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--sync/--no-sync", default=True, show_default=True, help="Push to Spark after.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def users_import(file: Path, sync: bool, as_json: bool) -> None:
    """Import users, locations and resources from FILE (.csv or .json), then push to Spark.

    Bad rows are reported with their row numbers and left out; the rest is imported.
    Importing the same file again changes nothing. The formats are described in
    worker/users/import_formats.py.
    """
    from worker.users.import_formats import ImportFormatError
    from worker.users.importer import ImportBusy, import_path

    settings = settings_or_fail()
    size = file.stat().st_size
    progress = _Progress(file.name, size) if size >= LARGE_FILE_BYTES else None
    with database() as conn:
        try:
            report = import_path(
                conn,
                file,
                on_read=progress.read if progress else None,
                on_batch=progress.saved if progress else None,
            )
        except ImportFormatError as exc:
            raise click.ClickException(f"{file.name}: {exc}") from None
        except ImportBusy as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            if progress:
                progress.close()
        outcome: dict[str, Any] = {"import": report.to_json(), "sync": None, "enrollment": []}
        failed = report.error_count > 0
        if sync and settings.spark_configured:
            sync_json, enrolled, sync_failed = _sync_after_import(conn, settings, report.to_enroll)
            outcome["sync"] = sync_json
            outcome["enrollment"] = enrolled
            failed = failed or sync_failed
    if as_json:
        print_json(outcome)
    else:
        _echo_import(file, report, outcome)
        if sync and not settings.spark_configured:
            click.echo("not synced: no Spark API configured (the worker syncs every 5 minutes)")
    if failed:
        sys.exit(1)


def _sync_after_import(
    conn: Connection, settings: Settings, to_enroll: list[str]
) -> tuple[dict[str, Any], list[dict[str, Any]], bool]:
    from worker.users.enrollment import auto_enroll
    from worker.users.sync import sync_registry

    with spark_client() as client:
        report = sync_registry(conn, client)
        enrolled: list[dict[str, Any]] = []
        # A sync already running (beat's) pushes this import's rows too: not a failure.
        failed = report.aborted is not None or report.failed > 0
        if report.aborted is None and to_enroll:
            try:
                results = auto_enroll(conn, client, to_enroll, policy=settings.auto_enroll)
            except SparkError as exc:
                raise click.ClickException(f"enrollment stopped: {exc}") from None
            enrolled = [result.to_json() for result in results]
            failed = failed or any(not result.ok for result in results)
    return report.to_json(), enrolled, failed


def _echo_import(file: Path, report: ImportReport, outcome: dict[str, Any]) -> None:
    click.echo(f"read {report.rows} row(s) from {file.name}")
    for name, counts in (
        ("users", report.users),
        ("locations", report.locations),
        ("resources", report.resources),
    ):
        click.echo(
            f"  {name + ':':<11} {counts.inserted} new, {counts.updated} changed, "
            f"{counts.unchanged} unchanged"
        )
    if report.error_count:
        click.echo(f"{report.error_count} bad row(s), not imported:")
        for error in report.errors:
            click.echo(f"  row {error.row}: {error.message}")
        if report.error_count > len(report.errors):
            click.echo(f"  ... and {report.error_count - len(report.errors)} more")
    for warning in report.warnings():
        click.echo(f"warning: {warning}", err=True)
    if outcome["sync"] is not None:
        _echo_sync(outcome["sync"])
    for result in outcome["enrollment"]:
        click.echo(_enrollment_line(result))


class _Progress:
    """A large import's progress on stderr: a bar on a terminal, a line per tenth otherwise
    (logs of a `kubectl exec` or a cron job still show how far it got)."""

    def __init__(self, name: str, size: int) -> None:
        self._name = name
        self._size = size
        self._stream = sys.stderr
        self._tty = sys.stderr.isatty()
        self._stack = ExitStack()
        self._bar: ProgressBar[int] | None = None
        self._label = ""
        self._done = 0
        self._tenths = 0

    def read(self, position: int) -> None:
        self._show(f"reading {self._name}", position, self._size)

    def saved(self, done: int, total: int) -> None:
        self._show("saving to the registry", done, total)

    def close(self) -> None:
        self._stack.close()

    def _show(self, label: str, done: int, total: int) -> None:
        if label != self._label:
            self.close()
            self._stack = ExitStack()
            self._label, self._done, self._tenths = label, 0, 0
            self._bar = None
            if self._tty:
                self._bar = self._stack.enter_context(
                    click.progressbar(length=total, label=label, file=self._stream)
                )
        if self._bar is not None:
            self._bar.update(done - self._done)
        else:
            tenths = min(10, done * 10 // total) if total else 10
            if tenths > self._tenths:
                self._tenths = tenths
                click.echo(f"{label}: {tenths * 10}%", err=True)
        self._done = done


@users.command("sync")
@click.option("--retry-errors", is_flag=True, help="Also retry rows whose last push Spark refused.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def users_sync(retry_errors: bool, as_json: bool) -> None:
    """Push to Spark what the registry has and Spark lacks (safe to repeat)."""
    from worker.users.sync import sync_registry

    with database() as conn, spark_client() as client:
        report = sync_registry(conn, client, retry_errors=retry_errors)
    if as_json:
        print_json(report.to_json())
    else:
        _echo_sync(report.to_json())
    if not report.complete or report.failed:
        sys.exit(1)


def _echo_sync(report: dict[str, Any]) -> None:
    if report["busy"]:
        click.echo("sync: another sync is running; nothing done")
        return
    click.echo(
        f"sync: pushed {report['users']} user(s), {report['locations']} location(s), "
        f"{report['resources']} resource(s); {report['failed']} failed"
    )
    for error in report["errors"]:
        click.echo(f"  {error}")
    if report["aborted"]:
        click.echo(f"sync stopped: {report['aborted']}")


# reading


@users.command("list")
@click.option("--eligible", is_flag=True, help="Only users Spark finds eligible.")
@click.option("--enrolled", is_flag=True, help="Only users enrolled in the Spark program.")
@click.option("--pending-deletion", is_flag=True, help="Only users scheduled for deletion.")
@click.option("--include-deleted", is_flag=True, help="Also users deleted already.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (an array, by userId).")
def users_list(
    eligible: bool, enrolled: bool, pending_deletion: bool, include_deleted: bool, as_json: bool
) -> None:
    """Users in the registry, by id."""
    from worker.users.registry import UserFilter, iter_users

    which = UserFilter(eligible, enrolled, pending_deletion, include_deleted)
    with database() as conn:
        items = iter_users(conn, which)
        if as_json:
            _stream_json_array(items)
        else:
            _echo_user_table(items)


def _stream_json_array(items: Iterator[dict[str, Any]]) -> None:
    """One object per line, written as read: the list may hold a million users."""
    count = 0
    for item in items:
        click.echo(("[\n" if count == 0 else ",\n") + _compact(item), nl=False)
        count += 1
    click.echo("\n]" if count else "[]")


def _compact(value: Any) -> str:
    return json.dumps(jsonable(value), ensure_ascii=False, separators=(", ", ": "))


def _echo_user_table(items: Iterator[dict[str, Any]]) -> None:
    count = 0
    for item in items:
        if count == 0:
            click.echo(f"{'USER':<36} {'ELIGIBLE':<8} {'ENROLLED':<8} {'CONSENTED':<9} NOTES")
        count += 1
        click.echo(
            f"{item['userId']:<36} {_yes(item['eligible']):<8} {_yes(item['enrolled']):<8} "
            f"{_yes(item['consented']):<9} {_notes(item)}".rstrip()
        )
    if count == 0:
        click.echo("no users")


def _notes(item: dict[str, Any]) -> str:
    notes = []
    if item["deleted"]:
        notes.append("deleted")
    elif item["pendingDeletion"]:
        notes.append(f"pending deletion after {item['deleteAfterMonth']}")
    if not item["knownLocally"]:
        notes.append("not imported (listed by Spark)")
    elif item["syncError"]:
        notes.append("sync failed")
    elif not item["synced"]:
        notes.append("not synced yet")
    return "; ".join(notes)


def _yes(value: bool) -> str:
    return "yes" if value else "no"


@users.command("show")
@click.argument("user_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def users_show(user_id: str, as_json: bool) -> None:
    """One user: locations, resources, enrollment, eligibility history, warnings."""
    from worker.users.registry import user_detail

    with database() as conn:
        detail = user_detail(conn, user_id)
    if detail is None:
        raise click.ClickException(f"no user {user_id} in the registry")
    if as_json:
        print_json(detail)
        return
    user, enrollment = detail["user"], detail["enrollment"]
    click.echo(f"user {user['userId']}")
    for key in ("consented", "knownLocally", "eligible", "syncedAt", "deleteAfterMonth"):
        click.echo(f"  {key}: {jsonable(user[key])}")
    enrolled = f"  enrolled: {_yes(enrollment['enrolled'])}"
    if enrollment["enrolled"] and enrollment["enrolledAt"]:
        enrolled += f" ({enrollment['enrollmentId']} since {enrollment['enrolledAt']:%Y-%m-%d})"
    click.echo(enrolled)
    click.echo(f"locations: {len(detail['locations'])}")
    for location in detail["locations"]:
        mpids = ", ".join(location["meterPointIds"]) or "no MPID"
        click.echo(f"  {location['locationId']} ({location['locationType']}): {mpids}")
        for resource in detail["resources"]:
            if resource["locationId"] == location["locationId"]:
                click.echo(f"    {resource['resourceId']} ({resource['resourceType']})")
    vehicles = [r for r in detail["resources"] if r["locationId"] is None]
    if vehicles:
        click.echo("vehicles: " + ", ".join(v["resourceId"] for v in vehicles))
    click.echo(f"eligibility changes: {len(detail['eligibilityTransitions'])}")
    for change in detail["eligibilityTransitions"]:
        became = "became eligible" if change["becameEligible"] else "lost eligibility"
        click.echo(f"  {change['at']:%Y-%m-%d %H:%M:%S}Z {became} ({change['reason']})")
    for warning in detail["warnings"]:
        click.echo(f"warning: {warning}")


# enrollment


@users.command("enroll")
@click.argument("user_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def users_enroll(user_id: str, as_json: bool) -> None:
    """Enroll USER_ID in the Spark program (safe to repeat)."""
    from worker.users.enrollment import enroll_user

    with database() as conn:
        user = _existing_user(conn, user_id)
        if not user["eligible"]:
            click.echo(
                f"warning: user {user_id} is not eligible (as of the last reconcile): "
                "Spark sends it no price curves, and it earns nothing, until it is",
                err=True,
            )
        if not user["consented"]:
            click.echo(f"warning: user {user_id} has not consented", err=True)
        with spark_client() as client:
            try:
                result = enroll_user(conn, client, user_id)
            except SparkError as exc:
                raise click.ClickException(str(exc)) from None
    _echo_enrollment(result.to_json(), as_json)
    if not result.ok:
        sys.exit(1)


@users.command("unenroll")
@click.argument("user_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def users_unenroll(user_id: str, as_json: bool) -> None:
    """Take USER_ID out of the Spark program (safe to repeat)."""
    from worker.users.enrollment import unenroll_user

    with database() as conn:
        _existing_user(conn, user_id)
        with spark_client() as client:
            try:
                result = unenroll_user(conn, client, user_id)
            except SparkError as exc:
                raise click.ClickException(str(exc)) from None
    _echo_enrollment(result.to_json(), as_json)
    if not result.ok:
        sys.exit(1)


def _existing_user(conn: Connection, user_id: str) -> dict[str, Any]:
    with conn.transaction():
        user = fetch_one(conn, "get_user", {"user_id": user_id})
    if user is None:
        raise click.ClickException(f"no user {user_id} in the registry")
    if user["deleted_at"] is not None:
        raise click.ClickException(f"user {user_id} was deleted on {user['deleted_at']:%Y-%m-%d}")
    return dict(user)


def _echo_enrollment(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(result)
    else:
        click.echo(_enrollment_line(result))


def _enrollment_line(result: dict[str, Any]) -> str:
    if result["outcome"] == "failed":
        return f"{result['userId']}: enrollment change failed: {result['error']}"
    if result["outcome"] == "enrolled":
        return f"{result['userId']}: enrolled (enrollment {result['enrollmentId']})"
    return f"{result['userId']}: {result['outcome']}"


# deletion


@users.command("delete")
@click.argument("user_id")
@click.option("--yes", is_flag=True, help="Really do it; without it nothing changes.")
@click.option(
    "--at-month-end",
    is_flag=True,
    help="Delete once the current month is over at Spark (its deadline in the user's price "
    "areas and in UTC, plus the grace) and its reports are sent, not now.",
)
@click.option("--cancel", is_flag=True, help="Cancel a deletion scheduled with --at-month-end.")
@click.option("--now", "now_text", hidden=True, help="The time to act as (ISO 8601), for tests.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def users_delete(
    *,
    user_id: str,
    yes: bool,
    at_month_end: bool,
    cancel: bool,
    now_text: str | None,
    as_json: bool,
) -> None:
    """Delete USER_ID at Spark and in the registry, after saying what is lost.

    A user deleted during a month is not compensated for that month. Without --yes this only
    explains that and exits with status 1.
    """
    from worker.users.deletion import (
        cancel_deletion,
        delete_user,
        month_name,
        plan_deletion,
        schedule_deletion,
    )

    settings = settings_or_fail()
    now = parse_spark_datetime(now_text) if now_text else utcnow()
    with database() as conn:
        _existing_user(conn, user_id)
        if cancel:
            cancelled = cancel_deletion(conn, user_id)
            said = "deletion cancelled" if cancelled else "no deletion was scheduled"
            answer = {"userId": user_id, "cancelled": cancelled}
            _echo_outcome(as_json, answer, f"{user_id}: {said}")
            return
        plan = plan_deletion(
            conn, user_id, now=now, tz=settings.timezone, at_month_end=at_month_end
        )
        outcome: dict[str, Any] = {**plan.to_json(), "changed": False}
        if not yes:
            lines = [*plan.explain(), "Nothing was changed: repeat with --yes to go ahead."]
            _echo_outcome(as_json, outcome, "\n".join(lines))
            sys.exit(1)
        if at_month_end:
            month = schedule_deletion(conn, user_id, now=now, tz=settings.timezone)
            outcome.update(changed=True, deleteAfterMonth=f"{month:%Y-%m}")
            lines = [*plan.explain(), f"{user_id}: pending deletion after {month_name(month)}"]
            _echo_outcome(as_json, outcome, "\n".join(lines))
            return
        with spark_client() as client:
            try:
                result = delete_user(conn, client, user_id, now=now)
            except SparkError as exc:
                raise click.ClickException(f"not deleted: {exc}") from None
    outcome.update(changed=result.outcome == "deleted", result=result.to_json())
    if result.outcome != "deleted":
        _echo_outcome(as_json, outcome, f"{user_id}: not deleted: {result.error}")
        sys.exit(1)
    _echo_outcome(as_json, outcome, "\n".join([*plan.explain(), f"{user_id}: deleted"]))


def _echo_outcome(as_json: bool, value: dict[str, Any], text: str) -> None:
    if as_json:
        print_json(value)
    else:
        click.echo(text)
