"""`python -m devstack.runstack run` (`make run`): services, settings, processes, shutdown."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from honcho.environ import parse as honcho_parse_env
from honcho.environ import parse_procfile

from devstack.runstack import (
    SANDBOX_CLIENT_ID,
    OperationsPorts,
    Services,
    banner,
    format_env_file,
    plan_settings,
    postgres_reachable,
    process_environment,
    redis_reachable,
    resolve_services,
    run_stack,
    runtime_procfile,
    sandbox_command,
    write_env_file,
)
from devstack.servers import (
    DaemonRedisServer,
    ServiceError,
    environment_without,
    free_port,
    port_open,
    postgres_bin_dir,
)
from sandbox.__main__ import parse_args as parse_sandbox_args
from shared.config import ConfigError, load_settings, read_dotenv

REPO = Path(__file__).resolve().parents[2]
SPARK = {
    "SPARK_API_URL": "https://api.sandbox.voluespark.com/energy-coordination/v1",
    "SPARK_TOKEN_URL": "https://auth.identity.volue.com/connect/token",
    "SPARK_CLIENT_ID": "partner-client",
    "SPARK_CLIENT_SECRET": "partner-client-secret",
}


def unreachable_redis_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


def unreachable_postgres_url() -> str:
    return f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"


def no_services() -> Services:
    return Services(
        redis_url="redis://127.0.0.1:6379/5", database_url="postgresql://db.invalid/spark"
    )


# -- Redis and PostgreSQL ------------------------------------------------------------------------


def test_it_reuses_services_that_answer(
    redis_url: str, empty_database_url: str, tmp_path: Path
) -> None:
    settings = load_settings({"REDIS_URL": redis_url, "DATABASE_URL": empty_database_url})
    messages: list[str] = []

    services = resolve_services(settings, tmp_path / "run", messages.append)

    assert services.redis_url == redis_url
    assert services.database_url == empty_database_url
    assert services.started == []
    assert not (tmp_path / "run").exists()
    assert any("Redis: using" in message for message in messages)


def test_it_starts_private_servers_for_what_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given_redis, given_postgres = unreachable_redis_url(), unreachable_postgres_url()
    settings = load_settings({"REDIS_URL": given_redis, "DATABASE_URL": given_postgres})
    # Relative, as `make run` gives it (`.run`).
    monkeypatch.chdir(tmp_path)
    state = Path("run")
    try:
        postgres_bin_dir()
    except ServiceError as exc:
        pytest.skip(str(exc))
    services = resolve_services(settings, state, lambda message: None)
    try:
        assert len(services.started) == 2
        assert services.redis_url != given_redis
        assert services.database_url != given_postgres
        assert redis_reachable(services.redis_url)
        assert postgres_reachable(services.database_url)
        client = redis.Redis.from_url(services.redis_url)
        # Queued webhooks must survive a restart of the private Redis too.
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        client.close()

        env_file = tmp_path / ".env"
        plan = plan_settings(settings, services, {}, sandbox_port=free_port())
        write_env_file(env_file, plan.values)
        written = read_dotenv(env_file)
        assert written["REDIS_URL"] == services.redis_url
        assert written["DATABASE_URL"] == services.database_url
    finally:
        services.stop()
    for url in (services.redis_url, services.database_url):
        assert not port_open("127.0.0.1", urlsplit(url).port or 0)
    assert DaemonRedisServer(state / "redis").running_pid() is None


def test_it_finds_the_private_redis_of_a_killed_run_and_replaces_it(tmp_path: Path) -> None:
    left_behind = DaemonRedisServer(tmp_path / "redis").start()
    old_pid = left_behind.running_pid()
    assert old_pid is not None

    replacement = DaemonRedisServer(tmp_path / "redis").start()
    try:
        assert not port_open("127.0.0.1", left_behind.port)
        assert replacement.running_pid() not in (None, old_pid)
        assert redis_reachable(replacement.url)
    finally:
        replacement.stop()
    assert replacement.running_pid() is None


# -- settings ------------------------------------------------------------------------------------


def test_it_generates_a_webhook_secret_and_sandbox_settings_when_none_are_given(
    tmp_path: Path,
) -> None:
    settings = load_settings({"PORT": "8123", "SPARK_TIMEZONE": "UTC"})
    sandbox_port = free_port()

    plan = plan_settings(settings, no_services(), {}, sandbox_port)
    env_file = tmp_path / ".env"
    write_env_file(env_file, plan.values)

    written = read_dotenv(env_file)
    assert written == plan.values
    assert len(plan.webhook_secret) >= 40
    assert written["PORT"] == "8123"
    assert written["SPARK_TIMEZONE"] == "UTC"
    assert written["SPARK_API_URL"] == f"http://127.0.0.1:{sandbox_port}/energy-coordination/v1"
    assert written["SPARK_TOKEN_URL"] == f"http://127.0.0.1:{sandbox_port}/connect/token"
    assert written["SPARK_CLIENT_ID"] == SANDBOX_CLIENT_ID
    assert plan.sandbox_port == sandbox_port
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    # What the processes and the CLI will read from it.
    reread = load_settings(written)
    assert reread.webhook_secrets == (plan.webhook_secret.encode(),)
    assert reread.spark_configured
    another = plan_settings(settings, no_services(), {}, sandbox_port)
    assert another.webhook_secret != plan.webhook_secret


def test_it_keeps_the_previous_secret_unless_the_environment_gives_one() -> None:
    previous = {"SPARK_WEBHOOK_SECRETS": "kept-from-last-run", "PORT": "9999"}

    kept = plan_settings(load_settings({}), no_services(), previous, free_port())
    given = plan_settings(
        load_settings({"SPARK_WEBHOOK_SECRETS": "current, older"}),
        no_services(),
        previous,
        free_port(),
    )

    assert kept.values["SPARK_WEBHOOK_SECRETS"] == "kept-from-last-run"
    # Only the secret carries over: the old run's port is not a setting the user gave.
    assert kept.values["PORT"] == "8000"
    assert given.values["SPARK_WEBHOOK_SECRETS"] == "current,older"
    assert given.webhook_secret == "current"


def test_it_reads_a_secret_from_its_file_variant(tmp_path: Path) -> None:
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text("from-a-file\n")
    settings = load_settings({"SPARK_WEBHOOK_SECRETS_FILE": str(secret_file)})

    plan = plan_settings(settings, no_services(), {}, free_port())

    assert plan.values["SPARK_WEBHOOK_SECRETS"] == "from-a-file"


def test_it_uses_a_configured_spark_instead_of_the_sandbox() -> None:
    settings = load_settings(SPARK)

    plan = plan_settings(settings, no_services(), {}, free_port())

    assert plan.sandbox_port is None
    assert {name: plan.values[name] for name in SPARK} == SPARK
    procfile = parse_procfile(runtime_procfile(REPO / "Procfile", plan, 20))
    assert "sandbox" not in procfile.processes


def test_it_refuses_to_start_with_spark_partly_configured(tmp_path: Path) -> None:
    said: list[str] = []

    status = run_stack(
        {"SPARK_API_URL": SPARK["SPARK_API_URL"], "SPARK_CLIENT_SECRET_FILE": "/dev/null"},
        state_dir=tmp_path / "state",
        env_file=tmp_path / ".env",
        procfile=REPO / "Procfile",
        emit_every=20,
        say=said.append,
    )

    assert status == 2
    assert said == [
        "configuration: Spark API access needs SPARK_TOKEN_URL, SPARK_CLIENT_ID, "
        "SPARK_CLIENT_SECRET: set all four of SPARK_API_URL, SPARK_TOKEN_URL, SPARK_CLIENT_ID, "
        "SPARK_CLIENT_SECRET, or none"
    ]
    assert not (tmp_path / "state").exists()


def test_it_writes_values_that_both_env_parsers_read_back(tmp_path: Path) -> None:
    values = {
        "DATABASE_URL": "postgresql://user:p%40ss@db.example:5432/spark?sslmode=require",
        "SPARK_CLIENT_SECRET": "has spaces # and a hash",
        "SPARK_WEBHOOK_SECRETS": "a,b",
    }
    text = format_env_file(values)
    env_file = tmp_path / ".env"
    env_file.write_text(text)

    assert read_dotenv(env_file) == values
    assert honcho_parse_env(text) == values


# -- processes -----------------------------------------------------------------------------------


def test_it_runs_the_repository_procfile_plus_the_sandbox() -> None:
    plan = plan_settings(load_settings({"PORT": "8200"}), no_services(), {}, free_port())

    runtime = parse_procfile(runtime_procfile(REPO / "Procfile", plan, 20))
    repository = parse_procfile((REPO / "Procfile").read_text())

    assert list(runtime.processes)[: len(repository.processes)] == list(repository.processes)
    assert next(iter(runtime.processes)) == "web"
    for name, command in repository.processes.items():
        assert runtime.processes[name] == command
    sandbox = shlex.split(runtime.processes["sandbox"])
    assert sandbox[:3] == ["python", "-m", "sandbox"]
    args = parse_sandbox_args(sandbox[3:])
    assert args.port == plan.sandbox_port
    assert args.emit_every == 20
    assert args.client_id == plan.values["SPARK_CLIENT_ID"]
    assert args.client_secret == plan.values["SPARK_CLIENT_SECRET"]


def test_it_hands_the_sandbox_credentials_that_start_with_a_dash() -> None:
    # token_urlsafe starts one value in 64 with "-": argparse took it for an option.
    plan = plan_settings(load_settings({"PORT": "8200"}), no_services(), {}, free_port())
    plan.values.update(SPARK_CLIENT_ID="-id", SPARK_CLIENT_SECRET="-x9Zq")

    command = shlex.split(sandbox_command(plan, 20))

    args = parse_sandbox_args(command[3:])
    assert (args.client_id, args.client_secret) == ("-id", "-x9Zq")


def test_it_refuses_a_port_that_honcho_would_push_past_65535() -> None:
    plan = plan_settings(load_settings({"PORT": "65500"}), no_services(), {}, free_port())

    with pytest.raises(ConfigError, match="PORT=65500"):
        runtime_procfile(REPO / "Procfile", plan, 20)


def test_it_gives_processes_the_resolved_settings_and_not_their_file_variants(
    tmp_path: Path,
) -> None:
    plan = plan_settings(load_settings({}), no_services(), {}, free_port())
    environ = {
        "DATABASE_URL_FILE": str(tmp_path / "database-url"),
        "REDIS_URL": "redis://elsewhere:6379/0",
        "PATH": "/usr/bin",
        "SPARK_WEBHOOK_ALLOW_UNSIGNED": "0",
    }

    env = process_environment(environ, plan.values, tmp_path / "bin")

    assert "DATABASE_URL_FILE" not in env
    assert env["REDIS_URL"] == plan.values["REDIS_URL"]
    assert env["SPARK_WEBHOOK_ALLOW_UNSIGNED"] == "0"
    assert env["PATH"] == f"{tmp_path / 'bin'}{os.pathsep}/usr/bin"
    assert env["GUNICORN_CMD_ARGS"] == f"--bind 127.0.0.1:{plan.values['PORT']}"
    assert env["LOG_FORMAT"] == "console"
    chosen = process_environment({"LOG_FORMAT": "json"}, plan.values, tmp_path)
    assert chosen["LOG_FORMAT"] == "json"
    assert load_settings(env).database_url == plan.values["DATABASE_URL"]


# -- the whole run -------------------------------------------------------------------------------


def _descendants(pid: int) -> set[int]:
    table = subprocess.run(
        ["ps", "-eo", "pid=,ppid="], capture_output=True, text=True, check=True
    ).stdout
    children: dict[int, list[int]] = {}
    for line in table.splitlines():
        child, parent = (int(field) for field in line.split())
        children.setdefault(parent, []).append(child)
    found: set[int] = set()
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def _alive(pid: int) -> bool:
    result = subprocess.run(
        ["ps", "-p", str(pid), "-o", "stat="], capture_output=True, text=True, check=False
    )
    state = result.stdout.strip()
    return result.returncode == 0 and bool(state) and not state.startswith("Z")


def _events(env_file: Path) -> list[dict[str, object]]:
    cli = str(Path(sys.executable).parent / "spark-partner")
    result = subprocess.run(
        [cli, "--env-file", str(env_file), "events", "list", "--json"],
        env=process_environment(
            {"PATH": os.environ.get("PATH", "")},
            read_dotenv(env_file),
            Path(sys.executable).parent,
        ),
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if result.returncode != 0:
        return []
    events: list[dict[str, object]] = json.loads(result.stdout)
    return events


@pytest.fixture
def stack_env(empty_database_url: str) -> dict[str, str]:
    # Redis is left to the run (a private one); PostgreSQL is a fresh database of our own.
    return environment_without(
        ("SPARK_", "DATABASE_URL", "REDIS_URL", "PORT"),
        DATABASE_URL=empty_database_url,
        REDIS_URL=unreachable_redis_url(),
        PORT=str(free_port()),
        PYTHONUNBUFFERED="1",
    )


@pytest.fixture
def stack_processes() -> Iterator[set[int]]:
    """Pids of everything a run started, killed by pid if the test left any running."""
    pids: set[int] = set()
    yield pids
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_it_runs_the_stack_until_interrupted_and_then_stops_everything(
    tmp_path: Path, stack_env: dict[str, str], stack_processes: set[int]
) -> None:
    state, env_file, log_path = tmp_path / "run", tmp_path / ".env", tmp_path / "run.log"
    with log_path.open("wb") as log:
        run = subprocess.Popen(
            [
                *(sys.executable, "-m", "devstack.runstack", "run"),
                *("--state-dir", str(state), "--env-file", str(env_file), "--emit-every", "2"),
            ],
            cwd=REPO,
            env=stack_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    stack_processes.add(run.pid)
    try:
        deadline = time.monotonic() + 60
        events: list[dict[str, object]] = []
        while time.monotonic() < deadline and run.poll() is None:
            if "spark-partner is running" in log_path.read_text(errors="replace"):
                events = _events(env_file)
                if any(event["source"] == "webhook" for event in events):
                    break
            time.sleep(1)
        output = log_path.read_text(errors="replace")
        assert run.poll() is None, f"the run ended early:\n{output[-4000:]}"
        assert any(event["source"] == "webhook" for event in events), output[-4000:]

        settings = read_dotenv(env_file)
        ports = [
            int(settings["PORT"]),
            urlsplit(settings["SPARK_API_URL"]).port,
            urlsplit(settings["REDIS_URL"]).port,
        ]
        assert settings["REDIS_URL"] != stack_env["REDIS_URL"]
        redis_pid = DaemonRedisServer(state / "redis").running_pid()
        assert redis_pid is not None
        started = _descendants(run.pid) | {redis_pid}
        stack_processes.update(started)
        assert len(started) >= 5  # honcho, web, worker, beat, sandbox (and their children)

        run.send_signal(signal.SIGINT)
        assert run.wait(60) == 130
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(10)

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in started):
        time.sleep(0.2)
    assert [pid for pid in started if _alive(pid)] == []
    assert [port for port in ports if port and port_open("127.0.0.1", port)] == []


def test_it_runs_flower_on_loopback_and_prints_where_flower_and_the_metrics_are() -> None:
    plan = plan_settings(load_settings({"PORT": "8200"}), no_services(), {}, free_port())
    ports = OperationsPorts(flower=5999, worker_metrics=9301, metrics=9302)

    runtime = parse_procfile(runtime_procfile(REPO / "Procfile", plan, 20, flower_port=5999))
    shown = banner(plan, Path(".env"), REPO / ".venv" / "bin", "wh-1", 20, ports=ports)

    assert shlex.split(runtime.processes["flower"]) == [
        "celery", "-A", "worker.app", "flower", "--address=127.0.0.1", "--port=5999",
    ]  # fmt: skip
    assert "flower    http://127.0.0.1:5999/" in shown
    assert "http://127.0.0.1:9301/metrics" in shown
    assert "http://127.0.0.1:9302/metrics" in shown
    assert ports.environment() == {"WORKER_METRICS_PORT": "9301", "METRICS_PORT": "9302"}


def test_it_takes_the_operations_ports_given_and_a_free_one_for_a_busy_usual_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        chosen = OperationsPorts.choose({"FLOWER_PORT": "6001", "WORKER_METRICS_PORT": "0"})
    assert chosen.flower == 6001
    assert chosen.worker_metrics == 0
    assert chosen.metrics != port
