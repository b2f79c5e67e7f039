"""The price-curve settings of shared/config.py: defaults, and loud failures."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from shared.config import ConfigError, load_settings


def test_it_logs_plans_and_checks_at_13_30_by_default() -> None:
    curves = load_settings({}).curves

    assert curves.dispatcher == "log"
    assert (curves.check_time, curves.check_until) == (time(13, 30), time(16, 0))
    assert curves.expected_areas == ()


def test_it_reads_every_curve_setting(tmp_path: Path) -> None:
    secret = tmp_path / "dispatch-secret"
    secret.write_text("from-a-file\n")
    curves = load_settings(
        {
            "SPARK_DISPATCHER": "http",
            "SPARK_DISPATCH_URL": "https://control.example/plans",
            "SPARK_DISPATCH_SECRET_FILE": str(secret),
            "SPARK_DISPATCH_TIMEOUT_SECONDS": "2.5",
            "SPARK_DISPATCH_BATCH_SIZE": "50",
            "SPARK_DISPATCH_MAX_ATTEMPTS": "4",
            "SPARK_DISPATCH_RETRY_SECONDS": "10",
            "SPARK_CURVE_CHECK_TIME": "14:05",
            "SPARK_CURVE_CHECK_UNTIL": "17:00",
            "SPARK_EXPECTED_CURVE_AREAS": " no1, SE3 ,",
        }
    ).curves

    assert curves.dispatch_secret == b"from-a-file"
    assert "from-a-file" not in repr(curves)
    assert (curves.dispatch_timeout_seconds, curves.dispatch_batch_size) == (2.5, 50)
    assert (curves.dispatch_max_attempts, curves.dispatch_retry_seconds) == (4, 10.0)
    assert (curves.check_time, curves.check_until) == (time(14, 5), time(17, 0))
    assert curves.expected_areas == ("NO1", "SE3")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SPARK_DISPATCHER": "email"}, "SPARK_DISPATCHER must be one of log, http, celery"),
        ({"SPARK_DISPATCHER": "http"}, "needs SPARK_DISPATCH_URL and SPARK_DISPATCH_SECRET"),
        (
            {
                "SPARK_DISPATCHER": "http",
                "SPARK_DISPATCH_URL": "ftp://x",
                "SPARK_DISPATCH_SECRET": "s",
            },
            "must be an http(s) URL",
        ),
        ({"SPARK_DISPATCHER": "celery", "SPARK_DISPATCH_TASK": "x"}, "SPARK_DISPATCH_QUEUE"),
        ({"SPARK_DISPATCH_TIMEOUT_SECONDS": "0"}, "must be positive"),
        ({"SPARK_DISPATCH_BATCH_SIZE": "many"}, "must be an integer"),
        ({"SPARK_DISPATCH_MAX_ATTEMPTS": "0"}, "at least 1"),
        ({"SPARK_CURVE_CHECK_TIME": "half past one"}, "local time like 13:30"),
        ({"SPARK_CURVE_CHECK_TIME": "25:00"}, "local time like 13:30"),
        ({"SPARK_CURVE_CHECK_TIME": "16:30"}, "must be later than"),
        ({"SPARK_EXPECTED_CURVE_AREAS": "NO1,NO9"}, "unknown price area(s) NO9"),
    ],
)
def test_it_fails_loudly_on_bad_values(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(environ)
