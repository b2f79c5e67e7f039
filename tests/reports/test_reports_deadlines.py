"""`spark-partner reports deadlines`: what is not sent yet per month, and the time left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.fixtures.sandbox import SandboxHandle
from tests.reports.support import HOUR, cli, cli_json, curve, local, utc


def test_it_shows_each_months_open_reports_deadline_and_time_left(
    sandbox: SandboxHandle, database_url: str
) -> None:
    # Two curves of March's last day and one of April's first, in Oslo time.
    last_day = local(2026, 3, 31, 9).astimezone(UTC)
    first_day = local(2026, 4, 1, 9).astimezone(UTC)
    for n, start in enumerate([last_day, last_day + HOUR, first_day]):
        curve(sandbox, database_url, [(f"ev-{n}", "home")], [start], created_at=start - 20 * HOUR)
    now = local(2026, 3, 31, 10)  # before the final sweeps of March

    months = cli_json(database_url, "reports", "deadlines", "--now", utc(now))
    text = cli(database_url, "reports", "deadlines", "--now", utc(now))

    # Nothing is planned before a sweep: the deadlines list reports of the ledger.
    assert months == []
    assert "no reports" in text.output

    cli(database_url, "reports", "send", "--due", "--now", utc(now), sandbox=sandbox)
    months = cli_json(database_url, "reports", "deadlines", "--now", utc(now))
    text = cli(database_url, "reports", "deadlines", "--now", utc(now))

    march, april = months
    assert (march["month"], march["pending"], march["open"]) == ("2026-03", 2, 2)
    # The end of March in Oslo (summer time) plus SPARK_REPORT_GRACE's default day.
    assert march["deadline"] == "2026-04-01T22:00:00+00:00"
    assert march["finalSweepsFrom"] == "2026-03-31T10:00:00+00:00"
    left = datetime(2026, 4, 1, 22, tzinfo=UTC) - now
    assert march["secondsLeft"] == left.total_seconds()
    assert (april["month"], april["pending"]) == ("2026-04", 1)
    assert "2026-03: 2 not sent (2 pending" in text.output
    assert "deadline 2026-04-02 00:00 Europe/Oslo (1 d 14 h left)" in text.output
    assert left == timedelta(days=1, hours=14)
