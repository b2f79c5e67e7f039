"""`spark-partner reports deadlines`: per month and price area's zone, the deadline and the aim,
what is sent, due and waiting, and the time left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from tests.fixtures.sandbox import SandboxHandle
from tests.reports.support import HOUR, cli, cli_json, curve, local, utc

HELSINKI = ZoneInfo("Europe/Helsinki")


def test_it_shows_each_months_open_reports_deadline_and_time_left(
    sandbox: SandboxHandle, database_url: str
) -> None:
    # Two curves of March's last day and one of April's first, in Oslo time.
    last_day = local(2026, 3, 31, 9).astimezone(UTC)
    first_day = local(2026, 4, 1, 9).astimezone(UTC)
    for n, start in enumerate([last_day, last_day + HOUR, first_day]):
        curve(sandbox, database_url, [(f"ev-{n}", "home")], [start], created_at=start - 20 * HOUR)
    now = local(2026, 3, 31, 10)

    months = cli_json(database_url, "reports", "deadlines", "--now", utc(now))
    text = cli(database_url, "reports", "deadlines", "--now", utc(now))

    # Nothing is planned before a sweep: the deadlines list reports of the ledger.
    assert months == []
    assert "no reports" in text.output

    cli(database_url, "reports", "send", "--due", "--now", utc(now), sandbox=sandbox)
    months = cli_json(database_url, "reports", "deadlines", "--now", utc(now))
    text = cli(database_url, "reports", "deadlines", "--now", utc(now))

    march, april = months
    (oslo,) = march["zones"]
    assert (march["month"], oslo["zone"], oslo["pending"], oslo["open"]) == (
        "2026-03", "Europe/Oslo", 2, 2,
    )  # fmt: skip
    # The end of March in Oslo (summer time) plus SPARK_REPORT_GRACE's default day; the end
    # of March in UTC comes two hours later, so the aim is the Oslo one.
    assert oslo["deadline"] == oslo["aim"] == "2026-04-01T22:00:00+00:00"
    # SPARK_REPORT_FINAL_MARGIN's default six hours before the aim.
    assert oslo["finalSweepsFrom"] == "2026-04-01T16:00:00+00:00"
    # One of the two has ended and waits for its readings.
    assert oslo["waitingForReadings"] == 1
    assert [w["holding"] for w in march["waiting"]] == [["ev-0@home"]]
    left = datetime(2026, 4, 1, 22, tzinfo=UTC) - now
    assert oslo["secondsLeft"] == left.total_seconds()
    assert (april["month"], april["zones"][0]["pending"]) == ("2026-04", 1)
    assert "2026-03 (Europe/Oslo): 0 sent, 0 due, 1 waiting for readings, 1 not ended" in (
        text.output
    )
    assert "deadline 2026-04-01 22:00Z (end of month in Europe/Oslo + grace)" in text.output
    assert "(1 d 14 h left)" in text.output
    assert "held by ev-0@home" in text.output


def test_it_gives_a_finnish_event_the_end_of_the_month_in_helsinki_and_an_oslo_one_oslos(
    sandbox: SandboxHandle, database_url: str
) -> None:
    # October 2026: both leave summer time on the 25th; the month ends in Helsinki at
    # 22:00 UTC, in Oslo at 23:00 UTC, in UTC at midnight.
    start = datetime(2026, 10, 30, 10, tzinfo=UTC)
    fi = curve(sandbox, database_url, [("ev-fi", "koti")], [start],
               created_at=start - 20 * HOUR, price_area="FI")  # fmt: skip
    no = curve(sandbox, database_url, [("ev-no", "hjem")], [start],
               created_at=start - 20 * HOUR, price_area="NO1")  # fmt: skip
    # Midnight of November 1st in Oslo is still October in UTC: Oslo's November, UTC's
    # October, so Spark may want it by the end of October.
    november = datetime(2026, 10, 31, 23, 30, tzinfo=UTC)
    early = curve(sandbox, database_url, [("ev-no", "hjem")], [november],
                  created_at=november - 20 * HOUR, price_area="NO2")  # fmt: skip
    now = start + 2 * HOUR
    cli(database_url, "reports", "send", "--due", "--now", utc(now), sandbox=sandbox)

    listed = {r["eventId"]: r for r in cli_json(database_url, "reports", "list")}
    months = cli_json(database_url, "reports", "deadlines", "--now", utc(now))

    assert listed[fi.event_id]["zone"] == "Europe/Helsinki"
    assert listed[fi.event_id]["deadline"] == "2026-11-01T22:00:00+00:00"
    assert listed[no.event_id]["zone"] == "Europe/Oslo"
    assert listed[no.event_id]["deadline"] == "2026-11-01T23:00:00+00:00"
    assert listed[early.event_id]["month"] == "2026-11"
    assert listed[early.event_id]["deadline"] == "2026-12-01T23:00:00+00:00"
    assert listed[early.event_id]["aim"] == "2026-11-02T00:00:00+00:00"
    october, november_view = months
    assert [(z["zone"], z["deadline"]) for z in october["zones"]] == [
        ("Europe/Helsinki", "2026-11-01T22:00:00+00:00"),
        ("Europe/Oslo", "2026-11-01T23:00:00+00:00"),
    ]
    (oslo_november,) = november_view["zones"]
    assert oslo_november["aim"] == "2026-11-02T00:00:00+00:00"
    assert oslo_november["finalSweepsFrom"] == "2026-11-01T18:00:00+00:00"
    assert datetime(2026, 11, 1, 22, tzinfo=UTC) - datetime(2026, 10, 31, 22, tzinfo=UTC) == (
        timedelta(days=1)
    )
    assert datetime(2026, 10, 31, 0, tzinfo=HELSINKI).utcoffset() == timedelta(hours=2)
