"""The settings of consumption and reports: typed, with defaults, refusing what is wrong."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from shared.config import ConfigError, load_settings


def test_it_has_defaults_for_reports_and_no_consumption_tokens() -> None:
    settings = load_settings({})

    assert settings.consumption_api_tokens == ()
    assert settings.report_points_field == "points"
    assert settings.report_grace == timedelta(hours=24)
    assert settings.report_settle == timedelta(hours=2)
    assert settings.report_max_payloads == 10_000
    assert settings.spark_rate_limit == 10.0
    assert settings.report_max_wait == timedelta(hours=24)
    assert settings.report_final_margin == timedelta(hours=6)
    assert settings.report_corrections == "off"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", timedelta(hours=24)),
        ("3600s", timedelta(hours=1)),
        ("90", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("2d", timedelta(days=2)),
        ("1.5h", timedelta(minutes=90)),
    ],
)
def test_it_reads_durations_in_seconds_minutes_hours_or_days(
    text: str, expected: timedelta
) -> None:
    settings = load_settings({"SPARK_REPORT_GRACE": text, "SPARK_REPORT_SETTLE": text})

    assert settings.report_grace == settings.report_settle == expected


def test_it_reads_consumption_tokens_from_a_file_and_keeps_them_out_of_its_repr(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tokens"
    path.write_text("first-token, second-token\n")

    settings = load_settings({"CONSUMPTION_API_TOKENS_FILE": str(path)})

    assert settings.consumption_api_tokens == ("first-token", "second-token")
    assert "first-token" not in repr(settings)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SPARK_REPORT_GRACE": "a day"}, "SPARK_REPORT_GRACE must be a duration"),
        ({"SPARK_REPORT_SETTLE": "-1h"}, "SPARK_REPORT_SETTLE must be a duration"),
        ({"SPARK_REPORT_POINTS_FIELD": "values"}, "SPARK_REPORT_POINTS_FIELD must be one of"),
        ({"SPARK_REPORT_MAX_PAYLOADS": "0"}, "SPARK_REPORT_MAX_PAYLOADS must be at least 1"),
        ({"SPARK_REPORT_MAX_WAIT": "a day"}, "SPARK_REPORT_MAX_WAIT must be a duration"),
        ({"SPARK_REPORT_CORRECTIONS": "add"}, "SPARK_REPORT_CORRECTIONS must be one of off, rep"),
        ({"SPARK_RATE_LIMIT": "0"}, "SPARK_RATE_LIMIT must be a positive number"),
        ({"CONSUMPTION_API_TOKENS": "a", "CONSUMPTION_API_TOKENS_FILE": "/x"}, "not both"),
    ],
)
def test_it_fails_loudly_on_bad_values(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ)
