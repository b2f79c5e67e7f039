"""`spark-partner webhooks`: registrations at Spark."""

from __future__ import annotations

import click

from worker.cli.base import NOTIFICATION_TYPES, print_json, settings_or_fail, spark_client


@click.group()
def webhooks() -> None:
    """Webhook registrations at Spark."""


@webhooks.command("register")
@click.option("--url", required=True, help="Public URL of this ingress's /webhooks/spark.")
@click.option(
    "--type",
    "types",
    multiple=True,
    type=click.Choice(NOTIFICATION_TYPES),
    help="Notification types (default: all).",
)
@click.option("--name", default="spark-partner", show_default=True)
def webhooks_register(url: str, types: tuple[str, ...], name: str) -> None:
    """Register URL at Spark, signed with the current secret of SPARK_WEBHOOK_SECRETS."""
    settings = settings_or_fail()
    if not settings.webhook_secrets:
        raise click.ClickException("SPARK_WEBHOOK_SECRETS is empty: Spark would sign nothing")
    with spark_client() as client:
        created = client.register_webhook(
            url, settings.webhook_secrets[0].decode(), list(types or NOTIFICATION_TYPES), name=name
        )
    click.echo(f"registered webhook {created.get('webhookId')} → {created.get('webhookUrl')}")


@webhooks.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def webhooks_list(as_json: bool) -> None:
    """Webhooks registered at Spark, with their health."""
    with spark_client() as client:
        items = client.list_webhooks()
    if as_json:
        print_json(items)
        return
    for item in items:
        click.echo(
            f"{item.get('webhookId')}  {item.get('webhookUrl')}  enabled={item.get('enabled')} "
            f"status={item.get('status')} types={','.join(item.get('notificationTypes') or [])}"
        )
