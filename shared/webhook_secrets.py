"""The webhook secrets the ingress accepts, and the file that holds them during a rotation.

With `SPARK_WEBHOOK_SECRETS` in the environment the set is fixed for the life of the process:
a change needs a restart of the ingress. With `SPARK_WEBHOOK_SECRETS_FILE` the ingress looks
at the file at most once a second and re-reads it when it changed (another inode, size or
modification time), so `spark-partner webhooks rotate-secret` changes the accepted set of a
running ingress, every gunicorn process within a second, with no restart.

The file holds the secrets comma-separated, current first (the one Spark signs with), as
`SPARK_WEBHOOK_SECRETS` does. It is replaced atomically (a new file renamed over it), so a
reader never sees half of it. A file that becomes unreadable or empty is an error in the log,
and the last good set stays in force: the ingress never turns to accepting nothing, or
anything, because of a bad write.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from shared.config import parse_secret_list

log = logging.getLogger(__name__)

CHECK_EVERY_SECONDS = 1.0


class AcceptedSecrets:
    def __init__(
        self,
        initial: tuple[bytes, ...],
        path: Path | None = None,
        *,
        check_every: float = CHECK_EVERY_SECONDS,
    ) -> None:
        self._secrets = initial
        self._path = path
        self._check_every = check_every
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self._stamp = _stamp(path) if path is not None else None

    def __repr__(self) -> str:
        return f"AcceptedSecrets({len(self._secrets)} secret(s), path={self._path})"

    def current(self) -> tuple[bytes, ...]:
        """The accepted secrets, current first; re-read from the file when it changed."""
        if self._path is None or time.monotonic() - self._checked < self._check_every:
            return self._secrets
        with self._lock:
            if time.monotonic() - self._checked >= self._check_every:
                self._reload(self._path)
                self._checked = time.monotonic()
            return self._secrets

    def _reload(self, path: Path) -> None:
        stamp = _stamp(path)
        if stamp == self._stamp:
            return
        try:
            secrets = parse_secret_list(path.read_text(encoding="utf-8").strip())
        except OSError as exc:
            log.error("webhook secrets file %s unreadable (%s); keeping the last set", path, exc)
            return
        if not secrets:
            log.error("webhook secrets file %s is empty; keeping the last set", path)
            return
        self._stamp = stamp
        if secrets != self._secrets:
            self._secrets = secrets
            log.info("webhook secrets re-read from %s: %d accepted", path, len(secrets))


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return (status.st_ino, status.st_size, status.st_mtime_ns)


def write_secrets_file(path: Path, secrets: tuple[bytes, ...]) -> None:
    """Replace the file atomically, readable by its owner only."""
    if not secrets:
        raise ValueError("refusing to write an empty set of webhook secrets")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(",".join(secret.decode() for secret in secrets) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
