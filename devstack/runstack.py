"""`make run`: the whole service on one machine, against the local sandbox or a real Spark.

`python -m devstack.runstack run` does, in order:

1. read the settings from the environment (through `shared.config`), keeping the webhook
   secret of the previous `.env` when none is given, so a webhook registered with it stays valid;
2. reuse the Redis and PostgreSQL that `REDIS_URL` / `DATABASE_URL` (or their defaults) name
   when they answer, and otherwise start private ones under the state directory;
3. apply the migrations (`spark-partner db upgrade`);
4. write the resolved settings to `.env`, which the processes and the CLI read;
5. run the repository's Procfile with honcho, plus the sandbox while no Spark is configured,
   and register the sandbox's webhook to the ingress once both answer;
6. on Ctrl-C (or SIGTERM), stop honcho's processes first and the private servers last, so the
   workers can hand their unfinished messages back to Redis before it goes.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Protocol
from urllib.parse import urlsplit

import click
import psycopg
import redis

from devstack.servers import (
    DaemonRedisServer,
    PostgresServer,
    ServiceError,
    free_port,
    port_open,
)
from sandbox.state import NOTIFICATION_TYPES
from shared.config import ConfigError, Settings, load_settings, read_dotenv
from shared.spark_api import SparkClient, SparkError

# Everything `make run` decides and writes to `.env`, in the order it is written.
MANAGED_NAMES = (
    "DATABASE_URL",
    "REDIS_URL",
    "SPARK_WEBHOOK_SECRETS",
    "SPARK_API_URL",
    "SPARK_TOKEN_URL",
    "SPARK_CLIENT_ID",
    "SPARK_CLIENT_SECRET",
    "PORT",
    "SPARK_TIMEZONE",
)

SANDBOX_CLIENT_ID = "spark-partner-dev"
SANDBOX_EMIT_EVERY = 20
WEBHOOK_PATH = "/webhooks/spark"
# honcho hands each process type a PORT of its own, 100 apart, starting at the first (web).
HONCHO_PORT_STEP = 100
STARTUP_TIMEOUT = 60.0
# honcho gives its processes 5 s after SIGTERM before it kills them.
HONCHO_STOP_TIMEOUT = 20.0

# A value written without quotes must survive both shared.config's parser and honcho's
# shell-like one.
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_@%+=:,./-]*")


class Stoppable(Protocol):
    def stop(self) -> None: ...


class Interrupted(Exception):
    """SIGTERM or SIGHUP, handled like Ctrl-C."""


@dataclass
class Services:
    """Where Redis and PostgreSQL are, and which of them this run started."""

    redis_url: str
    database_url: str
    started: list[Stoppable] = field(default_factory=list)

    def stop(self) -> None:
        for server in reversed(self.started):
            server.stop()
        self.started.clear()


@dataclass(frozen=True)
class Plan:
    """The settings a run writes to `.env`, and the sandbox port when it runs one."""

    values: dict[str, str]
    sandbox_port: int | None

    @property
    def port(self) -> int:
        return int(self.values["PORT"])

    @property
    def webhook_secret(self) -> str:
        """The current secret: the one Spark signs with."""
        return self.values["SPARK_WEBHOOK_SECRETS"].split(",")[0].strip()

    @property
    def ingress_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


Say = Callable[[str], None]


def _say(message: str) -> None:
    # If the terminal side is gone (a `| tee` ended by the same Ctrl-C), shutting down
    # matters more than saying so.
    with contextlib.suppress(OSError):
        click.echo(f"make run: {message}", err=True)


def redact_url(url: str) -> str:
    """A URL fit for the terminal: any password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


# -- Redis and PostgreSQL ------------------------------------------------------------------------


def redis_reachable(url: str, timeout: float = 2.0) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError, ValueError):
        return False
    finally:
        client.close()


def postgres_reachable(url: str, timeout: int = 3) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=timeout) as conn:
            conn.execute("SELECT 1")
    except (psycopg.Error, OSError, ValueError):
        return False
    return True


def resolve_services(settings: Settings, state_dir: Path, say: Say = _say) -> Services:
    """Reuse what answers; start private servers under `state_dir` for what does not.

    Raises ServiceError when a private server cannot be started (e.g. PostgreSQL is not
    installed; the message then says what to install); anything started is stopped first.
    """
    # PostgreSQL's tools run from "/", so every path handed to them must be absolute.
    state_dir = state_dir.resolve()
    services = Services(redis_url=settings.redis_url, database_url=settings.database_url)
    try:
        if redis_reachable(settings.redis_url):
            say(f"Redis: using {redact_url(settings.redis_url)}")
        else:
            say(f"Redis: nothing answers at {redact_url(settings.redis_url)}; starting one")
            redis_server = DaemonRedisServer(state_dir / "redis").start()
            services.started.append(redis_server)
            services.redis_url = redis_server.url
            say(f"Redis: started {redis_server.url} (data in {redis_server.directory})")
        if postgres_reachable(settings.database_url):
            say(f"PostgreSQL: using {redact_url(settings.database_url)}")
        else:
            say(f"PostgreSQL: cannot connect to {redact_url(settings.database_url)}; starting one")
            postgres = PostgresServer(state_dir / "postgres")
            # A server left running by a killed run holds the data directory's lock.
            if (postgres.data_dir / "postmaster.pid").exists():
                postgres.stop()
            services.started.append(postgres.start())
            services.database_url = postgres.url
            say(f"PostgreSQL: started {postgres.url} (data in {postgres.directory})")
    except BaseException:
        services.stop()
        raise
    return services


# -- settings ------------------------------------------------------------------------------------


def plan_settings(
    settings: Settings,
    services: Services,
    previous: Mapping[str, str],
    sandbox_port: int,
) -> Plan:
    """The values for `.env`: the environment's where given, generated ones where not.

    `previous` is the last `.env`; only its webhook secret is carried over. Its other values
    were resolved for a run that is over (a private server's port, the sandbox's address).
    """
    if settings.webhook_secrets:
        webhook_secrets = ",".join(secret.decode() for secret in settings.webhook_secrets)
    else:
        webhook_secrets = (previous.get("SPARK_WEBHOOK_SECRETS") or "").strip()
    if not webhook_secrets:
        webhook_secrets = secrets.token_urlsafe(32)

    values = {
        "DATABASE_URL": services.database_url,
        "REDIS_URL": services.redis_url,
        "SPARK_WEBHOOK_SECRETS": webhook_secrets,
    }
    if settings.spark_configured:
        values.update(
            SPARK_API_URL=settings.spark_api_url or "",
            SPARK_TOKEN_URL=settings.spark_token_url or "",
            SPARK_CLIENT_ID=settings.spark_client_id or "",
            SPARK_CLIENT_SECRET=settings.spark_client_secret or "",
        )
        chosen_sandbox_port: int | None = None
    else:
        base = f"http://127.0.0.1:{sandbox_port}"
        values.update(
            SPARK_API_URL=f"{base}/energy-coordination/v1",
            SPARK_TOKEN_URL=f"{base}/connect/token",
            SPARK_CLIENT_ID=SANDBOX_CLIENT_ID,
            SPARK_CLIENT_SECRET=secrets.token_urlsafe(24),
        )
        chosen_sandbox_port = sandbox_port
    values.update(PORT=str(settings.port), SPARK_TIMEZONE=settings.timezone.key)
    return Plan(values=values, sandbox_port=chosen_sandbox_port)


def format_env_file(values: Mapping[str, str]) -> str:
    lines = [
        "# Written by `make run` (devstack/runstack.py) at every start: edits here are replaced.",
        "# Give settings in the environment instead, e.g. `PORT=8080 make run`.",
    ]
    for name, value in values.items():
        if _PLAIN_VALUE.fullmatch(value):
            lines.append(f"{name}={value}")
        elif "'" not in value and "\n" not in value:
            lines.append(f"{name}='{value}'")
        else:
            raise ConfigError(f"{name}: a value with quotes or newlines cannot go into .env")
    return "\n".join(lines) + "\n"


def write_env_file(path: Path, values: Mapping[str, str]) -> None:
    """Write `.env` readable by its owner only: it holds the webhook and client secrets."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(format_env_file(values))
    os.chmod(temporary, 0o600)
    temporary.replace(path)


def process_environment(
    environ: Mapping[str, str], values: Mapping[str, str], bin_dir: Path
) -> dict[str, str]:
    """What honcho and the migration run with: the caller's environment, then `.env`'s values.

    The managed names and their `_FILE` variants are dropped first: a `NAME_FILE` next to the
    resolved `NAME` would make the processes refuse to start.
    """
    managed = set(MANAGED_NAMES) | {f"{name}_FILE" for name in MANAGED_NAMES}
    env = {name: value for name, value in environ.items() if name not in managed}
    env.update(values)
    # The Procfile names bare `gunicorn`, `celery`, `python`: this virtual environment's.
    env["PATH"] = os.pathsep.join(filter(None, [str(bin_dir), environ.get("PATH", "")]))
    # Lines reach honcho as they are printed, not when a pipe buffer fills.
    env["PYTHONUNBUFFERED"] = "1"
    # Readable lines in the terminal; LOG_FORMAT=json make run shows what production writes.
    env.setdefault("LOG_FORMAT", "console")
    # The ingress's config binds every interface (right in a container); here, loopback is
    # enough and nothing else on the network can reach a development ingress.
    env.setdefault("GUNICORN_CMD_ARGS", f"--bind 127.0.0.1:{values['PORT']}")
    return env


# -- the processes -------------------------------------------------------------------------------


def read_procfile(path: Path) -> list[tuple[str, str]]:
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        name, separator, command = line.partition(":")
        if line.startswith("#") or not separator or not name.strip():
            continue
        entries.append((name.strip(), command.strip()))
    return entries


def sandbox_command(plan: Plan, emit_every: float) -> str:
    if plan.sandbox_port is None:
        raise ValueError("this run uses a configured Spark, not the sandbox")
    args = [
        "python", "-m", "sandbox",
        "--host", "127.0.0.1",
        "--port", str(plan.sandbox_port),
        # Joined by "=": a generated value may start with "-", which argparse would take
        # for an option of its own.
        "--client-id=" + plan.values["SPARK_CLIENT_ID"],
        "--client-secret=" + plan.values["SPARK_CLIENT_SECRET"],
        "--emit-every", f"{emit_every:g}",
        "--timezone", plan.values["SPARK_TIMEZONE"],
    ]  # fmt: skip
    return shlex.join(args)


def flower_command(port: int) -> str:
    # Loopback only: Flower has no authentication here.
    return shlex.join(
        ["celery", "-A", "worker.app", "flower", "--address=127.0.0.1", f"--port={port}"]
    )


@dataclass(frozen=True)
class OperationsPorts:
    """Where Flower and the metrics listen in this run: the usual ports when free."""

    flower: int
    worker_metrics: int
    metrics: int

    @classmethod
    def choose(cls, environ: Mapping[str, str]) -> OperationsPorts:
        def pick(name: str, usual: int) -> int:
            given = environ.get(name, "").strip()
            if given:
                return int(given)
            return usual if not port_open("127.0.0.1", usual) else free_port()

        return cls(
            flower=pick("FLOWER_PORT", 5555),
            worker_metrics=pick("WORKER_METRICS_PORT", 9101),
            metrics=pick("METRICS_PORT", 9102),
        )

    def environment(self) -> dict[str, str]:
        """For the worker and serve-metrics, which read these settings."""
        return {
            "WORKER_METRICS_PORT": str(self.worker_metrics),
            "METRICS_PORT": str(self.metrics),
        }


def runtime_procfile(
    repo_procfile: Path, plan: Plan, emit_every: float, *, flower_port: int | None = None
) -> str:
    """The repository's Procfile, plus the sandbox when this run has one, plus Flower on
    loopback when given a port.

    honcho gives the first process type the base PORT: `web` must come first.
    """
    entries = read_procfile(repo_procfile)
    if not entries or entries[0][0] != "web":
        raise ConfigError(f"{repo_procfile}: the first process must be `web`")
    if plan.sandbox_port is not None:
        entries.append(("sandbox", sandbox_command(plan, emit_every)))
    if flower_port is not None:
        entries.append(("flower", flower_command(flower_port)))
    last_port = plan.port + HONCHO_PORT_STEP * (len(entries) - 1)
    if last_port > 65535:
        raise ConfigError(
            f"PORT={plan.port} is too high: honcho numbers its processes up to {last_port}"
        )
    return "".join(f"{name}: {command}\n" for name, command in entries)


def wait_until_listening(
    port: int, process: subprocess.Popen[bytes], what: str, timeout: float = STARTUP_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open("127.0.0.1", port, timeout=0.2):
            return
        if process.poll() is not None:
            raise ServiceError(f"honcho stopped before the {what} listened on port {port}")
        time.sleep(0.2)
    raise ServiceError(f"the {what} did not listen on port {port} within {timeout:.0f}s")


def register_sandbox_webhook(plan: Plan) -> str:
    values = plan.values
    with SparkClient(
        values["SPARK_API_URL"],
        values["SPARK_TOKEN_URL"],
        values["SPARK_CLIENT_ID"],
        values["SPARK_CLIENT_SECRET"],
    ) as client:
        created = client.register_webhook(
            plan.ingress_url + WEBHOOK_PATH,
            plan.webhook_secret,
            sorted(NOTIFICATION_TYPES.values()),
            name="make run",
        )
    return str(created.get("webhookId", "?"))


def relay_output(source: IO[bytes], sink: IO[bytes]) -> threading.Thread:
    """Copy honcho's output to ours, in a thread.

    honcho writes to us, not to the terminal: when the reader of our output goes away (a
    `make run | tee log` whose tee the Ctrl-C ended), honcho would die on the broken pipe
    while printing "SIGINT received", before stopping anything. Here the copy stops instead,
    and the pipe keeps being drained so honcho never blocks.
    """

    def copy() -> None:
        writable = True
        for line in iter(source.readline, b""):
            if not writable:
                continue
            try:
                sink.write(line)
                sink.flush()
            except OSError:
                writable = False

    thread = threading.Thread(target=copy, name="honcho-output", daemon=True)
    thread.start()
    return thread


def stop_honcho(process: subprocess.Popen[bytes], say: Say = _say) -> None:
    if process.poll() is not None:
        return
    say("stopping the processes")
    # honcho passes SIGTERM on to every process group it started; a Ctrl-C at the terminal
    # has already reached it, and a second request is a no-op for it.
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(HONCHO_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        say("honcho did not stop in time; killing it")
        process.kill()
        process.wait(10)


def banner(
    plan: Plan,
    env_file: Path,
    bin_dir: Path,
    webhook_id: str | None,
    emit_every: float,
    *,
    ports: OperationsPorts | None = None,
) -> str:
    cli = _relative(bin_dir / "spark-partner")
    honcho = _relative(bin_dir / "honcho")
    celery = _relative(bin_dir / "celery")
    redis_cli = "redis-cli"
    if (bin_dir / "redis-cli").exists():
        redis_cli = _relative(bin_dir / "redis-cli")
    env_option = "" if env_file.resolve() == Path(".env").resolve() else f" -e {env_file}"
    cli_option = "" if not env_option else f" --env-file {env_file}"
    lines = [
        "spark-partner is running. Ctrl-C stops everything this run started.",
        f"  ingress   {plan.ingress_url}{WEBHOOK_PATH}   (ready: {plan.ingress_url}/readyz)",
    ]
    if plan.sandbox_port is not None:
        lines += [
            f"  sandbox   {plan.values['SPARK_API_URL']}   (emits an event every "
            f"{emit_every:g}s; webhook {webhook_id} → the ingress)",
            f"            control surface: http://127.0.0.1:{plan.sandbox_port}/_sandbox/",
        ]
    else:
        lines += [
            f"  spark     {plan.values['SPARK_API_URL']}   (no local sandbox)",
            "            Spark needs a public HTTPS URL that reaches this ingress; register it:",
            f"            {cli}{cli_option} webhooks register --url https://<public host>"
            f"{WEBHOOK_PATH}",
        ]
    if ports is not None:
        lines += [
            f"  flower    http://127.0.0.1:{ports.flower}/",
            f"  metrics   {plan.ingress_url}/metrics   (ingress)",
            f"            http://127.0.0.1:{ports.worker_metrics}/metrics   (worker)",
            f"            http://127.0.0.1:{ports.metrics}/metrics   (ledgers, queues, beat)",
        ]
    lines += [
        f"  status    {cli}{cli_option} status",
        f"  events    {cli}{cli_option} events list --json",
        f"  queues    {honcho} run{env_option} {celery} -A worker.app inspect active",
        f"            {honcho} run{env_option} {celery} -A worker.app inspect reserved",
        f"            {redis_cli} -u {redact_url(plan.values['REDIS_URL'])} llen ingest"
        "   (waiting messages; likewise `llen spark`)",
        f"  settings  {env_file}",
        "",
    ]
    return "\n".join(lines)


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@contextlib.contextmanager
def _signals_as_interrupts() -> Iterator[None]:
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore_interrupts() -> None:
    """While shutting down: another Ctrl-C must not leave servers running."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)


def run_stack(
    environ: Mapping[str, str],
    *,
    state_dir: Path,
    env_file: Path,
    procfile: Path,
    emit_every: float,
    say: Say = _say,
) -> int:
    """Everything `make run` does; returns the exit status."""
    bin_dir = Path(sys.executable).parent
    try:
        # Refuses, among other mistakes, some of the four Spark settings without the others.
        settings = load_settings(environ)
    except ConfigError as exc:
        say(f"configuration: {exc}")
        return 2
    if port_open("127.0.0.1", settings.port):
        say(f"port {settings.port} is in use: stop what holds it or set PORT=<free port>")
        return 1
    state_dir.mkdir(parents=True, exist_ok=True)

    services: Services | None = None
    honcho: subprocess.Popen[bytes] | None = None
    try:
        with _signals_as_interrupts():
            try:
                services = resolve_services(settings, state_dir, say)
            except ServiceError as exc:
                say(str(exc))
                return 1
            plan = plan_settings(settings, services, read_dotenv(env_file), free_port())
            ports = OperationsPorts.choose(environ)
            env = process_environment(environ, {**plan.values, **ports.environment()}, bin_dir)

            say("applying migrations")
            subprocess.run(
                [str(bin_dir / "spark-partner"), "--env-file", str(env_file), "db", "upgrade"],
                env=env,
                check=True,
            )
            write_env_file(env_file, plan.values)
            runtime = state_dir / "Procfile"
            runtime.write_text(
                runtime_procfile(procfile, plan, emit_every, flower_port=ports.flower),
                encoding="utf-8",
            )

            honcho = subprocess.Popen(
                [
                    str(bin_dir / "honcho"), "start",
                    "-f", str(runtime.resolve()),
                    "-e", str(env_file.resolve()),
                    "-d", str(Path.cwd()),
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
            if honcho.stdout is not None:
                relay_output(honcho.stdout, sys.stdout.buffer)
            wait_until_listening(plan.port, honcho, "ingress")
            webhook_id = None
            if plan.sandbox_port is not None:
                wait_until_listening(plan.sandbox_port, honcho, "sandbox")
                webhook_id = register_sandbox_webhook(plan)
            say(banner(plan, env_file, bin_dir, webhook_id, emit_every, ports=ports))
            return honcho.wait()
    except (KeyboardInterrupt, Interrupted):
        return 130
    except (ConfigError, ServiceError, SparkError, subprocess.CalledProcessError) as exc:
        say(f"stopped: {exc}")
        return 1
    finally:
        _ignore_interrupts()
        if honcho is not None:
            stop_honcho(honcho, say)
        if services is not None and services.started:
            say("stopping the private servers")
            services.stop()


@click.group()
def main() -> None:
    """Local development stack (the work behind `make run`)."""


@main.command("run")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".run"),
    show_default=True,
    help="Private servers' data, the run-time Procfile.",
)
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(".env"),
    show_default=True,
    help="Where the resolved settings are written.",
)
@click.option(
    "--procfile",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=Path("Procfile"),
    show_default=True,
)
@click.option(
    "--emit-every",
    type=click.FloatRange(min=0.1),
    default=SANDBOX_EMIT_EVERY,
    show_default=True,
    help="Seconds between the sandbox's simulated events.",
)
def run_command(state_dir: Path, env_file: Path, procfile: Path, emit_every: float) -> None:
    """Run ingress, worker, beat (and the sandbox) until Ctrl-C."""
    # The one place this tool looks at the environment; everything below takes a mapping.
    status = run_stack(
        dict(os.environ),
        state_dir=state_dir,
        env_file=env_file,
        procfile=procfile,
        emit_every=emit_every,
    )
    sys.exit(status)


if __name__ == "__main__":
    main()
