"""`/webhooks`: registration, enabling, and the notification logs of deliveries."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, request

from sandbox.core import current_sandbox
from sandbox.parsing import paging, read_json
from sandbox.paths import API_PREFIX
from sandbox.responses import (
    VALIDATION_TITLE,
    Reject,
    bad_problem,
    empty_response,
    json_response,
    pagination,
    problem_response,
    reject_problem,
    string_response,
)
from sandbox.state import NOTIFICATION_TYPES, JSONObject, Webhook

NOTIFICATION_TYPE_VALUES = ("Unknown", *NOTIFICATION_TYPES.values())

webhooks = Blueprint("webhooks", __name__, url_prefix=API_PREFIX)


@webhooks.get("/webhooks")
def list_webhooks() -> Response:
    registered = current_sandbox().state.list_webhooks()
    return json_response(200, {"webhooks": [w.to_api() for w in registered]})


@webhooks.post("/webhooks")
def create_webhook() -> Response:
    sandbox = current_sandbox()
    fields = _webhook_fields(read_json(required=True, bad=bad_problem), mode="post")
    now = sandbox.clock.now()
    webhook = Webhook(
        webhook_id=str(uuid.uuid4()),
        url=fields["webhookUrl"],
        secret=fields.get("webhookSecret"),
        name=fields.get("name"),
        notification_types=tuple(fields.get("notificationTypes") or ()),
        enabled=True,
        status="New",
        created=now,
        modified=now,
        last_analyzed=now,
    )
    sandbox.state.add_webhook(webhook)
    return json_response(201, webhook.to_api())


@webhooks.get("/webhooks/<webhook_id>")
def get_webhook(webhook_id: str) -> Response:
    webhook = current_sandbox().state.get_webhook(webhook_id)
    if webhook is None:
        return empty_response(404)
    return json_response(200, webhook.to_api())


@webhooks.put("/webhooks/<webhook_id>")
def put_webhook(webhook_id: str) -> Response:
    fields = _webhook_fields(read_json(required=True, bad=bad_problem), mode="put")
    # A PUT replaces what it can express. The secret is kept when not given: it cannot be
    # read back, so a client may legitimately not have it at hand.
    secret = fields.get("webhookSecret")
    enabled = fields.get("enabled")
    return _update_webhook(
        webhook_id,
        lambda current: replace(
            current,
            url=fields["webhookUrl"],
            secret=current.secret if secret is None else secret,
            name=fields.get("name"),
            notification_types=tuple(fields.get("notificationTypes") or ()),
            enabled=True if enabled is None else enabled,
        ),
    )


@webhooks.patch("/webhooks/<webhook_id>")
def patch_webhook(webhook_id: str) -> Response:
    fields = _webhook_fields(read_json(required=True, bad=bad_problem), mode="patch")
    names = {
        "webhookUrl": "url",
        "webhookSecret": "secret",
        "name": "name",
        "notificationTypes": "notification_types",
        "enabled": "enabled",
    }
    changes = {attr: fields[key] for key, attr in names.items() if fields.get(key) is not None}
    if "notification_types" in changes:
        changes["notification_types"] = tuple(changes["notification_types"])
    return _update_webhook(webhook_id, lambda current: replace(current, **changes))


def _update_webhook(webhook_id: str, change: Callable[[Webhook], Webhook]) -> Response:
    sandbox = current_sandbox()
    current = sandbox.state.get_webhook(webhook_id)
    if current is None:
        return empty_response(404)
    updated = replace(change(current), modified=sandbox.clock.now())
    if not sandbox.state.replace_webhook(updated):
        return empty_response(404)
    return json_response(200, updated.to_api())


@webhooks.delete("/webhooks/<webhook_id>")
def delete_webhook(webhook_id: str) -> Response:
    if not current_sandbox().state.delete_webhook(webhook_id):
        return string_response(404, f"Webhook {webhook_id} was not found.")
    return empty_response(204)


@webhooks.put("/webhooks/<webhook_id>/enabled")
def set_webhook_enabled(webhook_id: str) -> Response:
    raw = (request.args.get("enabled") or "").lower()
    if raw not in {"true", "false"}:
        reject_problem("enabled", "The enabled query parameter must be true or false.")
    response = _update_webhook(webhook_id, lambda current: replace(current, enabled=raw == "true"))
    return response if response.status_code == 404 else empty_response(204)


@webhooks.get("/webhooks/logs")
def webhook_logs() -> Response:
    state = current_sandbox().state
    page, page_size = paging()
    logs = state.notification_logs(request.args.get("webhookId") or None)
    chunk = logs[(page - 1) * page_size : page * page_size]
    body = {
        "webhookNotificationLogs": [a.to_api_log(state.tenant_id) for a in chunk],
        "pagination": pagination(len(logs), page, page_size),
    }
    return json_response(200, body)


@webhooks.get("/webhooks/logs/<notification_id>")
def webhook_log(notification_id: str) -> Response:
    state = current_sandbox().state
    attempt = state.latest_attempt(notification_id)
    if attempt is None:
        # The spec declares no 404 here; an unknown id is reported as a bad request.
        reject_problem("notificationId", f"Notification {notification_id} was not found.")
    body = {
        "webhookNotificationLog": attempt.to_api_log(state.tenant_id),
        "notificationContent": attempt.body,
    }
    return json_response(200, body)


def _webhook_fields(body: Any, *, mode: str) -> JSONObject:
    """Validate a Post/Put/PatchWebhookRequest (mode "post", "put" or "patch").

    Unknown fields are ignored; absent and null fields come back as None.
    """
    if not isinstance(body, dict):
        reject_problem("body", "The request body must be a JSON object.")
    errors: dict[str, list[str]] = {}
    fields: JSONObject = {}
    checks: list[tuple[str, Callable[[Any], bool], str]] = [
        ("webhookUrl", _is_http_url, "The webhookUrl must be an absolute http(s) URL."),
        ("webhookSecret", _is_str, "The webhookSecret field must be a string."),
        ("name", _is_str, "The name field must be a string."),
        ("notificationTypes", _is_type_list, "Unknown notification type."),
    ]
    if mode != "post":
        checks.append(("enabled", _is_bool, "The enabled field must be a boolean."))
    for name, valid, message in checks:
        value = body.get(name)
        if value is not None and not valid(value):
            errors[name] = [message]
        fields[name] = value
    if mode != "patch" and fields["webhookUrl"] is None:
        errors["webhookUrl"] = ["The webhookUrl field is required."]
    if errors:
        raise Reject(problem_response(VALIDATION_TITLE, errors))
    if fields["notificationTypes"] is not None:
        fields["notificationTypes"] = list(dict.fromkeys(fields["notificationTypes"]))
    return fields


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in {"http", "https"} and bool(parts.netloc)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_type_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, str) and item in NOTIFICATION_TYPE_VALUES for item in value
    )
