"""PostgreSQL access: one connection pool per process, raw SQL from named queries."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception,
    wait_random_exponential,
)

from shared.db.queries import QUERIES

Connection = psycopg.Connection[DictRow]
Params = dict[str, Any] | None

# Errors that mean "the database is unreachable or went away": worth retrying later, never a
# reason to drop an event.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (psycopg.OperationalError, psycopg.InterfaceError)

log = logging.getLogger(__name__)
T = TypeVar("T")

_pools: dict[str, ConnectionPool[Connection]] = {}
_pools_lock = threading.Lock()

CONNECT_KWARGS: dict[str, Any] = {
    "connect_timeout": 5,
    # A hung query must not outlive the task's time limit.
    "options": "-c statement_timeout=60000 -c lock_timeout=30000 -c timezone=UTC",
    "row_factory": dict_row,
}


def connect(url: str, **kwargs: Any) -> Connection:
    """A standalone connection, for the CLI and migrations."""
    return psycopg.connect(url, **{**CONNECT_KWARGS, **kwargs})


def get_pool(url: str) -> ConnectionPool[Connection]:
    """The process's pool for `url`. Created lazily so a forked worker child opens its own."""
    with _pools_lock:
        pool = _pools.get(url)
        if pool is None:
            pool = ConnectionPool(
                url,
                min_size=1,
                max_size=8,
                kwargs=CONNECT_KWARGS,
                connection_class=psycopg.Connection[DictRow],
                # Replace connections that died while idle (database restart) before use.
                check=ConnectionPool.check_connection,
                timeout=10,
                open=True,
                name="spark-partner",
            )
            _pools[url] = pool
        return pool


def close_pools() -> None:
    with _pools_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()


@contextmanager
def connection(url: str) -> Iterator[Connection]:
    with get_pool(url).connection() as conn:
        yield conn


def execute(conn: Connection, name: str, params: Params = None) -> psycopg.Cursor[DictRow]:
    return conn.execute(QUERIES[name], params)


def fetch_one(conn: Connection, name: str, params: Params = None) -> DictRow | None:
    return execute(conn, name, params).fetchone()


def fetch_all(conn: Connection, name: str, params: Params = None) -> list[DictRow]:
    return execute(conn, name, params).fetchall()


def record_with_retries(
    record: Callable[[], T], *, until: float, on: Connection | None = None
) -> T:
    """Runs `record`, one transaction recording what a call to the outside world did (a plan
    sent, a report posted), and returns what it returns.

    Not recorded, the call is made again once its claim's lease runs out, so a transient
    database error (a statement PostgreSQL cancels on waking from a hang longer than
    `statement_timeout`, a restart) runs it again, until the monotonic time `until` (the
    lease's end). With `on`, a broken connection ends the attempts: retrying on it cannot
    succeed.
    """

    def worth_retrying(exc: BaseException) -> bool:
        return isinstance(exc, TRANSIENT_ERRORS) and not (on is not None and on.closed)

    retrying = Retrying(
        retry=retry_if_exception(worth_retrying),
        stop=lambda _: time.monotonic() >= until,
        wait=wait_random_exponential(multiplier=0.5, max=5.0),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )
    return retrying(record)
