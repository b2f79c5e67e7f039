"""The one module that reads the environment.

Every setting goes through a typed helper that fails loudly at start, so a typo in a
deployment stops the process instead of surfacing as a lost webhook hours later.
Secrets may also come from a file named by `NAME_FILE` (Docker and Kubernetes secrets).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Literal, TypeVar, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import load_dotenv
from dotenv.parser import parse_stream

MAX_WEBHOOK_BYTES = 1024 * 1024
AutoEnroll = Literal["off", "consented"]
AUTO_ENROLL_POLICIES: tuple[AutoEnroll, ...] = get_args(AutoEnroll)
# `points` is the field's current name; `curvePoints` the deprecated one some Spark
# environments may still expect.
ReportPointsField = Literal["points", "curvePoints"]
REPORT_POINTS_FIELDS: tuple[ReportPointsField, ...] = get_args(ReportPointsField)
ReportCorrections = Literal["off", "replace"]
REPORT_CORRECTIONS: tuple[ReportCorrections, ...] = get_args(ReportCorrections)
# Spark API access: all four, or none (then nothing calls Spark).
SPARK_SETTINGS = ("SPARK_API_URL", "SPARK_TOKEN_URL", "SPARK_CLIENT_ID", "SPARK_CLIENT_SECRET")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
# Where the plans made from price curves go; see CurveSettings.
Dispatcher = Literal["log", "http", "celery"]
DISPATCHERS: tuple[Dispatcher, ...] = get_args(Dispatcher)
# Spark's PriceArea enum, without "Unknown".
PRICE_AREAS = ("NO1", "NO2", "NO3", "NO4", "NO5", "FI", "DK1", "DK2", "SE1", "SE2", "SE3", "SE4")

# Defaults are what `make run` and a plain developer machine provide.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# How log lines are written (shared/logging.py): one JSON object per line, or for a terminal.
LOG_FORMATS = ("json", "console")


_Choice = TypeVar("_Choice", bound=str)


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the process must not start."""


class Env:
    """Typed access to one mapping of environment variables."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def _raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def string(self, name: str, default: str | None = None) -> str | None:
        value = self._raw(name)
        return default if value is None else value

    def required(self, name: str) -> str:
        value = self._raw(name)
        if value is None:
            raise ConfigError(f"{name} is required")
        return value

    def integer(self, name: str, default: int) -> int:
        value = self._raw(name)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {value!r}") from None

    def number(self, name: str, default: float) -> float:
        value = self._raw(name)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {value!r}") from None

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self._raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{name} must be a boolean (1/0, true/false), got {value!r}")

    def secret(self, name: str) -> str | None:
        """`NAME`, or the contents of the file named by `NAME_FILE` (not both)."""
        direct = self._raw(name)
        path = self._raw(f"{name}_FILE")
        if direct is not None and path is not None:
            raise ConfigError(f"set {name} or {name}_FILE, not both")
        if path is None:
            return direct
        try:
            content = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
        return content or None

    def choice(
        self,
        name: str,
        choices: tuple[_Choice, ...],
        default: _Choice,
        *,
        case_sensitive: bool = False,
    ) -> _Choice:
        """One of `choices` (a Literal's values); anything else stops the process."""
        value = self._raw(name)
        if value is None:
            return default
        for option in choices:
            if option == value or (not case_sensitive and option == value.lower()):
                return option
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")

    def duration(self, name: str, default: timedelta) -> timedelta:
        """`90` or `90s` seconds, `15m`, `24h`, `2d`."""
        value = self._raw(name)
        if value is None:
            return default
        match = _DURATION.match(value.lower())
        if not match:
            raise ConfigError(
                f"{name} must be a duration such as 3600, 3600s, 90m, 24h or 2d, got {value!r}"
            )
        return timedelta(seconds=float(match[1]) * _DURATION_UNITS[match[2]])

    def timezone(self, name: str, default: str) -> ZoneInfo:
        value = self.string(name, default) or default
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{name} is not a known time zone: {value!r}") from None


@dataclass(frozen=True)
class CurveSettings:
    """Price curves: who is told each target's plan, and the daily check for tomorrow's curve."""

    # "log" writes plans to the worker log; "http" POSTs them, signed, to `dispatch_url`;
    # "celery" sends them as task `dispatch_task` on queue `dispatch_queue` for the partner's
    # own workers.
    dispatcher: Dispatcher = "log"
    dispatch_url: str | None = None
    # Our own HMAC secret for the http dispatcher, not Spark's webhook secret.
    dispatch_secret: bytes | None = field(default=None, repr=False)
    dispatch_task: str | None = None
    dispatch_queue: str | None = None
    # Connect and read timeout of each dispatcher call: a hanging control system is cut off.
    dispatch_timeout_seconds: float = 10.0
    # Target plans per dispatcher call (one HTTP request, one task message).
    dispatch_batch_size: int = 500
    # A plan whose dispatch failed this many times is recorded as failed and left alone.
    dispatch_max_attempts: int = 6
    # The wait before the first retry; it doubles with each attempt, up to an hour.
    dispatch_retry_seconds: float = 30.0
    # Local time (SPARK_TIMEZONE) from which the daily check looks for tomorrow's curve...
    check_time: time = time(13, 30)
    # ...and after which a curve still missing is final and alerted.
    check_until: time = time(16, 0)
    # Areas that should get a curve every day; only these are alerted on when missing.
    expected_areas: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    # Current secret first; older ones stay accepted during a rotation.
    webhook_secrets: tuple[bytes, ...] = field(repr=False)
    allow_unsigned: bool
    spark_api_url: str | None
    spark_token_url: str | None
    spark_client_id: str | None
    spark_client_secret: str | None = field(repr=False)
    timezone: ZoneInfo
    port: int
    # "off": enrollment is manual; "consented": users flagged as consenting are enrolled when
    # they become eligible.
    auto_enroll: AutoEnroll = "off"
    # How long an eligibility event waits for others of the same burst before the reconcile.
    eligibility_settle_seconds: float = 60.0
    max_webhook_bytes: int = MAX_WEBHOOK_BYTES
    # Bearer tokens that POST /consumption accepts; none configured: it accepts no one.
    consumption_api_tokens: tuple[str, ...] = field(default=(), repr=False)
    # How long a batch of readings from POST /consumption reads as `queued` without news of it
    # before `GET /consumption/batches/{id}` calls it `unknown` (send it again). Longer than
    # the longest retry delay plus the visibility timeout (shared/batch_status.py).
    consumption_batch_pending: timedelta = timedelta(hours=1)
    # The EnergyUsage field the points travel in: "points" or the deprecated "curvePoints".
    report_points_field: ReportPointsField = "points"
    # The latest an LPC event's acknowledgement is sent, counted from the event's arrival.
    lpc_ack_within: timedelta = timedelta(minutes=5)
    # How long after the end of an event's month (SPARK_TIMEZONE) a report is still sent.
    report_grace: timedelta = timedelta(hours=24)
    # How long after an event's last period readings may still arrive before it is reported.
    report_settle: timedelta = timedelta(hours=2)
    # How long after an event's end its report waits for the readings of every target.
    report_max_wait: timedelta = timedelta(hours=24)
    # The last day's reports wait for readings until this long before the month's deadline.
    report_final_margin: timedelta = timedelta(hours=6)
    # "off" or "replace": whether a sent report is followed by a corrected one.
    report_corrections: ReportCorrections = "off"
    # The least change (kWh) that makes a corrected report worth sending.
    report_correction_min_kwh: float = 1.0
    # An event's report is split into several only above this many payloads.
    report_max_payloads: int = 10_000
    # Calls per second to Spark, shared by every process (a PostgreSQL-kept schedule).
    spark_rate_limit: float = 10.0
    # SPARK_WEBHOOK_SECRETS_FILE, when the secrets come from a file: the ingress re-reads it
    # when it changes, and `webhooks rotate-secret` rewrites it (shared/webhook_secrets.py).
    webhook_secrets_file: Path | None = None
    curves: CurveSettings = field(default_factory=CurveSettings)
    # Prometheus: the worker's own port (0: none), `serve-metrics`'s port, and the address
    # both bind.
    worker_metrics_port: int = 9101
    metrics_port: int = 9102
    metrics_host: str = "127.0.0.1"
    # Redis's visibility timeout, in seconds; None: worker.celery_app's. Lowering it below the
    # longest task's life in a worker makes Redis hand running tasks to a second worker: it is
    # for tests that wait out a killed worker's messages.
    broker_visibility_timeout: int | None = None

    @property
    def spark_configured(self) -> bool:
        """All four Spark settings are given (load_settings refuses some without the others)."""
        return not self.missing_spark_settings()

    def missing_spark_settings(self) -> list[str]:
        values = (
            self.spark_api_url,
            self.spark_token_url,
            self.spark_client_id,
            self.spark_client_secret,
        )
        return [name for name, value in zip(SPARK_SETTINGS, values, strict=True) if not value]

    def require_spark(self) -> None:
        missing = self.missing_spark_settings()
        if missing:
            raise ConfigError("Spark API access needs " + ", ".join(missing))

    def check_spark_all_or_none(self) -> None:
        """Some Spark settings without the others is a deployment mistake: refuse to start,
        rather than start and fail at every call to Spark."""
        missing = self.missing_spark_settings()
        if 0 < len(missing) < len(SPARK_SETTINGS):
            raise ConfigError(
                "Spark API access needs "
                + ", ".join(missing)
                + ": set all four of "
                + ", ".join(SPARK_SETTINGS)
                + ", or none"
            )

    def require_webhook_secrets(self) -> None:
        if not self.webhook_secrets and not self.allow_unsigned:
            raise ConfigError(
                "SPARK_WEBHOOK_SECRETS is empty: refusing to accept unsigned webhooks "
                "(set SPARK_WEBHOOK_ALLOW_UNSIGNED=1 only for local experiments)"
            )


def parse_local_time(name: str, value: str) -> time:
    """`HH:MM`, a wall-clock time in SPARK_TIMEZONE."""
    try:
        hours, minutes = value.split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ConfigError(f"{name} must be a local time like 13:30, got {value!r}") from None


def load_curve_settings(env: Env) -> CurveSettings:
    dispatcher = env.choice("SPARK_DISPATCHER", DISPATCHERS, "log")
    secret = env.secret("SPARK_DISPATCH_SECRET")
    settings = CurveSettings(
        dispatcher=dispatcher,
        dispatch_url=env.string("SPARK_DISPATCH_URL"),
        dispatch_secret=secret.encode() if secret else None,
        dispatch_task=env.string("SPARK_DISPATCH_TASK"),
        dispatch_queue=env.string("SPARK_DISPATCH_QUEUE"),
        dispatch_timeout_seconds=env.number("SPARK_DISPATCH_TIMEOUT_SECONDS", 10.0),
        dispatch_batch_size=env.integer("SPARK_DISPATCH_BATCH_SIZE", 500),
        dispatch_max_attempts=env.integer("SPARK_DISPATCH_MAX_ATTEMPTS", 6),
        dispatch_retry_seconds=env.number("SPARK_DISPATCH_RETRY_SECONDS", 30.0),
        check_time=parse_local_time(
            "SPARK_CURVE_CHECK_TIME", env.string("SPARK_CURVE_CHECK_TIME") or "13:30"
        ),
        check_until=parse_local_time(
            "SPARK_CURVE_CHECK_UNTIL", env.string("SPARK_CURVE_CHECK_UNTIL") or "16:00"
        ),
        expected_areas=tuple(
            part.strip().upper()
            for part in (env.string("SPARK_EXPECTED_CURVE_AREAS") or "").split(",")
            if part.strip()
        ),
    )
    _check_curve_settings(settings)
    return settings


def _check_curve_settings(settings: CurveSettings) -> None:
    if settings.dispatcher == "http" and not (settings.dispatch_url and settings.dispatch_secret):
        raise ConfigError(
            "SPARK_DISPATCHER=http needs SPARK_DISPATCH_URL and SPARK_DISPATCH_SECRET"
        )
    if settings.dispatch_url and not settings.dispatch_url.startswith(("http://", "https://")):
        raise ConfigError("SPARK_DISPATCH_URL must be an http(s) URL")
    if settings.dispatcher == "celery" and not (settings.dispatch_task and settings.dispatch_queue):
        raise ConfigError(
            "SPARK_DISPATCHER=celery needs SPARK_DISPATCH_TASK and SPARK_DISPATCH_QUEUE"
        )
    if settings.dispatch_timeout_seconds <= 0:
        raise ConfigError("SPARK_DISPATCH_TIMEOUT_SECONDS must be positive")
    if settings.dispatch_batch_size < 1:
        raise ConfigError("SPARK_DISPATCH_BATCH_SIZE must be at least 1")
    if settings.dispatch_max_attempts < 1:
        raise ConfigError("SPARK_DISPATCH_MAX_ATTEMPTS must be at least 1")
    if settings.dispatch_retry_seconds < 0:
        raise ConfigError("SPARK_DISPATCH_RETRY_SECONDS must not be negative")
    if settings.check_until <= settings.check_time:
        raise ConfigError("SPARK_CURVE_CHECK_UNTIL must be later than SPARK_CURVE_CHECK_TIME")
    unknown = [area for area in settings.expected_areas if area not in PRICE_AREAS]
    if unknown:
        raise ConfigError(
            f"SPARK_EXPECTED_CURVE_AREAS: unknown price area(s) {', '.join(unknown)}; "
            f"known: {', '.join(PRICE_AREAS)}"
        )


def parse_secret_list(value: str | None) -> tuple[bytes, ...]:
    if value is None:
        return ()
    return tuple(part.strip().encode() for part in value.split(",") if part.strip())


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = Env(os.environ if environ is None else environ)
    auto_enroll = env.choice("SPARK_AUTO_ENROLL", AUTO_ENROLL_POLICIES, "off")
    port = env.integer("PORT", 8000)
    if not 0 < port < 65536:
        raise ConfigError(f"PORT must be a TCP port, got {port}")
    points_field = env.choice(
        "SPARK_REPORT_POINTS_FIELD", REPORT_POINTS_FIELDS, "points", case_sensitive=True
    )
    max_payloads = env.integer("SPARK_REPORT_MAX_PAYLOADS", 10_000)
    if max_payloads < 1:
        raise ConfigError(f"SPARK_REPORT_MAX_PAYLOADS must be at least 1, got {max_payloads}")
    rate_limit = env.number("SPARK_RATE_LIMIT", 10.0)
    corrections = env.choice("SPARK_REPORT_CORRECTIONS", REPORT_CORRECTIONS, "off")
    if not rate_limit > 0:
        raise ConfigError(f"SPARK_RATE_LIMIT must be a positive number, got {rate_limit}")
    settings = Settings(
        database_url=env.secret("DATABASE_URL") or DEFAULT_DATABASE_URL,
        redis_url=env.secret("REDIS_URL") or DEFAULT_REDIS_URL,
        webhook_secrets=parse_secret_list(env.secret("SPARK_WEBHOOK_SECRETS")),
        allow_unsigned=env.boolean("SPARK_WEBHOOK_ALLOW_UNSIGNED"),
        spark_api_url=(env.string("SPARK_API_URL") or "").rstrip("/") or None,
        spark_token_url=env.string("SPARK_TOKEN_URL"),
        spark_client_id=env.string("SPARK_CLIENT_ID"),
        spark_client_secret=env.secret("SPARK_CLIENT_SECRET"),
        timezone=env.timezone("SPARK_TIMEZONE", "Europe/Oslo"),
        port=port,
        auto_enroll=auto_enroll,
        eligibility_settle_seconds=env.number("SPARK_ELIGIBILITY_SETTLE_SECONDS", 60.0),
        consumption_api_tokens=tuple(
            part.strip()
            for part in (env.secret("CONSUMPTION_API_TOKENS") or "").split(",")
            if part.strip()
        ),
        consumption_batch_pending=env.duration("CONSUMPTION_BATCH_PENDING", timedelta(hours=1)),
        report_points_field=points_field,
        lpc_ack_within=env.duration("SPARK_LPC_ACK_WITHIN", timedelta(minutes=5)),
        report_grace=env.duration("SPARK_REPORT_GRACE", timedelta(hours=24)),
        report_settle=env.duration("SPARK_REPORT_SETTLE", timedelta(hours=2)),
        report_max_wait=env.duration("SPARK_REPORT_MAX_WAIT", timedelta(hours=24)),
        report_final_margin=env.duration("SPARK_REPORT_FINAL_MARGIN", timedelta(hours=6)),
        report_corrections=corrections,
        report_correction_min_kwh=env.number("SPARK_REPORT_CORRECTION_MIN_KWH", 1.0),
        report_max_payloads=max_payloads,
        spark_rate_limit=rate_limit,
        curves=load_curve_settings(env),
        worker_metrics_port=_port(env, "WORKER_METRICS_PORT", 9101, allow_zero=True),
        metrics_port=_port(env, "METRICS_PORT", 9102),
        metrics_host=env.string("METRICS_HOST") or "127.0.0.1",
        broker_visibility_timeout=_positive(env, "BROKER_VISIBILITY_TIMEOUT"),
        webhook_secrets_file=(
            Path(path) if (path := env.string("SPARK_WEBHOOK_SECRETS_FILE")) else None
        ),
    )
    settings.check_spark_all_or_none()
    return settings


def _positive(env: Env, name: str) -> int | None:
    if env.string(name) is None:
        return None
    value = env.integer(name, 0)
    if value < 1:
        raise ConfigError(f"{name} must be a positive number of seconds, got {value}")
    return value


def _port(env: Env, name: str, default: int, *, allow_zero: bool = False) -> int:
    port = env.integer(name, default)
    if not (0 if allow_zero else 1) <= port < 65536:
        raise ConfigError(f"{name} must be a TCP port{' or 0' if allow_zero else ''}, got {port}")
    return port


def load_log_format(environ: Mapping[str, str] | None = None) -> str:
    """`LOG_FORMAT`, read on its own: logging is set up before, and apart from, the settings."""
    env = Env(os.environ if environ is None else environ)
    value = (env.string("LOG_FORMAT") or "json").lower()
    if value not in LOG_FORMATS:
        raise ConfigError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {value!r}")
    return value


def read_dotenv(path: Path) -> dict[str, str]:
    """A `.env` file's settings, in python-dotenv's syntax (`NAME=value`, `export`, quotes,
    `#` comments). A line it cannot read is an error, not a setting silently lost."""
    if not path.is_file():
        return {}
    values: dict[str, str] = {}
    with path.open(encoding="utf-8") as stream:
        for binding in parse_stream(stream):
            if binding.error or (binding.key is not None and binding.value is None):
                raise ConfigError(f"{path}:{binding.original.line}: expected NAME=value")
            if binding.key is not None and binding.value is not None:
                values[binding.key] = binding.value
    return values


def load_dotenv_into_environ(path: Path = Path(".env")) -> None:
    """The CLI's convenience: values from `.env` fill in what the environment lacks."""
    read_dotenv(path)  # refuses a file with lines it cannot read
    load_dotenv(path, override=False, interpolate=False)
