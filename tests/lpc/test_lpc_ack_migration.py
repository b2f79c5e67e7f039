"""Migration 0024: the acknowledgements of the former outbox lpc_acks, and their attempts,
become reports of kind 'lpc_ack' in the ledger, in whatever state they were."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from shared.db import connect
from shared.db.migrate import MIGRATIONS_DIR, upgrade

ARRIVED = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)


def _migrations_until(directory: Path, last: int) -> Path:
    directory.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if int(path.name[:4]) <= last:
            shutil.copy(path, directory / path.name)
    return directory


def _event(conn: psycopg.Connection[dict[str, object]], event_id: str) -> None:
    conn.execute(
        "INSERT INTO events (event_id, notification_type, payload, raw_body, first_received_at,"
        " last_received_at, first_source) VALUES (%s, 'ResourceLPCRequested', '{}', '', %s, %s,"
        " 'webhook')",
        (event_id, ARRIVED, ARRIVED),
    )
    conn.execute(
        "INSERT INTO lpc_events (event_id, kind, received_at, target_count)"
        " VALUES (%s, 'resource', %s, 1)",
        (event_id, ARRIVED),
    )


def test_it_moves_the_acknowledgements_and_their_attempts_onto_the_ledger(
    empty_database_url: str, tmp_path: Path
) -> None:
    before = _migrations_until(tmp_path / "before", 23)
    with connect(empty_database_url) as conn:
        upgrade(conn, before)
    with psycopg.connect(empty_database_url, row_factory=dict_row) as conn:
        _event(conn, "sent-ack")
        _event(conn, "due-ack")
        due_by = ARRIVED + timedelta(minutes=5)
        conn.execute(
            "INSERT INTO lpc_acks (event_id, status, due_by, next_attempt_at, body, built_at,"
            " idempotency_key, acknowledged, declined, attempts, ambiguous_attempts,"
            " spark_report_id, sent_at, created_at, updated_at) VALUES"
            " ('sent-ack', 'sent', %(due_by)s, NULL, '{\"eventId\":\"sent-ack\"}', %(at)s,"
            "  'lpc-ack/sent-ack', 1, 0, 2, 1, 'spark-9', %(at)s, %(at)s, %(at)s),"
            " ('due-ack', 'due', %(due_by)s, %(due_by)s, NULL, NULL, NULL, NULL, NULL, 0, 0,"
            "  NULL, NULL, %(at)s, %(at)s)",
            {"due_by": due_by, "at": ARRIVED},
        )
        conn.execute(
            "INSERT INTO lpc_ack_attempts (event_id, attempt, started_at, finished_at, outcome,"
            " http_status, error) VALUES"
            " ('sent-ack', 1, %(at)s, %(at)s, 'unknown', NULL, 'no answer'),"
            " ('sent-ack', 2, %(at)s, %(at)s, 'accepted', 201, NULL)",
            {"at": ARRIVED},
        )

    with connect(empty_database_url) as conn:
        applied = upgrade(conn, _migrations_until(tmp_path / "after", 24))

    assert [m.version for m in applied] == [24]
    with psycopg.connect(empty_database_url, row_factory=dict_row) as conn:
        reports = {
            row["event_id"]: row
            for row in conn.execute(
                "SELECT id, event_id, kind, part, parts, month, status, due_by, next_attempt_at,"
                " body, idempotency_key, payload_count, attempts, ambiguous_attempts,"
                " spark_report_id FROM reports"
            ).fetchall()
        }
        attempts = conn.execute(
            "SELECT report_id, attempt, outcome, http_status FROM report_attempts ORDER BY attempt"
        ).fetchall()
        tables = conn.execute(
            "SELECT count(*) AS n FROM pg_tables"
            " WHERE tablename IN ('lpc_acks', 'lpc_ack_attempts')"
        ).fetchone()
    sent, due = reports["sent-ack"], reports["due-ack"]
    assert (sent["kind"], sent["part"], sent["parts"], sent["month"]) == ("lpc_ack", 1, 1, None)
    assert (sent["status"], sent["attempts"], sent["ambiguous_attempts"]) == ("sent", 2, 1)
    assert (sent["idempotency_key"], sent["spark_report_id"]) == ("lpc-ack/sent-ack", "spark-9")
    assert (sent["body"], sent["payload_count"]) == ('{"eventId":"sent-ack"}', 1)
    assert (due["status"], due["next_attempt_at"], due["body"]) == ("due", due["due_by"], None)
    assert attempts == [
        {"report_id": sent["id"], "attempt": 1, "outcome": "unknown", "http_status": None},
        {"report_id": sent["id"], "attempt": 2, "outcome": "accepted", "http_status": 201},
    ]
    assert tables == {"n": 0}
