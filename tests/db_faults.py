"""Database faults a test can aim at one statement, on the real PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from psycopg import sql

from tests.waiting import wait_for


class CancelTheNextWrite:
    """Holds every row of `table` in a session of its own until another session's UPDATE of
    it waits for them, cancels that statement (as PostgreSQL cancels one that a hang kept
    past `statement_timeout` when it wakes up), then lets go. Started by `start()`, in a
    thread; `cancelled` is set once it cancelled one, `errors` says why it did not."""

    def __init__(self, database_url: str, table: str) -> None:
        self.database_url = database_url
        self.table = table
        self.cancelled = threading.Event()
        self.errors: list[BaseException] = []

    def start(self) -> None:
        holder = psycopg.connect(self.database_url)
        holder.execute(sql.SQL("SELECT 1 FROM {} FOR UPDATE").format(sql.Identifier(self.table)))
        threading.Thread(target=self._cancel, args=(holder,), daemon=True).start()

    def _cancel(self, holder: psycopg.Connection[Any]) -> None:
        waiting = (
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE %s"
        )
        try:
            with psycopg.connect(self.database_url, autocommit=True) as admin:
                pids: list[Any] = []

                def writing() -> bool:
                    pids[:] = admin.execute(waiting, (f"%UPDATE {self.table}%",)).fetchall()
                    return bool(pids)

                wait_for(writing, 10, f"an UPDATE of {self.table} to wait for the held rows")
                admin.execute("SELECT pg_cancel_backend(%s)", (pids[0][0],))
                self.cancelled.set()
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            holder.rollback()
            holder.close()
