"""PostgreSQL access: one connection pool per process, raw SQL from named queries."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from shared.db.queries import QUERIES

Connection = psycopg.Connection[DictRow]
Params = dict[str, Any] | None

# Errors that mean "the database is unreachable or went away": worth retrying later, never a
# reason to drop an event.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (psycopg.OperationalError, psycopg.InterfaceError)

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
