from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from shared.config import ConfigError, load_settings, read_dotenv


def test_it_has_working_defaults_for_a_developer_machine() -> None:
    settings = load_settings({})
    assert settings.timezone == ZoneInfo("Europe/Oslo")
    assert settings.port == 8000
    assert settings.webhook_secrets == ()
    assert settings.auto_enroll == "off"
    assert not settings.spark_configured


def test_it_splits_webhook_secrets_current_first() -> None:
    settings = load_settings({"SPARK_WEBHOOK_SECRETS": " new-secret , old-secret ,"})
    assert settings.webhook_secrets == (b"new-secret", b"old-secret")


def test_it_reads_secrets_from_files(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("from-a-file\n")
    others = {name: value for name, value in SPARK.items() if name != "SPARK_CLIENT_SECRET"}
    settings = load_settings(
        {**others, "SPARK_CLIENT_SECRET_FILE": str(path), "SPARK_WEBHOOK_SECRETS_FILE": str(path)}
    )
    assert settings.spark_client_secret == "from-a-file"
    assert settings.webhook_secrets == (b"from-a-file",)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PORT": "eighty"}, "PORT must be an integer"),
        ({"PORT": "70000"}, "PORT must be a TCP port"),
        ({"SPARK_TIMEZONE": "Mars/Olympus"}, "not a known time zone"),
        ({"SPARK_WEBHOOK_ALLOW_UNSIGNED": "maybe"}, "must be a boolean"),
        ({"SPARK_AUTO_ENROLL": "everyone"}, "SPARK_AUTO_ENROLL must be one of"),
        ({"SPARK_CLIENT_SECRET": "a", "SPARK_CLIENT_SECRET_FILE": "/x"}, "not both"),
        ({"SPARK_CLIENT_SECRET_FILE": "/nonexistent/secret"}, "cannot read"),
        ({"SPARK_ELIGIBILITY_SETTLE_SECONDS": "soon"}, "must be a number"),
    ],
)
def test_it_fails_loudly_on_bad_values(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ)


def test_it_refuses_to_run_unsigned_unless_explicitly_allowed() -> None:
    with pytest.raises(ConfigError, match="refusing to accept unsigned"):
        load_settings({}).require_webhook_secrets()
    load_settings({"SPARK_WEBHOOK_ALLOW_UNSIGNED": "1"}).require_webhook_secrets()


SPARK = {
    "SPARK_API_URL": "https://spark.example/energy-coordination/v1/",
    "SPARK_TOKEN_URL": "https://auth.example/connect/token",
    "SPARK_CLIENT_ID": "partner",
    "SPARK_CLIENT_SECRET": "secret",
}


def test_it_takes_all_four_spark_settings_or_none() -> None:
    settings = load_settings(SPARK)
    assert settings.spark_api_url == "https://spark.example/energy-coordination/v1"
    assert settings.spark_configured
    settings.require_spark()

    nothing = load_settings({})
    assert not nothing.spark_configured
    with pytest.raises(ConfigError, match="needs SPARK_API_URL, SPARK_TOKEN_URL, SPARK_CLIENT_ID"):
        nothing.require_spark()


@pytest.mark.parametrize("left_out", sorted(SPARK))
def test_it_refuses_some_spark_settings_without_the_others_naming_the_missing(
    left_out: str,
) -> None:
    partial = {name: value for name, value in SPARK.items() if name != left_out}

    with pytest.raises(ConfigError, match=f"Spark API access needs {left_out}: set all four"):
        load_settings(partial)


def test_it_reads_modes_case_insensitively_and_names_the_choices() -> None:
    settings = load_settings({"SPARK_AUTO_ENROLL": "Consented", "SPARK_REPORT_CORRECTIONS": "OFF"})
    assert (settings.auto_enroll, settings.report_corrections) == ("consented", "off")
    with pytest.raises(ConfigError, match="one of points, curvePoints, got 'POINTS'"):
        load_settings({"SPARK_REPORT_POINTS_FIELD": "POINTS"})


def test_it_keeps_secrets_out_of_its_repr() -> None:
    settings = load_settings(
        {**SPARK, "SPARK_WEBHOOK_SECRETS": "hush-1", "SPARK_CLIENT_SECRET": "hush-2"}
    )
    assert "hush" not in repr(settings)


def test_it_parses_dotenv_files(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("# comment\nexport A=1\nB='two words'\nC=\"x=y\"\n\n")
    assert read_dotenv(path) == {"A": "1", "B": "two words", "C": "x=y"}
    path.write_text("not a setting\n")
    with pytest.raises(ConfigError, match=":1: expected NAME=value"):
        read_dotenv(path)
