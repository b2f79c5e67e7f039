from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.db import Connection
from worker.ops.marks import mark, marks


def test_it_records_a_mark_with_its_detail_and_never_moves_it_back(db: Connection) -> None:
    now = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    mark(db, "delivery_log_check", at=now, detail={"recovered": 3})
    mark(db, "delivery_log_check", at=now - timedelta(minutes=5), detail={"recovered": 9})
    db.commit()

    recorded = marks(db)["delivery_log_check"]
    assert recorded.at == now
    assert recorded.detail == {"recovered": 3}

    mark(db, "delivery_log_check", at=now + timedelta(minutes=1))
    db.commit()
    assert marks(db)["delivery_log_check"].at == now + timedelta(minutes=1)
    assert marks(db)["delivery_log_check"].detail is None


def test_it_marks_now_by_default_and_rolls_back_with_the_work(db: Connection) -> None:
    mark(db, "something")
    db.rollback()
    assert "something" not in marks(db)

    mark(db, "something")
    db.commit()
    assert marks(db)["something"].at <= datetime.now(UTC)


def test_it_refuses_a_naive_time(db: Connection) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        mark(db, "x", at=datetime(2026, 1, 1))  # noqa: DTZ001
