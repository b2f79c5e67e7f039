"""compose.yaml: parses, runs what the Procfile runs, and sets only settings the service knows."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# Services that are not ours: their images take their own variables.
INFRASTRUCTURE = {"redis", "postgres"}
# Interpolated by compose itself, never passed to our processes under this name.
COMPOSE_ONLY_VARIABLES = {"POSTGRES_PASSWORD"}


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "compose.yaml").read_text())
    return loaded


def services() -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"]
    return found


# The Procfile runs worker and beat under this, for honcho, which stops everything when one
# process exits; compose leaves restarting to Docker (`restart: unless-stopped`).
SUPERVISE = ["python", "-m", "devstack.supervise", "--"]


def procfile(*, supervised: bool = False) -> dict[str, list[str]]:
    """Each process's command; without the supervising wrapper unless `supervised`."""
    commands = {}
    for line in (REPO / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if command.strip():
            argv = shlex.split(command)
            if not supervised and argv[: len(SUPERVISE)] == SUPERVISE:
                argv = argv[len(SUPERVISE) :]
            commands[name.strip()] = argv
    return commands


def argv(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def interpolated(value: str) -> str:
    """The value as compose would pass it, with every `${...}` given as "value"."""
    return re.sub(r"\$\{[^}]*\}", "value", value)


def known_settings() -> set[str]:
    """Names shared/config.py reads, with the `_FILE` variant of each secret."""
    source = (REPO / "shared" / "config.py").read_text()
    names = set()
    for method, name in re.findall(r'env\.(\w+)\(\s*"([A-Z][A-Z0-9_]*)"', source):
        names.add(name)
        if method == "secret":
            names.add(f"{name}_FILE")
    return names


def app_services() -> dict[str, Any]:
    return {name: svc for name, svc in services().items() if name not in INFRASTRUCTURE}


def test_it_knows_the_settings_of_shared_config() -> None:
    # Guards the parser below: if config.py changes shape, this fails instead of passing empty.
    assert {"DATABASE_URL", "DATABASE_URL_FILE", "REDIS_URL", "PORT"} <= known_settings()


@pytest.mark.parametrize("process", ["web", "worker", "beat", "metrics"])
def test_it_runs_the_procfile_commands(process: str) -> None:
    command = argv(services()[process])

    # Compose runs the programs from the installed virtual environment, by absolute path.
    assert [Path(command[0]).name, *command[1:]] == procfile()[process]


@pytest.mark.parametrize("process", ["worker", "beat"])
def test_it_starts_worker_and_beat_again_when_they_exit(process: str) -> None:
    # A worker can die of a broker error (Redis killed under load): honcho, running the
    # Procfile, would stop everything; the supervising wrapper starts it again. Compose's
    # restart policy does the same for the containers.
    assert procfile(supervised=True)[process][: len(SUPERVISE)] == SUPERVISE
    assert services()[process]["restart"] == "unless-stopped"


def test_it_keeps_every_acknowledged_webhook_in_redis() -> None:
    redis = services()["redis"]
    command = argv(redis)

    def option(name: str) -> str:
        return command[command.index(name) + 1]

    assert option("--appendonly") == "yes"
    assert option("--appendfsync") == "always"
    assert option("--maxmemory-policy") == "noeviction"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_it_keeps_postgres_data_in_a_volume_and_checks_its_health() -> None:
    postgres = services()["postgres"]

    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    assert "pg_isready" in postgres["healthcheck"]["test"]


def test_it_sets_only_settings_that_shared_config_reads() -> None:
    known = known_settings()
    for name, service in app_services().items():
        unknown = set(service.get("environment") or {}) - known
        assert not unknown, f"{name} sets {sorted(unknown)}, which shared/config.py never reads"

    text = (REPO / "compose.yaml").read_text()
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    assert interpolated - known - COMPOSE_ONLY_VARIABLES == set()


@pytest.mark.parametrize("process", ["web", "worker", "beat", "flower", "metrics", "migrate"])
def test_it_points_the_processes_at_the_compose_services(process: str) -> None:
    environment = services()[process]["environment"]

    assert urlsplit(interpolated(environment["DATABASE_URL"])).hostname == "postgres"
    assert urlsplit(interpolated(environment["REDIS_URL"])).hostname == "redis"
    # The ingress refuses to start without one; compose refuses to start without it too.
    assert environment["SPARK_WEBHOOK_SECRETS"].startswith("${SPARK_WEBHOOK_SECRETS:?")


def test_it_starts_the_processes_after_the_schema_and_the_broker() -> None:
    all_services = services()
    for process in ("web", "worker", "beat", "flower", "metrics"):
        depends_on = all_services[process]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully"
        assert depends_on["redis"]["condition"] == "service_healthy"
    assert all_services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name, service in all_services.items():
        for dependency in service.get("depends_on") or {}:
            assert dependency in all_services, f"{name} depends on unknown {dependency}"


def test_it_runs_the_sandbox_only_under_its_profile() -> None:
    all_services = services()

    assert all_services["sandbox"]["profiles"] == ["sandbox"]
    assert [name for name, svc in all_services.items() if svc.get("profiles")] == ["sandbox"]
    assert argv(all_services["sandbox"])[1:3] == ["-m", "sandbox"]


def test_it_declares_every_named_volume_it_mounts() -> None:
    declared = set(compose()["volumes"])
    for name, service in services().items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source}"


@pytest.mark.parametrize("process", ["web", "worker", "beat", "metrics"])
def test_it_checks_the_health_of_every_long_running_process(process: str) -> None:
    assert services()[process]["healthcheck"]["test"]


def test_it_checks_that_this_worker_node_answers_ping_and_that_beat_ticks() -> None:
    worker = " ".join(services()["worker"]["healthcheck"]["test"])
    assert "inspect ping -d celery@$$HOSTNAME" in worker
    assert services()["beat"]["healthcheck"]["test"][1:4] == [
        "/venv/bin/python",
        "-m",
        "worker.ops.beat",
    ]
