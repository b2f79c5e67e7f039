"""A local stand-in for Volue Spark's Energy Coordination API (partner endpoints).

Paths, field names and status codes follow Spark's OpenAPI document (a copy ships as
`sandbox/openapi.json`); behaviour the spec leaves open follows the project's Spark API notes.
Besides Spark's own API the sandbox has an unauthenticated control surface under `/_sandbox/`
(fault switches, clock, request and delivery logs) that exists only here.

`create_app(config)` builds the Flask app and starts its background threads (webhook delivery
and, when configured, the demo emitter); `sandbox_of(app).stop()` ends them. `serve(...)` runs
the app on a threaded werkzeug server and is what `python -m sandbox` and the tests use.
"""

from __future__ import annotations

import hmac
import itertools
import json
import logging
import math
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from datetime import time as wall_time
from importlib import resources
from typing import Any, NoReturn
from urllib.parse import unquote_plus, urlsplit
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from sandbox.clock import Clock, parse_timestamp, spark_timestamp
from sandbox.delivery import DEFAULT_RETRY_DELAYS, DEFAULT_TIMEOUT, DeliveryWorker
from sandbox.state import (
    NOTIFICATION_TYPES,
    Event,
    FaultResponse,
    JSONObject,
    ReceivedRequest,
    SandboxState,
    Webhook,
)

log = logging.getLogger(__name__)

API_PREFIX = "/energy-coordination/v1"
TOKEN_PATH = "/connect/token"  # noqa: S105 - a URL path, not a password
CONTROL_PREFIX = "/_sandbox"
# Where Spark publishes its OpenAPI document (unauthenticated); the sandbox serves its copy.
SWAGGER_PATH = API_PREFIX + "/swagger/Partner/swagger.json"
EXTENSION_KEY = "spark_sandbox"

MAX_PAGE_SIZE = 1000
# Spark does not document its default page size.
DEFAULT_PAGE_SIZE = 100

# Currency each price area's curves are quoted in.
PRICE_AREA_CURRENCIES = {
    "NO1": "NOK",
    "NO2": "NOK",
    "NO3": "NOK",
    "NO4": "NOK",
    "NO5": "NOK",
    "SE1": "SEK",
    "SE2": "SEK",
    "SE3": "SEK",
    "SE4": "SEK",
    "DK1": "DKK",
    "DK2": "DKK",
    "FI": "EUR",
}
CURRENCIES = ("NOK", "EUR", "SEK", "DKK")
ENERGY_UNITS = ("kWh", "MWh")
NOTIFICATION_TYPE_VALUES = ("Unknown", *NOTIFICATION_TYPES.values())
# Local hours in which the default simulated curve asks partners to move usage away
# (positive delta); the other hours invite usage (negative delta).
PEAK_HOURS = frozenset({7, 8, 9, 17, 18, 19, 20})
TIME_SPAN = re.compile(r"^(\d+\.)?\d{1,2}:\d{2}:\d{2}(\.\d{1,7})?$")

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
PROBLEM_CONTENT_TYPE = "application/problem+json; charset=utf-8"
REDACTED = "[redacted]"


@dataclass(frozen=True)
class SandboxConfig:
    client_id: str
    client_secret: str = field(repr=False)
    token_ttl: float = 3600.0
    delivery_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS
    delivery_timeout: float = DEFAULT_TIMEOUT
    emit_every: float | None = None
    timezone: str = "Europe/Oslo"
    seed: int | None = None


# Responses


class _Reject(Exception):
    """Carries a finished response out of a view's helpers."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def json_response(status: int, body: Any, content_type: str = JSON_CONTENT_TYPE) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")), status=status, content_type=content_type
    )


def empty_response(status: int) -> Response:
    response = Response(b"", status=status)
    # No body, so no media type (Flask would otherwise claim text/html).
    del response.headers["Content-Type"]
    return response


def problem_response(title: str, errors: Mapping[str, list[str]]) -> Response:
    """ASP.NET's HttpValidationProblemDetails for a 400."""
    body = {
        "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
        "title": title,
        "status": 400,
        "errors": dict(errors),
    }
    return json_response(400, body, PROBLEM_CONTENT_TYPE)


def string_response(status: int, message: str) -> Response:
    """The bare JSON string body many Spark 400s carry."""
    return json_response(status, message)


VALIDATION_TITLE = "One or more validation errors occurred."


def _reject_problem(field_name: str, message: str) -> NoReturn:
    raise _Reject(problem_response(VALIDATION_TITLE, {field_name: [message]}))


def _read_json(*, required: bool, bad: Callable[[str], NoReturn]) -> Any:
    raw = request.get_data(cache=True)
    if not raw.strip():
        if required:
            bad("A non-empty request body is required.")
        return None
    if not request.is_json:
        raise _Reject(empty_response(415))
    try:
        return json.loads(raw)
    except ValueError:
        bad("The request body is not valid JSON.")


def _bad_string(message: str) -> NoReturn:
    raise _Reject(string_response(400, message))


def _bad_problem(message: str) -> NoReturn:
    _reject_problem("body", message)


# The sandbox: state, clock, delivery and simulation behind the routes


@dataclass(frozen=True)
class PriceCurveRequest:
    """A validated SimulatePriceCurveEventRequest; None means "let the sandbox choose"."""

    targets: list[JSONObject] | None = None
    delta: JSONObject | None = None
    price_area: str | None = None


class Sandbox:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.timezone = ZoneInfo(config.timezone)
        self.clock = Clock()
        tenant = uuid.uuid5(uuid.NAMESPACE_URL, f"spark-sandbox:{config.client_id}")
        self.state = SandboxState(tenant_id=str(tenant))
        self.delivery = DeliveryWorker(
            self.state,
            self.clock,
            retry_delays=config.delivery_delays,
            timeout=config.delivery_timeout,
        )
        self.rng = random.Random(config.seed)
        self.emitter = DemoEmitter(self, config.emit_every) if config.emit_every else None

    def start(self) -> None:
        self.delivery.start()
        if self.emitter is not None:
            self.emitter.start()

    def stop(self) -> None:
        if self.emitter is not None:
            self.emitter.stop()
        self.delivery.stop()

    def reset(self) -> None:
        """Back to a fresh sandbox: no data, no logs, no faults, default switches, real time."""
        self.delivery.reset()
        self.state.reset()
        self.clock.reset()

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def publish(self, payload: JSONObject) -> Event:
        """Store an event and hand it to delivery, as Spark does with every event it creates."""
        event = Event(event_id=str(uuid.uuid4()), created_at=self.clock.now(), payload=payload)
        self.state.add_event(event)
        self.delivery.submit(event)
        return event

    def simulate_price_curve(self, wanted: PriceCurveRequest | None = None) -> Event:
        wanted = wanted or PriceCurveRequest()
        area = wanted.price_area or self.rng.choice(sorted(PRICE_AREA_CURRENCIES))
        delta = wanted.delta or {}
        points = delta.get("points")
        if points is None:
            points = self._default_points()
        curve = {
            "points": points,
            "energyUnit": delta.get("energyUnit") or "kWh",
            "currency": delta.get("currency") or PRICE_AREA_CURRENCIES[area],
            "resolution": delta.get("resolution") or "01:00:00",
        }
        targets = wanted.targets
        if targets is None:
            targets = [
                {"resourceId": self.new_id(), "locationId": self.new_id()}
                for _ in range(self.rng.randint(1, 3))
            ]
        payload = {
            "targets": targets,
            "priceCurveDelta": curve,
            "priceArea": area,
            "payloadType": "PriceCurve",
        }
        return self.publish(payload)

    def simulate_user_eligibility(self) -> Event:
        added = [self.new_id() for _ in range(self.rng.randint(1, 3))]
        removed = [self.new_id() for _ in range(self.rng.randint(0, 2))]
        return self.publish(
            {
                "lastUpdated": spark_timestamp(self.clock.now()),
                "addedUsers": added,
                "removedUsers": removed,
                "payloadType": "UserEligibility",
            }
        )

    def _default_points(self) -> list[JSONObject]:
        points = []
        for hour in next_local_day_hours(self.clock.now(), self.timezone):
            magnitude = round(self.rng.uniform(0.05, 1.0), 4)
            sign = 1 if hour.astimezone(self.timezone).hour in PEAK_HOURS else -1
            points.append({"price": sign * magnitude, "timestamp": spark_timestamp(hour)})
        return points


def next_local_day_hours(now: datetime, timezone: ZoneInfo) -> list[datetime]:
    """The UTC starts of each hour of tomorrow in `timezone`: 24, or 23/25 on DST days."""
    tomorrow = now.astimezone(timezone).date() + timedelta(days=1)
    start = datetime.combine(tomorrow, wall_time(0), tzinfo=timezone).astimezone(UTC)
    end = datetime.combine(tomorrow + timedelta(days=1), wall_time(0), tzinfo=timezone)
    hours = []
    hour = start
    while hour < end.astimezone(UTC):
        hours.append(hour)
        hour += timedelta(hours=1)
    return hours


class DemoEmitter:
    """`--emit-every`: one simulated event every N seconds, alternating the two kinds."""

    def __init__(self, sandbox: Sandbox, every: float) -> None:
        self._sandbox = sandbox
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-emitter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        kinds = itertools.cycle(
            [self._sandbox.simulate_user_eligibility, self._sandbox.simulate_price_curve]
        )
        while not self._stop.wait(self._every):
            try:
                event = next(kinds)()
            except Exception:
                log.exception("sandbox emitter: simulating an event failed")
                continue
            log.info("sandbox emitted %s event %s", event.payload_type, event.event_id)


def sandbox_of(app: Flask) -> Sandbox:
    sandbox = app.extensions.get(EXTENSION_KEY)
    if not isinstance(sandbox, Sandbox):
        raise RuntimeError("this Flask app was not made by sandbox.app.create_app")
    return sandbox


def _current() -> Sandbox:
    return sandbox_of(current_app)


spark_api = Blueprint("spark_api", __name__, url_prefix=API_PREFIX)
identity = Blueprint("identity", __name__)
control = Blueprint("control", __name__, url_prefix=CONTROL_PREFIX)


def create_app(config: SandboxConfig) -> Flask:
    sandbox = Sandbox(config)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 10 * 1024 * 1024
    app.extensions[EXTENSION_KEY] = sandbox
    app.register_error_handler(_Reject, _rejected)
    app.register_error_handler(HTTPException, _http_error)
    app.before_request(_before_request)
    app.register_blueprint(identity)
    app.register_blueprint(spark_api)
    app.register_blueprint(control)
    sandbox.start()
    return app


def _rejected(exc: _Reject) -> Response:
    return exc.response


def _http_error(exc: HTTPException) -> Response:
    # Spark answers unknown routes and methods without a body.
    status = exc.code or 500
    if request.path.startswith(CONTROL_PREFIX + "/"):
        return json_response(status, {"error": exc.description})
    return empty_response(status)


# Every request to Spark's paths: logged, then faults, then authentication


def _before_request() -> Response | None:
    path = request.path
    if path.startswith(CONTROL_PREFIX + "/"):
        return None
    sandbox = _current()
    state = sandbox.state
    state.log_request(_received_request(sandbox.clock.now()))
    fault = state.next_fault(request.method, path)
    if fault is not None:
        if fault.delay > 0:
            time.sleep(fault.delay)
        if fault.status is not None:
            return _fault_response(fault)
    if path.startswith(API_PREFIX + "/") and path != SWAGGER_PATH:
        return _check_bearer(state)
    return None


def _received_request(now: datetime) -> ReceivedRequest:
    body = request.get_json(silent=True) if request.is_json else None
    form = None
    if request.mimetype == "application/x-www-form-urlencoded":
        # Keep what helps debugging a token request; the client secret stays out.
        form = {k: v for k, v in request.form.items() if k != "client_secret"}
    return ReceivedRequest(
        method=request.method,
        path=request.path,
        query=request.args.to_dict(flat=True),
        json=_redact(body),
        form=form,
        content_type=request.content_type,
        received_at=now,
    )


def _redact(body: Any) -> Any:
    if isinstance(body, dict) and body.get("webhookSecret") is not None:
        return {**body, "webhookSecret": REDACTED}
    return body


def _fault_response(fault: FaultResponse) -> Response:
    status = fault.status or 500
    response = empty_response(status) if fault.body is None else json_response(status, fault.body)
    if fault.retry_after is not None:
        response.headers["Retry-After"] = fault.retry_after
    return response


def _check_bearer(state: SandboxState) -> Response | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        response = empty_response(401)
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    if not state.token_is_valid(token):
        response = empty_response(401)
        response.headers["WWW-Authenticate"] = (
            'Bearer error="invalid_token", error_description="The token is expired or unknown"'
        )
        return response
    return None


# OAuth2 client credentials (Spark uses Volue Identity's /connect/token)


@identity.post(TOKEN_PATH)
def issue_token() -> Response:
    sandbox = _current()
    config = sandbox.config
    if request.mimetype != "application/x-www-form-urlencoded":
        return _oauth_error(400, "invalid_request")
    basic = request.authorization
    used_basic = basic is not None and basic.type == "basic"
    if basic is not None and used_basic:
        # RFC 6749 2.3.1: id and secret are form-encoded before the Basic encoding.
        client_id = unquote_plus(basic.username or "")
        client_secret = unquote_plus(basic.password or "")
    else:
        client_id = request.form.get("client_id", "")
        client_secret = request.form.get("client_secret", "")
    known = hmac.compare_digest(client_id.encode(), config.client_id.encode())
    matches = hmac.compare_digest(client_secret.encode(), config.client_secret.encode())
    if not (known and matches):
        if used_basic:
            response = _oauth_error(401, "invalid_client")
            response.headers["WWW-Authenticate"] = 'Basic realm="spark-sandbox"'
            return response
        return _oauth_error(400, "invalid_client")
    grant_type = request.form.get("grant_type")
    if not grant_type:
        return _oauth_error(400, "invalid_request")
    if grant_type != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type")
    body = {
        "access_token": sandbox.state.issue_token(config.token_ttl),
        "expires_in": math.ceil(config.token_ttl),
        "token_type": "Bearer",
    }
    response = json_response(200, body)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _oauth_error(status: int, error: str) -> Response:
    response = json_response(status, {"error": error})
    response.headers["Cache-Control"] = "no-store"
    return response


@spark_api.get("/swagger/Partner/swagger.json")
def swagger() -> Response:
    spec = resources.files("sandbox").joinpath("openapi.json")
    if not spec.is_file():
        return empty_response(404)
    return Response(spec.read_bytes(), status=200, content_type=JSON_CONTENT_TYPE)


# /webhooks


@spark_api.get("/webhooks")
def list_webhooks() -> Response:
    webhooks = _current().state.list_webhooks()
    return json_response(200, {"webhooks": [w.to_api() for w in webhooks]})


@spark_api.post("/webhooks")
def create_webhook() -> Response:
    sandbox = _current()
    fields = _webhook_fields(_read_json(required=True, bad=_bad_problem), mode="post")
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


@spark_api.get("/webhooks/<webhook_id>")
def get_webhook(webhook_id: str) -> Response:
    webhook = _current().state.get_webhook(webhook_id)
    if webhook is None:
        return empty_response(404)
    return json_response(200, webhook.to_api())


@spark_api.put("/webhooks/<webhook_id>")
def put_webhook(webhook_id: str) -> Response:
    fields = _webhook_fields(_read_json(required=True, bad=_bad_problem), mode="put")
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


@spark_api.patch("/webhooks/<webhook_id>")
def patch_webhook(webhook_id: str) -> Response:
    fields = _webhook_fields(_read_json(required=True, bad=_bad_problem), mode="patch")
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
    sandbox = _current()
    current = sandbox.state.get_webhook(webhook_id)
    if current is None:
        return empty_response(404)
    updated = replace(change(current), modified=sandbox.clock.now())
    if not sandbox.state.replace_webhook(updated):
        return empty_response(404)
    return json_response(200, updated.to_api())


@spark_api.delete("/webhooks/<webhook_id>")
def delete_webhook(webhook_id: str) -> Response:
    if not _current().state.delete_webhook(webhook_id):
        return string_response(404, f"Webhook {webhook_id} was not found.")
    return empty_response(204)


@spark_api.put("/webhooks/<webhook_id>/enabled")
def set_webhook_enabled(webhook_id: str) -> Response:
    raw = (request.args.get("enabled") or "").lower()
    if raw not in {"true", "false"}:
        _reject_problem("enabled", "The enabled query parameter must be true or false.")
    response = _update_webhook(webhook_id, lambda current: replace(current, enabled=raw == "true"))
    return response if response.status_code == 404 else empty_response(204)


@spark_api.get("/webhooks/logs")
def webhook_logs() -> Response:
    state = _current().state
    page, page_size = _paging()
    logs = state.notification_logs(request.args.get("webhookId") or None)
    chunk = logs[(page - 1) * page_size : page * page_size]
    body = {
        "webhookNotificationLogs": [a.to_api_log(state.tenant_id) for a in chunk],
        "pagination": pagination(len(logs), page, page_size),
    }
    return json_response(200, body)


@spark_api.get("/webhooks/logs/<notification_id>")
def webhook_log(notification_id: str) -> Response:
    state = _current().state
    attempt = state.latest_attempt(notification_id)
    if attempt is None:
        # The spec declares no 404 here; an unknown id is reported as a bad request.
        _reject_problem("notificationId", f"Notification {notification_id} was not found.")
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
        _reject_problem("body", "The request body must be a JSON object.")
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
        raise _Reject(problem_response(VALIDATION_TITLE, errors))
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


# /events


@spark_api.get("/events")
def list_events() -> Response:
    page, page_size = _paging()
    events, total = _current().state.events_newest_first((page - 1) * page_size, page_size)
    body = {
        "events": [e.to_api() for e in events],
        "pagination": pagination(total, page, page_size),
    }
    return json_response(200, body)


@spark_api.get("/events/<event_id>")
def get_event(event_id: str) -> Response:
    event = _current().state.get_event(event_id)
    if event is None:
        return empty_response(404)
    return json_response(200, event.to_api())


def _paging() -> tuple[int, int]:
    """`page` (1-based) and `pageSize` query parameters; bad values are a 400 problem."""
    page = _int_arg("page", 1)
    page_size = _int_arg("pageSize", DEFAULT_PAGE_SIZE)
    if page < 1:
        _reject_problem("page", "page must be 1 or more.")
    if page_size < 1:
        _reject_problem("pageSize", "pageSize must be 1 or more.")
    if page_size > MAX_PAGE_SIZE:
        _reject_problem("pageSize", f"Maximum pageSize is {MAX_PAGE_SIZE}.")
    return page, page_size


def _int_arg(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        _reject_problem(name, f"The value '{raw}' is not valid for {name}.")


def pagination(total: int, page: int, page_size: int) -> JSONObject:
    """ApiPagination for 1-based pages."""
    total_pages = math.ceil(total / page_size)
    return {
        "totalRecords": total,
        "pageSize": page_size,
        "currentPage": page,
        "totalPages": total_pages,
        "nextPage": page + 1 if page < total_pages else None,
        "previousPage": page - 1 if page > 1 else None,
    }


# /simulation


@spark_api.post("/simulation/events/pricecurve")
def simulate_price_curve() -> Response:
    body = _read_json(required=True, bad=_bad_string)
    try:
        wanted = parse_price_curve_request(body)
    except ValueError as exc:
        return string_response(400, str(exc))
    event = _current().simulate_price_curve(wanted)
    return json_response(200, {"simulatedEvent": event.to_api()})


@spark_api.post("/simulation/events/usereligibility")
def simulate_user_eligibility() -> Response:
    event = _current().simulate_user_eligibility()
    return json_response(200, {"simulatedEvent": event.to_api()})


def parse_price_curve_request(body: Any) -> PriceCurveRequest:
    """Validate a SimulatePriceCurveEventRequest; ValueError says what is wrong."""
    if not isinstance(body, dict):
        raise ValueError("The request body must be a JSON object.")
    targets = body.get("targets")
    if targets is not None:
        targets = [_parse_target(t) for t in _as_list(targets, "targets")]
    area = body.get("priceArea")
    if area is not None and area not in PRICE_AREA_CURRENCIES:
        raise ValueError(
            f"priceArea must be one of {', '.join(sorted(PRICE_AREA_CURRENCIES))}, got {area!r}."
        )
    delta = body.get("priceCurveDelta")
    if delta is not None:
        delta = _parse_curve(delta)
    return PriceCurveRequest(targets=targets, delta=delta, price_area=area)


def _as_list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{name} must be an array.")
    return value


def _parse_target(value: Any) -> JSONObject:
    if not isinstance(value, dict):
        raise ValueError("Each target must be an object with resourceId and locationId.")
    resource_id, location_id = value.get("resourceId"), value.get("locationId")
    if not isinstance(resource_id, str) or not isinstance(location_id, str):
        raise ValueError("Each target needs string resourceId and locationId.")
    return {"resourceId": resource_id, "locationId": location_id}


def _parse_curve(value: Any) -> JSONObject:
    if not isinstance(value, dict):
        raise ValueError("priceCurveDelta must be an object.")
    curve: JSONObject = {}
    points = value.get("points")
    if points is not None:
        curve["points"] = [_parse_point(p) for p in _as_list(points, "priceCurveDelta.points")]
    for name, allowed in (("energyUnit", ENERGY_UNITS), ("currency", CURRENCIES)):
        given = value.get(name)
        if given is not None and given not in allowed:
            raise ValueError(f"priceCurveDelta.{name} must be one of {', '.join(allowed)}.")
        curve[name] = given
    resolution = value.get("resolution")
    if resolution is not None and not (isinstance(resolution, str) and TIME_SPAN.match(resolution)):
        raise ValueError("priceCurveDelta.resolution must be a time span like 01:00:00.")
    curve["resolution"] = resolution
    return curve


def _parse_point(value: Any) -> JSONObject:
    if not isinstance(value, dict):
        raise ValueError("Each price curve point must be an object.")
    price, timestamp = value.get("price"), value.get("timestamp")
    if _not_number(price):
        raise ValueError("Each price curve point needs a numeric price.")
    if not isinstance(timestamp, str):
        raise ValueError("Each price curve point needs a timestamp.")
    try:
        when = parse_timestamp(timestamp)
    except ValueError:
        raise ValueError(f"Not a timestamp with an offset: {timestamp!r}.") from None
    return {"price": price, "timestamp": spark_timestamp(when)}


# /_sandbox: control surface for tests and demos (not part of Spark, no authentication)


@control.get("/delivery")
def get_delivery() -> Response:
    return json_response(200, _current().delivery.switches().to_control())


@control.post("/delivery")
def set_delivery() -> Response:
    body = _control_body()
    flags: dict[str, bool] = {}
    for name in ("enabled", "duplicate", "drop"):
        value = body.get(name)
        if value is not None and not isinstance(value, bool):
            return _control_error(f"{name} must be a boolean")
        if value is not None:
            flags[name] = value
    delay = body.get("delay")
    if delay is not None and (_not_number(delay) or delay < 0):
        return _control_error("delay must be a number of seconds >= 0")
    switches = _current().delivery.configure(
        enabled=flags.get("enabled"),
        duplicate=flags.get("duplicate"),
        drop=flags.get("drop"),
        delay=None if delay is None else float(delay),
    )
    return json_response(200, switches.to_control())


@control.get("/faults")
def get_faults() -> Response:
    faults = [
        {"method": method, "path": path, "responses": [f.to_control() for f in queue]}
        for (method, path), queue in _current().state.pending_faults().items()
    ]
    return json_response(200, {"faults": faults})


@control.post("/faults")
def add_faults() -> Response:
    body = _control_body()
    method, path, responses = body.get("method"), body.get("path"), body.get("responses")
    if not isinstance(method, str) or not method:
        return _control_error("method must be an HTTP method")
    if not isinstance(path, str) or not path.startswith("/"):
        return _control_error("path must be a request path starting with /")
    if not isinstance(responses, list) or not responses:
        return _control_error("responses must be a non-empty array")
    try:
        faults = [_parse_fault(r) for r in responses]
    except ValueError as exc:
        return _control_error(str(exc))
    queued = _current().state.add_faults(method, path, faults)
    return json_response(201, {"method": method.upper(), "path": path, "queued": queued})


@control.delete("/faults")
def clear_faults() -> Response:
    _current().state.clear_faults()
    return empty_response(204)


@control.post("/tokens/expire")
def expire_tokens() -> Response:
    _current().state.expire_tokens()
    return empty_response(204)


@control.get("/requests")
def get_requests() -> Response:
    received = _current().state.requests()
    return json_response(200, {"requests": [r.to_control() for r in received]})


@control.delete("/requests")
def clear_requests() -> Response:
    _current().state.clear_requests()
    return empty_response(204)


@control.get("/deliveries")
def get_deliveries() -> Response:
    attempts = _current().state.attempts()
    return json_response(200, {"deliveries": [a.to_control() for a in attempts]})


@control.get("/clock")
def get_clock() -> Response:
    return json_response(200, _clock_view(_current().clock))


@control.post("/clock")
def set_clock() -> Response:
    clock = _current().clock
    body = _control_body()
    if body.get("real") is True:
        clock.reset()
    elif "now" in body:
        frozen = body.get("frozen", False)
        if not isinstance(body["now"], str) or not isinstance(frozen, bool):
            return _control_error("now must be an ISO-8601 timestamp, frozen a boolean")
        try:
            when = parse_timestamp(body["now"])
        except ValueError:
            return _control_error("now must be an ISO-8601 timestamp with an offset")
        clock.set(when, frozen=frozen)
    elif "advanceSeconds" in body:
        seconds = body["advanceSeconds"]
        if _not_number(seconds):
            return _control_error("advanceSeconds must be a number")
        clock.advance(float(seconds))
    else:
        return _control_error('give "now", "advanceSeconds" or "real": true')
    return json_response(200, _clock_view(clock))


@control.post("/reset")
def reset() -> Response:
    _current().reset()
    return empty_response(204)


def _control_body() -> JSONObject:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise _Reject(_control_error("the body must be a JSON object"))
    return body


def _control_error(message: str) -> Response:
    return json_response(400, {"error": message})


def _not_number(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, int | float)


def _parse_fault(value: Any) -> FaultResponse:
    if not isinstance(value, dict):
        raise ValueError("each response must be an object")
    status = value.get("status")
    if status is not None and (
        isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599
    ):
        raise ValueError("status must be an HTTP status code")
    retry_after = value.get("retryAfter")
    if retry_after is not None:
        if _not_number(retry_after) and not isinstance(retry_after, str):
            raise ValueError("retryAfter must be a string or a number of seconds")
        retry_after = str(retry_after)
    delay = value.get("delay", 0)
    if _not_number(delay) or delay < 0:
        raise ValueError("delay must be a number of seconds >= 0")
    if status is None and delay == 0:
        raise ValueError("a response needs a status, a delay, or both")
    return FaultResponse(
        status=status, retry_after=retry_after, delay=float(delay), body=value.get("body")
    )


def _clock_view(clock: Clock) -> JSONObject:
    return {"now": spark_timestamp(clock.now()), "frozen": clock.is_frozen, "real": clock.is_real}


# Serving


class _QuietRequestHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class RunningSandbox:
    """A sandbox app on a threaded werkzeug server in a background thread."""

    def __init__(
        self, config: SandboxConfig, *, host: str = "127.0.0.1", port: int = 0, quiet: bool = False
    ) -> None:
        self.app = create_app(config)
        self.sandbox = sandbox_of(self.app)
        try:
            self._server: BaseWSGIServer = make_server(
                host,
                port,
                self.app,
                threaded=True,
                request_handler=_QuietRequestHandler if quiet else None,
            )
        except BaseException:
            self.sandbox.stop()
            raise
        self.host = host
        self.port = self._server.port
        # A short poll interval makes stop() quick, which matters for tests' teardown.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="sandbox-http",
            daemon=True,
        )

    @property
    def root_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Spark's API base URL, the prefix included."""
        return self.root_url + API_PREFIX

    @property
    def token_url(self) -> str:
        return self.root_url + TOKEN_PATH

    @property
    def control_url(self) -> str:
        return self.root_url + CONTROL_PREFIX

    def start(self) -> RunningSandbox:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()
        self.sandbox.stop()


def serve(
    config: SandboxConfig, *, host: str = "127.0.0.1", port: int = 0, quiet: bool = False
) -> RunningSandbox:
    """Start a sandbox server in a background thread; call `.stop()` to end it."""
    return RunningSandbox(config, host=host, port=port, quiet=quiet).start()
