"""`spark-partner reports send --event ID | --due`: build a curve's report and send it to Spark
(the sandbox), recording Spark's answer."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.sandbox import SandboxHandle
from tests.reports.support import (
    HOUR,
    accepted_reports,
    cli,
    cli_json,
    curve,
    execute,
    import_readings,
    points_of,
    reading,
    report_rows,
    rows,
    utc,
    write_readings,
)

# A curve for three hours that do not start on the hour.
FIRST = datetime(2026, 3, 3, 10, 30, tzinfo=UTC)
STARTS = [FIRST, FIRST + HOUR, FIRST + 2 * HOUR]
CREATED = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
AFTER = FIRST + 6 * HOUR


def send_event(
    database_url: str, sandbox: SandboxHandle, event_id: str, now: datetime, **env: str
) -> dict[str, Any]:
    sandbox.control.set_clock(now, frozen=True)
    result: dict[str, Any] = cli_json(
        database_url, "reports", "send", "--event", event_id, "--now", utc(now),
        sandbox=sandbox, **env,
    )  # fmt: skip
    return result


def test_it_reports_sparks_example_with_three_points_and_leaves_out_periods_without_energy(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    targets = [("car", "home"), ("heater", "cabin"), ("idle", "flat")]
    event = curve(sandbox, database_url, targets, STARTS, created_at=CREATED)
    # The car charges 2.5 hours of the 3 at 11 kW; the heater only in the second hour, in
    # 15-minute values; nothing at all from the idle resource.
    readings = [reading("car", FIRST, FIRST + 2.5 * HOUR, 27.5, location_id="home")]
    readings += [
        reading("heater", start, start + HOUR / 4, 0.5, location_id="cabin")
        for start in (FIRST + HOUR + n * HOUR / 4 for n in range(4))
    ]
    import_readings(database_url, write_readings(tmp_path / "r.csv", readings), now=AFTER)

    result = send_event(database_url, sandbox, event.event_id, AFTER)

    assert [r["status"] for r in result["results"]] == ["sent"]
    (stored,) = accepted_reports(sandbox, event.event_id)["reports"]
    body = stored["body"]
    own = [point["timestamp"] for point in event.payload["priceCurveDelta"]["points"]]
    assert [p["timestamp"] for p in points_of(body, "car")] == own
    assert [p["kiloWattHours"] for p in points_of(body, "car")] == [11.0, 11.0, 5.5]
    assert points_of(body, "heater") == [{"timestamp": own[1], "kiloWattHours": 2.0}]
    # In target order, so that a body built again is the same body, with the same key.
    assert [p["resourceId"] for p in body["payloads"]] == ["car", "heater"]
    assert {(p["payloadType"], p["resolution"]) for p in body["payloads"]} == {
        ("EnergyUsage", "01:00:00")
    }
    (report,) = report_rows(database_url, event.event_id)
    assert (report["status"], report["spark_report_id"]) == ("sent", stored["id"])
    # The body recorded is the one Spark received.
    assert json.loads(report["body"]) == json.loads(stored["rawBody"])


def test_it_counts_a_reading_without_a_location_only_for_a_resource_at_one_location(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    # The car is a target at two places, the heater at one; the van is no target.
    targets = [("car", "home"), ("car", "work"), ("heater", "cabin")]
    event = curve(sandbox, database_url, targets, STARTS, created_at=CREATED)
    readings = [
        reading("car", FIRST, FIRST + HOUR, 2.0, location_id="home"),
        reading("car", FIRST + HOUR, FIRST + 2 * HOUR, 3.0, location_id="work"),
        reading("car", FIRST + 2 * HOUR, FIRST + 3 * HOUR, 5.0),  # where? not counted
        reading("car", FIRST + HOUR / 2, FIRST + HOUR, 7.0, location_id="cottage"),  # no target
        reading("heater", FIRST, FIRST + HOUR, 1.0),
        reading("heater", FIRST, FIRST + HOUR / 2, 0.25, location_id="cabin"),
        reading("van", FIRST, FIRST + HOUR, 9.0),
    ]
    import_readings(database_url, write_readings(tmp_path / "r.csv", readings), now=AFTER)

    send_event(database_url, sandbox, event.event_id, AFTER)

    (stored,) = accepted_reports(sandbox, event.event_id)["reports"]
    own = [point["timestamp"] for point in event.payload["priceCurveDelta"]["points"]]
    payloads = {
        (p["resourceId"], p["locationId"]): [
            (q["timestamp"], q["kiloWattHours"]) for q in p["points"]
        ]
        for p in stored["body"]["payloads"]
    }
    assert payloads == {
        ("car", "home"): [(own[0], 2.0)],
        ("car", "work"): [(own[1], 3.0)],
        ("heater", "cabin"): [(own[0], 1.25)],
    }


def test_it_rounds_a_periods_exact_sum_half_up_to_the_wh_thousandth(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    # Each hour's three quarter-hour values add up to a half at the seventh decimal: in
    # floating point, whether it rounds up depended on the order of the additions, which
    # parallel workers do not fix. The sum is exact, so it always rounds up.
    event = curve(sandbox, database_url, [("heater", "cabin")], STARTS[:2], created_at=CREATED)
    quarters = {0: (0.0035333, "cabin"), 1: (0.7472357, None), 2: (0.4468285, "cabin")}
    quarters |= {4: (0.3910508, "cabin"), 5: (0.579989, None), 7: (0.3873297, "cabin")}
    readings = [
        reading("heater", FIRST + n * HOUR / 4, FIRST + (n + 1) * HOUR / 4, kwh, location_id=loc)
        for n, (kwh, loc) in quarters.items()
    ]
    import_readings(database_url, write_readings(tmp_path / "r.csv", readings), now=AFTER)

    send_event(database_url, sandbox, event.event_id, AFTER)

    (stored,) = accepted_reports(sandbox, event.event_id)["reports"]
    points = points_of(stored["body"], "heater")
    assert [p["kiloWattHours"] for p in points] == [1.197598, 1.35837]


def test_it_sends_the_deprecated_curve_points_when_configured(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    event = curve(sandbox, database_url, [("car", "home")], STARTS, created_at=CREATED)
    path = write_readings(tmp_path / "r.csv", [reading("car", FIRST, FIRST + HOUR, 3.0)])
    import_readings(database_url, path, now=AFTER)

    send_event(
        database_url, sandbox, event.event_id, AFTER, SPARK_REPORT_POINTS_FIELD="curvePoints"
    )

    (stored,) = accepted_reports(sandbox, event.event_id)["reports"]
    (payload,) = stored["body"]["payloads"]
    assert "points" not in payload
    assert payload["curvePoints"] == [
        {"timestamp": payload["curvePoints"][0]["timestamp"], "kiloWattHours": 3.0}
    ]


def test_it_reports_a_curve_of_more_than_a_hundred_periods_in_the_curves_order(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    # The build has a column per period; a PostgreSQL function takes at most 100 arguments.
    first = datetime(2026, 3, 10, 0, 0, tzinfo=UTC)
    starts = [first + n * HOUR for n in range(120)]
    event = curve(sandbox, database_url, [("car", "home")], starts, created_at=first - 12 * HOUR)
    used = {n: round(1 + n / 1000, 3) for n in range(120) if n % 7}
    readings = [reading("car", starts[n], starts[n] + HOUR, kwh) for n, kwh in used.items()]
    after = starts[-1] + 6 * HOUR
    import_readings(database_url, write_readings(tmp_path / "r.csv", readings), now=after)

    result = send_event(database_url, sandbox, event.event_id, after)

    assert [r["status"] for r in result["results"]] == ["sent"]
    (stored,) = accepted_reports(sandbox, event.event_id)["reports"]
    own = [point["timestamp"] for point in event.payload["priceCurveDelta"]["points"]]
    assert points_of(stored["body"], "car") == [
        {"timestamp": own[n], "kiloWattHours": kwh} for n, kwh in used.items()
    ]


def test_it_splits_a_report_only_above_the_payload_limit_and_says_so(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    targets = [(f"ev-{n}", f"home-{n}") for n in range(5)]
    event = curve(sandbox, database_url, targets, STARTS, created_at=CREATED)
    readings = [reading(r, FIRST, FIRST + HOUR, 1.0 + n) for n, (r, _) in enumerate(targets)]
    import_readings(database_url, write_readings(tmp_path / "r.csv", readings), now=AFTER)

    send_event(database_url, sandbox, event.event_id, AFTER, SPARK_REPORT_MAX_PAYLOADS="2")

    parts = report_rows(database_url, event.event_id)
    assert [(p["part"], p["parts"], p["payload_count"], p["status"]) for p in parts] == [
        (1, 3, 2, "sent"),
        (2, 3, 2, "sent"),
        (3, 3, 1, "sent"),
    ]
    sent = accepted_reports(sandbox, event.event_id)["reports"]
    resources = sorted(p["resourceId"] for r in sent for p in r["body"]["payloads"])
    assert resources == sorted(r for r, _ in targets)


def test_it_records_a_rejection_and_sends_the_fixed_report_again(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    event = curve(sandbox, database_url, [("car", "home")], STARTS, created_at=CREATED)
    path = write_readings(tmp_path / "r.csv", [reading("car", FIRST, FIRST + HOUR, 3.0)])
    import_readings(database_url, path, now=AFTER)
    # Spark's clock is past its deadline (end of March plus a day) while ours is not.
    late = datetime(2026, 4, 2, 12, 0, tzinfo=UTC)
    sandbox.control.set_clock(late, frozen=True)

    refused = cli(
        database_url, "reports", "send", "--event", event.event_id, "--now", utc(AFTER),
        sandbox=sandbox,
    )  # fmt: skip

    assert refused.exit_code == 1
    (report,) = report_rows(database_url, event.event_id)
    assert (report["status"], report["rejected_status"]) == ("rejected", 400)
    assert "were due by" in report["rejection"]
    # Spark named no payload: nothing could be set aside, and the alert says so.
    (alert,) = [r for r in caplog.records if getattr(r, "alert", None) == "report_rejected"]
    assert "naming none of its payloads" in alert.getMessage()
    # A better reading arrives, and Spark's clock is right again: the report is rebuilt.
    better = write_readings(tmp_path / "b.csv", [reading("car", FIRST, FIRST + HOUR, 4.0)])
    import_readings(database_url, better, now=AFTER + HOUR)
    send_event(database_url, sandbox, event.event_id, AFTER + HOUR)

    (report,) = report_rows(database_url, event.event_id)
    assert report["status"] == "sent"
    (stored,) = accepted_reports(sandbox, event.event_id)["reports"]
    assert [p["kiloWattHours"] for p in points_of(stored["body"], "car")] == [4.0]


def test_it_sends_nothing_for_an_event_without_energy_and_never_sends_twice(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    quiet = curve(sandbox, database_url, [("idle", "flat")], STARTS, created_at=CREATED)
    busy = curve(sandbox, database_url, [("car", "home")], STARTS, created_at=CREATED)
    path = write_readings(tmp_path / "r.csv", [reading("car", FIRST, FIRST + HOUR, 3.0)])
    import_readings(database_url, path, now=AFTER)
    send_event(database_url, sandbox, busy.event_id, AFTER)

    result = send_event(database_url, sandbox, quiet.event_id, AFTER)
    again = cli(
        database_url, "reports", "send", "--event", busy.event_id, "--now", utc(AFTER),
        sandbox=sandbox,
    )  # fmt: skip

    assert [r["status"] for r in result["results"]] == ["empty"]
    assert report_rows(database_url, quiet.event_id)[0]["status"] == "empty"
    assert again.exit_code == 1
    assert "was sent already" in again.output
    assert accepted_reports(sandbox)["countsByEventId"] == {busy.event_id: 1}


def test_it_sends_what_is_due_with_due_and_waits_a_day_at_most_for_the_rest(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    covered = curve(sandbox, database_url, [("car", "home")], STARTS, created_at=CREATED)
    waiting = curve(sandbox, database_url, [("van", "depot")], STARTS, created_at=CREATED)
    path = write_readings(
        tmp_path / "r.csv",
        # The car's readings reach past the curve's end; the van's stop in its second hour.
        [reading("car", FIRST, FIRST + 4 * HOUR, 8.0), reading("van", FIRST, FIRST + HOUR, 2.0)],
    )
    import_readings(database_url, path, now=AFTER)
    settled = STARTS[-1] + HOUR + timedelta(hours=2)
    sandbox.control.set_clock(settled, frozen=True)

    early = cli_json(
        database_url, "reports", "send", "--due", "--now", utc(settled - timedelta(minutes=1)),
        sandbox=sandbox,
    )  # fmt: skip
    sent = cli_json(
        database_url, "reports", "send", "--due", "--now", utc(settled), sandbox=sandbox
    )

    # SPARK_REPORT_MAX_WAIT (a day) after the event's end, whatever its readings.
    a_day_on = STARTS[-1] + HOUR + timedelta(hours=24)
    sandbox.control.set_clock(a_day_on, frozen=True)
    almost = cli_json(
        database_url, "reports", "send", "--due", "--now", utc(a_day_on - timedelta(minutes=1)),
        sandbox=sandbox,
    )  # fmt: skip
    late = cli_json(
        database_url, "reports", "send", "--due", "--now", utc(a_day_on), sandbox=sandbox
    )

    assert early["results"] == []
    assert early["sweep"]["planned"] == 2
    assert [(r["eventId"], r["status"]) for r in sent["results"]] == [(covered.event_id, "sent")]
    assert almost["results"] == []
    assert [(r["eventId"], r["status"]) for r in late["results"]] == [(waiting.event_id, "sent")]
    (van,) = accepted_reports(sandbox, waiting.event_id)["reports"]
    assert [p["kiloWattHours"] for p in points_of(van["body"], "van")] == [2.0]
    due = {r["event_id"]: r["due_reason"] for r in rows(database_url, "SELECT * FROM reports")}
    assert due == {covered.event_id: "complete", waiting.event_id: "max_wait"}


def test_it_reports_a_period_a_newer_curve_took_over_only_in_the_newer_curves_report(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    older = curve(sandbox, database_url, [("car", "home"), ("van", "depot")], STARTS,
                  created_at=CREATED)  # fmt: skip
    # A newer curve for the car only, over the last two hours.
    newer = curve(sandbox, database_url, [("car", "home")], STARTS[1:],
                  created_at=CREATED + HOUR)  # fmt: skip
    readings = [reading(r, FIRST, FIRST + 3 * HOUR, 6.0) for r in ("car", "van")]
    import_readings(database_url, write_readings(tmp_path / "r.csv", readings), now=AFTER)

    send_event(database_url, sandbox, older.event_id, AFTER)
    send_event(database_url, sandbox, newer.event_id, AFTER)

    (old_report,) = accepted_reports(sandbox, older.event_id)["reports"]
    (new_report,) = accepted_reports(sandbox, newer.event_id)["reports"]
    old_times = [p["timestamp"] for p in older.payload["priceCurveDelta"]["points"]]
    new_times = [p["timestamp"] for p in newer.payload["priceCurveDelta"]["points"]]
    assert points_of(old_report["body"], "car") == [
        {"timestamp": old_times[0], "kiloWattHours": 2.0}
    ]
    assert [p["timestamp"] for p in points_of(old_report["body"], "van")] == old_times
    assert points_of(new_report["body"], "car") == [
        {"timestamp": t, "kiloWattHours": 2.0} for t in new_times
    ]


def test_it_paces_calls_to_spark_at_the_rate_limit(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    targets = [(f"ev-{n}", "home") for n in range(5)]
    for resource_id, location_id in targets:
        curve(sandbox, database_url, [(resource_id, location_id)], STARTS, created_at=CREATED)
    readings = [reading(r, FIRST, FIRST + 4 * HOUR, 4.0) for r, _ in targets]
    import_readings(database_url, write_readings(tmp_path / "r.csv", readings), now=AFTER)
    sandbox.control.set_clock(AFTER, frozen=True)

    began = time.monotonic()
    sent = cli_json(database_url, "reports", "send", "--due", "--now", utc(AFTER),
                    sandbox=sandbox, SPARK_RATE_LIMIT="4")  # fmt: skip
    seconds = time.monotonic() - began

    assert [r["status"] for r in sent["results"]] == ["sent"] * 5
    # Five calls at four a second: four intervals of a quarter second at least.
    assert seconds >= 1.0
    assert rows(database_url, "SELECT count(*) AS n FROM spark_rate_limit") == [{"n": 1}]


def test_it_keeps_a_report_due_without_sending_it_when_the_rate_schedule_is_full(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    event = curve(sandbox, database_url, [("car", "home")], STARTS, created_at=CREATED)
    path = write_readings(tmp_path / "r.csv", [reading("car", FIRST, FIRST + HOUR, 3.0)])
    import_readings(database_url, path, now=AFTER)
    # Other processes have booked the shared schedule of Spark calls for the next hour.
    execute(
        database_url,
        "INSERT INTO spark_rate_limit (name, next_slot)"
        " VALUES ('spark', clock_timestamp() + interval '1 hour')",
    )

    began = time.monotonic()
    result = send_event(database_url, sandbox, event.event_id, AFTER)
    seconds = time.monotonic() - began

    # Refused at once rather than waited for: nothing sent, not ambiguous; tried again after
    # the hour Spark's schedule is booked for, as far as the sender's backoff cap (10 min) goes.
    assert seconds < 20
    (sent,) = result["results"]
    assert (sent["status"], sent["ambiguous"]) == ("retrying", False)
    assert "rate limit" in sent["error"]
    assert datetime.fromisoformat(sent["retryAt"]) == AFTER + timedelta(minutes=10)
    assert accepted_reports(sandbox, event.event_id)["reports"] == []
    (report,) = report_rows(database_url, event.event_id)
    assert (report["status"], report["ambiguous_attempts"]) == ("retrying", 0)


def test_it_moves_a_period_to_a_newer_curve_only_when_the_newer_covers_all_of_it(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    older = curve(sandbox, database_url, [("car", "home")], STARTS, created_at=CREATED)
    # A newer curve on the hour, from 11:00 to 13:00: it covers the older one's 11:30-12:30
    # whole and its two other periods only in part.
    on_the_hour = [FIRST + HOUR / 2, FIRST + 3 * HOUR / 2]
    newer = curve(sandbox, database_url, [("car", "home")], on_the_hour,
                  created_at=CREATED + HOUR)  # fmt: skip
    readings = [reading("car", FIRST, FIRST + 3 * HOUR, 6.0)]
    import_readings(database_url, write_readings(tmp_path / "r.csv", readings), now=AFTER)

    send_event(database_url, sandbox, older.event_id, AFTER)
    send_event(database_url, sandbox, newer.event_id, AFTER)

    (old_report,) = accepted_reports(sandbox, older.event_id)["reports"]
    (new_report,) = accepted_reports(sandbox, newer.event_id)["reports"]
    old_times = [p["timestamp"] for p in older.payload["priceCurveDelta"]["points"]]
    new_times = [p["timestamp"] for p in newer.payload["priceCurveDelta"]["points"]]
    # The partly covered periods stay with the older curve, so no minute is reported by
    # neither.
    assert points_of(old_report["body"], "car") == [
        {"timestamp": old_times[0], "kiloWattHours": 2.0},
        {"timestamp": old_times[2], "kiloWattHours": 2.0},
    ]
    assert points_of(new_report["body"], "car") == [
        {"timestamp": t, "kiloWattHours": 2.0} for t in new_times
    ]
