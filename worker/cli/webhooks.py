"""`spark-partner webhooks`: our webhooks at Spark, their secret, and Spark's delivery log."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import click

from shared.config import Settings
from shared.db import Connection
from shared.spark_api import SparkError
from shared.webhook_secrets import write_secrets_file
from worker.cli.base import (
    NOTIFICATION_TYPES,
    database,
    handled_types,
    print_json,
    settings_or_fail,
    spark_client,
)

# The ops mark that remembers where a secret rotation stands (begun, activated, finished).
ROTATION_MARK = "webhook_secret_rotation"
# How long the old secret stays accepted after Spark was given the new one: notifications
# Spark signed before the switch may still be retried (three retries, backoff undocumented).
DEFAULT_OVERLAP = "1h"


def new_secret() -> str:
    """256 random bits, URL-safe (no comma: the secrets are a comma-separated list)."""
    return secrets.token_urlsafe(32)


@click.group()
def webhooks() -> None:
    """Webhook registrations at Spark, secret rotation, and Spark's delivery log."""


@contextmanager
def _spark_call(what: str) -> Iterator[None]:
    """Turn a failed Spark call into a clear message and exit status 1."""
    try:
        yield
    except SparkError as exc:
        raise click.ClickException(f"{what}: {exc}") from None


@webhooks.command("register")
@click.option("--url", required=True, help="Public URL of this ingress's /webhooks/spark.")
@click.option(
    "--type",
    "types",
    multiple=True,
    type=click.Choice(NOTIFICATION_TYPES),
    help="Notification types (default: every type this service handles).",
)
@click.option("--name", default="spark-partner", show_default=True)
@click.option(
    "--new-secret",
    "generate",
    is_flag=True,
    help="Generate a new secret for this webhook instead of using the current one.",
)
def webhooks_register(url: str, types: tuple[str, ...], name: str, generate: bool) -> None:
    """Register URL at Spark, signed with the current secret of SPARK_WEBHOOK_SECRETS.

    With no secret configured (or with --new-secret) a strong one is generated and printed
    once: add it to SPARK_WEBHOOK_SECRETS (or its file) so the ingress accepts it.
    """
    settings = settings_or_fail()
    generated = generate or not settings.webhook_secrets
    secret = new_secret() if generated else settings.webhook_secrets[0].decode()
    with spark_client() as client, _spark_call("registering the webhook"):
        created = client.register_webhook(url, secret, list(types or handled_types()), name=name)
    click.echo(f"registered webhook {created.get('webhookId')} → {created.get('webhookUrl')}")
    if generated:
        click.echo(
            "Its secret, shown only now; the ingress accepts it once it is in "
            "SPARK_WEBHOOK_SECRETS (or SPARK_WEBHOOK_SECRETS_FILE):"
        )
        click.echo(secret)


@webhooks.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def webhooks_list(as_json: bool) -> None:
    """Webhooks registered at Spark, with their health."""
    with spark_client() as client, _spark_call("listing webhooks"):
        items = client.list_webhooks()
    if as_json:
        print_json(items)
        return
    for item in items:
        _echo_webhook(item)


def _echo_webhook(item: dict[str, Any]) -> None:
    click.echo(
        f"{item.get('webhookId')}  {item.get('webhookUrl')}  enabled={item.get('enabled')} "
        f"status={item.get('status')} types={','.join(item.get('notificationTypes') or [])}"
        f" name={item.get('name')}"
    )


@webhooks.command("update")
@click.argument("webhook_id")
@click.option("--url", help="New URL.")
@click.option(
    "--type",
    "types",
    multiple=True,
    type=click.Choice(NOTIFICATION_TYPES),
    help="Replace the notification types (repeat for several).",
)
@click.option("--name", help="New name.")
def webhooks_update(
    webhook_id: str, url: str | None, types: tuple[str, ...], name: str | None
) -> None:
    """Change a webhook's URL, notification types or name (the rest stays)."""
    changes: dict[str, Any] = {}
    if url:
        changes["webhookUrl"] = url
    if types:
        changes["notificationTypes"] = list(types)
    if name:
        changes["name"] = name
    if not changes:
        raise click.UsageError("give at least one of --url, --type, --name")
    with spark_client() as client, _spark_call(f"updating webhook {webhook_id}"):
        _echo_webhook(client.patch_webhook(webhook_id, changes))


@webhooks.command("enable")
@click.argument("webhook_id")
def webhooks_enable(webhook_id: str) -> None:
    """Let Spark deliver to this webhook again."""
    with spark_client() as client, _spark_call(f"enabling webhook {webhook_id}"):
        client.set_webhook_enabled(webhook_id, True)
    click.echo(f"webhook {webhook_id} enabled")


@webhooks.command("disable")
@click.argument("webhook_id")
def webhooks_disable(webhook_id: str) -> None:
    """Stop Spark delivering to this webhook (events still arrive through the backfill)."""
    with spark_client() as client, _spark_call(f"disabling webhook {webhook_id}"):
        client.set_webhook_enabled(webhook_id, False)
    click.echo(f"webhook {webhook_id} disabled; events now arrive through the backfill only")


@webhooks.command("delete")
@click.argument("webhook_id")
@click.option("--yes", is_flag=True, help="Really delete it.")
def webhooks_delete(webhook_id: str, yes: bool) -> None:
    """Delete a webhook at Spark. Without --yes, only says what that means and exits 1."""
    if not yes:
        click.echo(
            f"Deleting webhook {webhook_id} stops Spark's deliveries to it for good; events "
            "then arrive only through the backfill (every 15 minutes). Run again with --yes."
        )
        raise SystemExit(1)
    with spark_client() as client, _spark_call(f"deleting webhook {webhook_id}"):
        client.delete_webhook(webhook_id)
    click.echo(f"webhook {webhook_id} deleted")


@webhooks.command("check-deliveries")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def webhooks_check_deliveries(as_json: bool) -> None:
    """Run the delivery-log check now: Spark's view of our webhooks, and every event Spark's
    log names that the inbox lacks fetched and queued. Exit 1 when a webhook is unhealthy
    or Spark could not be asked."""
    from worker.webhooks.delivery_log import check_delivery_log
    from worker.webhooks.tasks import enqueue_polled

    settings = settings_or_fail()
    with spark_client() as client:
        result = check_delivery_log(client, settings.database_url, enqueue=enqueue_polled)
    if as_json:
        print_json(asdict(result))
    else:
        click.echo(
            f"webhooks {result.webhooks} (healthy: {result.webhook_healthy}); "
            f"notifications read {result.notifications}, failed {result.failed} "
            f"(timed out {result.timed_out}); missing {result.missing}, recovered "
            f"{result.recovered}, gone from Spark {result.not_found}"
        )
        for webhook in result.unhealthy_webhooks:
            click.echo(
                f"  unhealthy: {webhook['webhookId']} {webhook['webhookUrl']} "
                f"status={webhook['status']} enabled={webhook['enabled']}"
            )
        if result.error:
            click.echo(f"  error: {result.error}")
    if result.error or result.webhook_healthy is False:
        raise SystemExit(1)


# -- secret rotation ------------------------------------------------------------------------


@webhooks.group("rotate-secret")
def rotate_secret() -> None:
    """Change the webhook secret with no moment where Spark signs with a secret the ingress
    does not accept: `begin` (the ingress accepts old and new), `activate` (Spark signs with
    the new), then after the overlap `finish` (the old one is no longer accepted)."""


def _rotation_phase(conn: Connection) -> tuple[str | None, Any]:
    from worker.ops.marks import marks

    current = marks(conn).get(ROTATION_MARK)
    conn.commit()
    if current is None or not current.detail:
        return None, None
    return str(current.detail.get("phase")), current.at


def _record_phase(conn: Connection, phase: str) -> None:
    from worker.ops.marks import mark

    with conn.transaction():
        mark(conn, ROTATION_MARK, detail={"phase": phase})


def _store(settings: Settings, secrets_now: tuple[bytes, ...], what: str) -> None:
    """Write the accepted set where the ingress reads it, or say how to set it by hand."""
    if settings.webhook_secrets_file is not None:
        write_secrets_file(settings.webhook_secrets_file, secrets_now)
        click.echo(
            f"{settings.webhook_secrets_file}: {what}. A running ingress re-reads it within "
            "a second."
        )
        return
    click.echo(
        f"SPARK_WEBHOOK_SECRETS comes from the environment, so set it yourself ({what}), "
        "in this order, and restart the ingress:"
    )
    click.echo("SPARK_WEBHOOK_SECRETS=" + ",".join(s.decode() for s in secrets_now))


@rotate_secret.command("begin")
def rotate_begin() -> None:
    """Step 1: generate the new secret and add it to the accepted set, after the current one."""
    settings = settings_or_fail()
    current = settings.webhook_secrets
    if len(current) != 1:
        raise click.ClickException(
            f"SPARK_WEBHOOK_SECRETS holds {len(current)} secrets; a rotation starts from "
            "exactly one (finish or undo the last rotation first)"
        )
    fresh = new_secret().encode()
    _store(settings, (current[0], fresh), "the current secret and the new one are accepted")
    with database() as conn:
        _record_phase(conn, "begun")
    click.echo("Next, once the ingress accepts both: spark-partner webhooks rotate-secret activate")


@rotate_secret.command("activate")
@click.option(
    "--webhook",
    "webhook_ids",
    multiple=True,
    help="Only these webhooks (default: every webhook registered at Spark).",
)
def rotate_activate(webhook_ids: tuple[str, ...]) -> None:
    """Step 2: give Spark the new secret (PATCH /webhooks/{id}); the new one becomes current."""
    settings = settings_or_fail()
    accepted = settings.webhook_secrets
    with database() as conn:
        phase, _ = _rotation_phase(conn)
        if phase != "begun" or len(accepted) != 2:
            raise click.ClickException(
                "no rotation to activate: run `rotate-secret begin` first (it leaves two "
                f"secrets accepted; now {len(accepted)}, rotation {phase or 'never begun'})"
            )
        old, fresh = accepted
        with spark_client() as client, _spark_call("giving Spark the new secret"):
            targets = list(webhook_ids) or [
                str(w["webhookId"]) for w in client.list_webhooks() if w.get("webhookId")
            ]
            if not targets:
                raise click.ClickException("no webhook is registered at Spark")
            for webhook_id in targets:
                client.patch_webhook(webhook_id, {"webhookSecret": fresh.decode()})
                click.echo(f"webhook {webhook_id}: Spark now signs with the new secret")
        _store(settings, (fresh, old), "the new secret is current, the old one still accepted")
        _record_phase(conn, "activated")
    click.echo(
        f"Keep both accepted for the overlap ({DEFAULT_OVERLAP} by default: Spark may still "
        "retry notifications signed with the old one), then: "
        "spark-partner webhooks rotate-secret finish"
    )


@rotate_secret.command("finish")
@click.option(
    "--overlap",
    default=DEFAULT_OVERLAP,
    show_default=True,
    help="How long after `activate` the old secret must stay accepted (3600, 90m, 1h).",
)
def rotate_finish(overlap: str) -> None:
    """Step 3: after the overlap, accept only the current secret.

    Run after `begin` without `activate`, it abandons the rotation: the new secret, never
    given to Spark, is dropped and the old one stays.
    """
    from shared.config import ConfigError, Env
    from shared.timeutil import utcnow

    try:
        wait = Env({"OVERLAP": overlap}).duration("OVERLAP", timedelta(hours=1))
    except ConfigError as exc:
        raise click.BadParameter(str(exc).replace("OVERLAP", "--overlap")) from None
    settings = settings_or_fail()
    accepted = settings.webhook_secrets
    if len(accepted) < 2:
        raise click.ClickException("only one secret is accepted: no rotation to finish")
    with database() as conn:
        phase, since = _rotation_phase(conn)
        if phase == "activated" and since is not None:
            left = since + wait - utcnow()
            if left > timedelta(0):
                raise click.ClickException(
                    f"the new secret was given to Spark {since:%Y-%m-%d %H:%M:%S} UTC; keep the "
                    f"old one accepted for {int(left.total_seconds())} s more (or --overlap)"
                )
        _store(settings, accepted[:1], "only the current secret is accepted")
        _record_phase(conn, "finished" if phase == "activated" else "abandoned")
