"""`spark-partner webhooks register|list|update|enable|disable|delete` against the sandbox."""

from __future__ import annotations

import json

from tests.fixtures.sandbox import SandboxHandle, spark_env
from tests.worker.cli import run

URL = "https://partner.example.com/webhooks/spark"


def test_it_registers_with_a_generated_secret_shown_once_when_none_is_configured(
    database_url: str, sandbox: SandboxHandle
) -> None:
    result = run(database_url, "webhooks", "register", "--url", URL,
                 SPARK_WEBHOOK_SECRETS="", **spark_env(sandbox))  # fmt: skip

    assert result.exit_code == 0, result.output
    [webhook] = sandbox.state.list_webhooks()
    assert webhook.secret is not None
    assert len(webhook.secret) >= 43  # 256 random bits
    assert result.output.splitlines()[-1] == webhook.secret
    listed = run(database_url, "webhooks", "list", "--json", **spark_env(sandbox))
    assert webhook.secret not in listed.output


def test_it_registers_with_the_current_secret_and_prints_none(
    database_url: str, sandbox: SandboxHandle
) -> None:
    result = run(database_url, "webhooks", "register", "--url", URL, "--type", "PriceCurveCreated",
                 SPARK_WEBHOOK_SECRETS="current-one,older-one", **spark_env(sandbox))  # fmt: skip

    assert result.exit_code == 0, result.output
    [webhook] = sandbox.state.list_webhooks()
    assert webhook.secret == "current-one"
    assert webhook.notification_types == ("PriceCurveCreated",)
    assert "current-one" not in result.output


def test_it_updates_disables_enables_and_deletes(database_url: str, sandbox: SandboxHandle) -> None:
    env = spark_env(sandbox)
    webhook_id = sandbox.register_webhook(URL)["webhookId"]

    updated = run(database_url, "webhooks", "update", webhook_id, "--url", URL + "/v2",
                  "--name", "renamed", "--type", "UserEligibilityUpdated", **env)  # fmt: skip
    assert updated.exit_code == 0, updated.output
    current = sandbox.state.get_webhook(webhook_id)
    assert current is not None
    assert (current.url, current.name) == (URL + "/v2", "renamed")
    assert current.notification_types == ("UserEligibilityUpdated",)
    assert current.secret is not None  # PATCH kept it

    assert run(database_url, "webhooks", "disable", webhook_id, **env).exit_code == 0
    [listed] = json.loads(run(database_url, "webhooks", "list", "--json", **env).output)
    assert listed["enabled"] is False
    assert run(database_url, "webhooks", "enable", webhook_id, **env).exit_code == 0
    assert sandbox.state.get_webhook(webhook_id).enabled is True  # type: ignore[union-attr]

    unsure = run(database_url, "webhooks", "delete", webhook_id, **env)
    assert unsure.exit_code == 1
    assert "--yes" in unsure.output
    assert sandbox.state.get_webhook(webhook_id) is not None
    assert run(database_url, "webhooks", "delete", webhook_id, "--yes", **env).exit_code == 0
    assert sandbox.state.get_webhook(webhook_id) is None

    missing = run(database_url, "webhooks", "enable", webhook_id, **env)
    assert missing.exit_code == 1
    assert "404" in missing.output


def test_it_refuses_an_update_with_nothing_to_change(
    database_url: str, sandbox: SandboxHandle
) -> None:
    result = run(database_url, "webhooks", "update", "some-id", **spark_env(sandbox))

    assert result.exit_code == 2
    assert "give at least one of --url, --type, --name" in result.output
