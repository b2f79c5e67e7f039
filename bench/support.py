"""What the benchmarks share: a freshly migrated database of their own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg

from shared.db import close_pools, connect
from shared.db.migrate import upgrade


@contextmanager
def fresh_database(server_url: str, label: str) -> Iterator[str]:
    """A new database on `server_url` with every migration applied, dropped afterwards."""
    name = f"sp_bench_{label}_{os.getpid()}"
    parts = urlsplit(server_url)
    url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with connect(url) as conn:
            upgrade(conn)
        yield url
    finally:
        close_pools()
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
