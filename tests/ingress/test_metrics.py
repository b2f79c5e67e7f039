from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import requests
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from shared.config import Settings
from shared.signing import SIGNATURE_HEADER
from tests.ingress.conftest import IngressServer, make_settings, signed_headers, spark_body


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics answer, parsed with prometheus_client's own parser."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def webhooks(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], outcome: str) -> float:
    return found.get(("spark_partner_ingress_webhooks_total", (("outcome", outcome),)), 0.0)


def test_it_sums_the_counts_of_all_four_gunicorn_processes(served: IngressServer) -> None:
    url = f"http://127.0.0.1:{served.port}"
    body = spark_body()

    def send(kind: int) -> int:
        # A new connection each time, so the requests spread over the processes.
        with requests.Session() as session:
            if kind == 0:
                headers = signed_headers(body)
            elif kind == 1:
                headers = {SIGNATURE_HEADER: "AAAA", "Content-Type": "application/json"}
            elif kind == 2:
                headers = {"Content-Type": "application/json"}
            else:
                big = b"x" * (1024 * 1024 + 1)
                return session.post(f"{url}/webhooks/spark", data=big, timeout=10).status_code
            return session.post(
                f"{url}/webhooks/spark", data=body, headers=headers, timeout=10
            ).status_code

    plan = [0] * 60 + [1] * 25 + [2] * 10 + [3] * 5
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(send, plan))
    assert statuses.count(202) == 60
    assert statuses.count(401) == 35
    assert statuses.count(413) == 5
    consumption = requests.post(f"{url}/consumption", json={"readings": []}, timeout=10)
    assert consumption.status_code == 401

    # Whichever process answers, the totals are everyone's.
    for _ in range(4):
        with requests.Session() as session:
            answer = session.get(f"{url}/metrics", timeout=10)
        assert answer.status_code == 200
        found = samples(answer.text)
        assert webhooks(found, "queued") == 60
        assert webhooks(found, "bad_signature") == 25
        assert webhooks(found, "unsigned") == 10
        assert webhooks(found, "too_large") == 5
        assert webhooks(found, "unavailable") == 0
        assert (
            found[
                ("spark_partner_ingress_consumption_batches_total", (("outcome", "unauthorized"),))
            ]
            == 1
        )
        assert (
            found[("spark_partner_ingress_time_to_queue_seconds_count", (("route", "webhook"),))]
            == 60
        )
    assert served.redis.llen("ingest") == 60


def test_it_counts_a_webhook_redis_did_not_take_as_unavailable(
    client_for: Callable[[Settings], FlaskClient],
) -> None:
    settings: Settings = make_settings("redis://127.0.0.1:1/0")
    client = client_for(settings)
    before = webhooks(samples(client.get("/metrics").get_data(as_text=True)), "unavailable")
    body = spark_body()
    answer = client.post("/webhooks/spark", data=body, headers=signed_headers(body))
    assert answer.status_code == 503
    after = webhooks(samples(client.get("/metrics").get_data(as_text=True)), "unavailable")
    assert after == before + 1
    assert json.loads(answer.get_data()) == {"error": "queue unavailable"}
