from __future__ import annotations

from datetime import UTC, datetime

from celery import Celery

from shared.db import Connection
from tests.worker.cli import run, run_json
from worker.events.inbox import ingest


def test_it_lists_dead_letters_and_replays_them(
    database_url: str, db: Connection, worker_app: Celery
) -> None:
    ingest(
        db,
        delivery_id="d1",
        raw=b"{broken",
        received_at=datetime.now(UTC),
        source="webhook",
        settings=worker_app.conf.spark_settings,
        sender=worker_app,
    )
    db.commit()

    listed = run_json(database_url, "deadletters", "list")
    assert len(listed) == 1
    assert listed[0]["reason"].startswith("not JSON")
    assert listed[0]["size"] == len(b"{broken")

    replay = run(database_url, "deadletters", "replay", str(listed[0]["id"]))
    assert replay.exit_code == 1
    assert "still broken: not JSON" in replay.output
    assert run_json(database_url, "deadletters", "list")[0]["replay_result"].startswith(
        "still broken"
    )
    assert run(database_url, "deadletters", "replay", "424242").exit_code == 1
