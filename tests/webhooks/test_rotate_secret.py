"""`webhooks rotate-secret`: begin, activate, finish, with Spark delivering all along and no
webhook refused or lost; and the file the ingress re-reads."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from werkzeug.serving import make_server

from ingress.app import create_app
from shared.config import load_settings
from shared.queues import INGEST_QUEUE
from shared.signing import SIGNATURE_HEADER, sign
from shared.webhook_secrets import AcceptedSecrets, write_secrets_file
from tests.fixtures.sandbox import SandboxHandle, spark_env
from tests.waiting import wait_for
from tests.worker.cli import run

OLD = "old-secret-for-rotation-test"
PROBE = b'{"probe":"signed with one secret, to see which the ingress accepts"}'


@pytest.fixture
def secrets_file(tmp_path: Path) -> Path:
    path = tmp_path / "webhook-secrets"
    write_secrets_file(path, (OLD.encode(),))
    return path


@pytest.fixture
def ingress(redis_url: str, secrets_file: Path) -> Iterator[str]:
    """The real ingress app, reading its secrets from the file."""
    settings = load_settings(
        {"REDIS_URL": redis_url, "SPARK_WEBHOOK_SECRETS_FILE": str(secrets_file)}
    )
    server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{server.port}/webhooks/spark"
    server.shutdown()
    thread.join(5)
    server.server_close()


def accepts(url: str, secret: str) -> bool:
    response = requests.post(
        url, data=PROBE, headers={SIGNATURE_HEADER: sign(secret.encode(), PROBE)}, timeout=10
    )
    assert response.status_code in (202, 401), response.text
    return response.status_code == 202


def queued_event_ids(redis_url: str) -> list[str]:
    client = redis.Redis.from_url(redis_url)
    try:
        raw_messages = client.lrange(INGEST_QUEUE, 0, -1)
    finally:
        client.close()
    ids = []
    for raw in raw_messages:
        _, kwargs, _ = json.loads(base64.b64decode(json.loads(raw)["body"]))
        body = base64.b64decode(kwargs["body_b64"])
        if body != PROBE:
            ids.append(json.loads(body)["eventId"])
    return ids


def test_it_rotates_with_no_webhook_refused_or_lost(
    sandbox: SandboxHandle, database_url: str, redis_url: str, secrets_file: Path, ingress: str
) -> None:
    env = {**spark_env(sandbox), "SPARK_WEBHOOK_SECRETS": "",
           "SPARK_WEBHOOK_SECRETS_FILE": str(secrets_file)}  # fmt: skip
    webhook = sandbox.register_webhook(ingress, secret=OLD)
    emitted: list[str] = []
    stop = threading.Event()

    def emit() -> None:
        # Spark keeps sending through every step.
        while not stop.wait(0.05):
            emitted.append(sandbox.sandbox.simulate_user_eligibility().event_id)

    emitter = threading.Thread(target=emit)
    emitter.start()
    try:
        begun = run(database_url, "webhooks", "rotate-secret", "begin", **env)
        assert begun.exit_code == 0, begun.output
        old, new = secrets_file.read_text().strip().split(",")
        assert old == OLD
        assert len(new) >= 43  # 256 bits
        assert new not in begun.output  # only the file holds it
        wait_for(lambda: accepts(ingress, new), 10, "the ingress to accept the new secret")
        assert accepts(ingress, OLD)

        activated = run(database_url, "webhooks", "rotate-secret", "activate", **env)
        assert activated.exit_code == 0, activated.output
        assert sandbox.state.get_webhook(webhook["webhookId"]).secret == new  # type: ignore[union-attr]
        assert secrets_file.read_text().strip() == f"{new},{OLD}"
        again = run(database_url, "webhooks", "rotate-secret", "activate", **env)
        assert again.exit_code == 1  # activated once; a second run would give Spark the old one
        wait_for(lambda: accepts(ingress, new), 10, "the reordered set")
        assert accepts(ingress, OLD)  # the overlap: notifications signed before still pass

        within = run(database_url, "webhooks", "rotate-secret", "finish", **env)
        assert within.exit_code == 1
        assert "keep the old one accepted" in within.output
        finished = run(database_url, "webhooks", "rotate-secret", "finish", "--overlap", "0", **env)
        assert finished.exit_code == 0, finished.output
        assert secrets_file.read_text().strip() == new
        wait_for(lambda: not accepts(ingress, OLD), 10, "the old secret to be refused")
        assert accepts(ingress, new)
    finally:
        stop.set()
        emitter.join()
    sandbox.wait_for_deliveries(timeout=20)

    attempts = sandbox.control.deliveries()
    assert len(emitted) > 10
    assert [a for a in attempts if not a["succeeded"]] == []
    assert sorted(queued_event_ids(redis_url)) == sorted(emitted)


def test_it_keeps_the_last_good_set_when_the_file_goes_bad(tmp_path: Path) -> None:
    path = tmp_path / "secrets"
    write_secrets_file(path, (b"one", b"two"))
    accepted = AcceptedSecrets((b"one", b"two"), path, check_every=0)

    path.write_text("")
    assert accepted.current() == (b"one", b"two")
    path.unlink()
    assert accepted.current() == (b"one", b"two")
    write_secrets_file(path, (b"three",))
    assert accepted.current() == (b"three",)


def test_it_starts_a_rotation_only_from_one_secret(
    database_url: str, sandbox: SandboxHandle
) -> None:
    result = run(database_url, "webhooks", "rotate-secret", "begin",
                 SPARK_WEBHOOK_SECRETS="a-secret,another", **spark_env(sandbox))  # fmt: skip

    assert result.exit_code == 1
    assert "holds 2 secrets" in result.output
