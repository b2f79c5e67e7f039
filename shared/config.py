"""The one module that reads the environment.

Every setting goes through a typed helper that fails loudly at start, so a typo in a
deployment stops the process instead of surfacing as a lost webhook hours later.
Secrets may also come from a file named by `NAME_FILE` (Docker and Kubernetes secrets).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MAX_WEBHOOK_BYTES = 1024 * 1024
AUTO_ENROLL_POLICIES = ("off", "consented")

# Defaults are what `make run` and a plain developer machine provide.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


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

    def timezone(self, name: str, default: str) -> ZoneInfo:
        value = self.string(name, default) or default
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{name} is not a known time zone: {value!r}") from None


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
    auto_enroll: str = "off"
    # How long an eligibility event waits for others of the same burst before the reconcile.
    eligibility_settle_seconds: float = 60.0
    max_webhook_bytes: int = MAX_WEBHOOK_BYTES

    @property
    def spark_configured(self) -> bool:
        return bool(self.spark_api_url and self.spark_client_id and self.spark_client_secret)

    def require_spark(self) -> None:
        missing = [
            name
            for name, value in (
                ("SPARK_API_URL", self.spark_api_url),
                ("SPARK_TOKEN_URL", self.spark_token_url),
                ("SPARK_CLIENT_ID", self.spark_client_id),
                ("SPARK_CLIENT_SECRET", self.spark_client_secret),
            )
            if not value
        ]
        if missing:
            raise ConfigError("Spark API access needs " + ", ".join(missing))

    def require_webhook_secrets(self) -> None:
        if not self.webhook_secrets and not self.allow_unsigned:
            raise ConfigError(
                "SPARK_WEBHOOK_SECRETS is empty: refusing to accept unsigned webhooks "
                "(set SPARK_WEBHOOK_ALLOW_UNSIGNED=1 only for local experiments)"
            )


def parse_secret_list(value: str | None) -> tuple[bytes, ...]:
    if value is None:
        return ()
    return tuple(part.strip().encode() for part in value.split(",") if part.strip())


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = Env(os.environ if environ is None else environ)
    auto_enroll = (env.string("SPARK_AUTO_ENROLL") or "off").lower()
    if auto_enroll not in AUTO_ENROLL_POLICIES:
        raise ConfigError(f"SPARK_AUTO_ENROLL must be one of {', '.join(AUTO_ENROLL_POLICIES)}")
    port = env.integer("PORT", 8000)
    if not 0 < port < 65536:
        raise ConfigError(f"PORT must be a TCP port, got {port}")
    return Settings(
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
    )


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse a `.env` file: `NAME=value` lines, `#` comments, optional quotes."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        stripped = stripped.removeprefix("export ")
        name, sep, value = stripped.partition("=")
        if not sep or not name.strip().isidentifier():
            raise ConfigError(f"{path}:{number}: expected NAME=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def load_dotenv_into_environ(path: Path = Path(".env")) -> None:
    """The CLI's convenience: values from `.env` fill in what the environment lacks."""
    for name, value in read_dotenv(path).items():
        os.environ.setdefault(name, value)
