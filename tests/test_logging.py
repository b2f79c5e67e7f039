"""Log lines: one structured event per line with the ids that apply, alerts as a field, and
never a secret, token, signature or webhook body."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
import structlog

from devstack.servers import free_port, port_open
from shared import logging as logs
from shared.config import ConfigError, load_log_format
from shared.signing import SIGNATURE_HEADER, sign
from tests.fixtures.services import REPO, worker_env
from tests.waiting import wait_for

SECRET = "log-test-secret-9f3c1e"
TOKEN = "log-test-token-71b2aa"
BODY_MARKER = "body-marker-5d8e0c"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes the root logger; give pytest's handlers back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    logs.clear()


# Celery prints its shutdown notices straight to the console, not through logging.
CELERY_PRINTS = re.compile(r"^worker: (Warm|Cold|Hitting Ctrl\+C again)")


def lines_of(text: str) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in text.splitlines()
        if line.strip() and not CELERY_PRINTS.match(line)
    ]


def test_it_writes_stdlib_records_as_json_with_the_bound_ids(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure_logging("test", log_format="json")
    logs.bind(event_id="e-1", notification_id="n-1", task_id="t-1")
    logging.getLogger("tests.some_module").info("stored %s", "e-1")

    [line] = lines_of(capsys.readouterr().err)

    assert line["event"] == "stored e-1"
    assert line["level"] == "info"
    assert line["logger"] == "tests.some_module"
    assert line["process"] == "test"
    assert (line["event_id"], line["notification_id"], line["task_id"]) == ("e-1", "n-1", "t-1")
    assert line["timestamp"].endswith("Z")


def test_it_makes_alerts_a_field(restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure_logging("test", log_format="json")
    logs.alert(logging.getLogger("tests"), "curve_missing", "no price curve for %s", "2026-01-01")

    [line] = lines_of(capsys.readouterr().err)

    assert line["alert"] == "curve_missing"
    assert line["level"] == "error"
    assert line["event"] == "ALERT: no price curve for 2026-01-01"


def test_it_drops_fields_named_like_secrets(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure_logging("test", log_format="json")
    structlog.get_logger("tests").warning("careless", token=TOKEN, body=BODY_MARKER, kept=1)

    [line] = lines_of(capsys.readouterr().err)

    assert line["kept"] == 1
    assert "token" not in line
    assert "body" not in line


def test_it_writes_readable_lines_for_a_console(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure_logging("test", log_format="console")
    with logs.bound(report_id=7):
        logging.getLogger("tests").warning("report sent")
    logging.getLogger("tests").warning("after")

    first, second = capsys.readouterr().err.splitlines()

    assert "report sent" in first
    assert "report_id=7" in first
    assert "report_id" not in second


def _webhook_body(event_id: str) -> bytes:
    envelope = {
        "notificationId": str(uuid.uuid4()),
        "eventId": event_id,
        "eventCreatedAtUtc": "2026-01-01T00:00:00+00:00",
        "notificationSentUtc": "2026-01-01T00:00:00+00:00",
        "notificationType": "SomethingNew",
        "payload": {"note": BODY_MARKER, "payloadType": "SomethingNew"},
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.mark.slow
def test_it_never_logs_a_secret_a_token_a_signature_or_a_body(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    env = worker_env(
        database_url,
        redis_url,
        SPARK_WEBHOOK_SECRETS=SECRET,
        CONSUMPTION_API_TOKENS=TOKEN,
        LOG_FORMAT="json",
        # Celery warns, before any logging is set up, when it runs as root (as in CI
        # containers); that warning is not a log line.
        PYTHONWARNINGS="ignore:You're running the worker with superuser privileges",
    )
    port = free_port()
    ingress_log, worker_log = tmp_path / "ingress.log", tmp_path / "worker.log"
    with ingress_log.open("wb") as out:
        ingress = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:ingress.gunicorn_conf",
             "--bind", f"127.0.0.1:{port}", "--workers", "2", "ingress.wsgi:app"],
            cwd=REPO, env={**env, "PORT": str(port)}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    with worker_log.open("wb") as out:
        # --quiet: no start-up banner, so every line of the output is a log line.
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker.app", "--quiet", "worker",
             "-Q", "ingest,spark,dispatch", "-c", "1", "--without-mingle", "--without-gossip",
             "--loglevel", "INFO", "-n", f"logs-{uuid.uuid4().hex[:8]}@%h"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(lambda: port_open("127.0.0.1", port), 20, "the ingress")
        url = f"http://127.0.0.1:{port}"
        event_id = str(uuid.uuid4())
        body = _webhook_body(event_id)
        signature = sign(SECRET.encode(), body)
        bad_signature = sign(b"not-the-secret", body)
        not_json = b"signed but not an event " + BODY_MARKER.encode()
        answers = [
            requests.post(f"{url}/webhooks/spark", data=body,
                          headers={SIGNATURE_HEADER: signature}, timeout=10),
            requests.post(f"{url}/webhooks/spark", data=body,
                          headers={SIGNATURE_HEADER: bad_signature}, timeout=10),
            requests.post(f"{url}/webhooks/spark", data=not_json,
                          headers={SIGNATURE_HEADER: sign(SECRET.encode(), not_json)}, timeout=10),
            requests.post(f"{url}/consumption", data=b"{}",
                          headers={"Authorization": f"Bearer {TOKEN}x"}, timeout=10),
        ]  # fmt: skip
        assert [a.status_code for a in answers] == [202, 401, 202, 401]

        def stored() -> bool:
            with psycopg.connect(database_url) as conn:
                events = conn.execute("SELECT count(*) FROM events").fetchone()
                letters = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
            return bool(events and events[0] == 1 and letters and letters[0] == 1)

        try:
            wait_for(stored, 60, "the event and the dead letter stored")
            wait_for(lambda: worker_log.read_text().count("succeeded") >= 2, 30, "both tasks")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{worker_log.read_text()[-3000:]}") from None
    finally:
        _stop(ingress)
        _stop(worker)

    ingress_text, worker_text = ingress_log.read_text(), worker_log.read_text()
    ingress_lines, worker_lines = lines_of(ingress_text), lines_of(worker_text)
    assert any("signature" in line["event"] for line in ingress_lines)  # the 401 was logged
    stored_line = next(line for line in worker_lines if "stored from webhook" in line["event"])
    assert stored_line["event_id"] == event_id
    assert stored_line["notification_id"] == json.loads(body)["notificationId"]
    assert stored_line["task_id"]
    assert stored_line["process"] == "worker"

    everything = ingress_text + worker_text
    forbidden = {
        "secret": SECRET,
        "token": TOKEN,
        "signature": signature,
        "bad signature": bad_signature,
        "body marker": BODY_MARKER,
        "body": body.decode(),
        "body as base64": base64.b64encode(body).decode()[:40],
        "signed bytes as base64": base64.b64encode(not_json).decode()[:40],
    }
    leaked = [name for name, value in forbidden.items() if value in everything]
    assert leaked == []


def test_it_refuses_an_unknown_log_format() -> None:
    assert load_log_format({}) == "json"
    assert load_log_format({"LOG_FORMAT": "Console"}) == "console"
    with pytest.raises(ConfigError, match="LOG_FORMAT must be one of json, console"):
        load_log_format({"LOG_FORMAT": "xml"})
