"""Fuzzing the running ingress with schemathesis, for `tests/faults/test_fuzz_ingress.py` (at
least 10,000 requests) and `tests/ingress/test_fuzz_ingress.py` (a few hundred).

Requests are generated from two documents: Spark's description of a partner's webhook
receiver (`tests/fixtures/spark/webhook-server-openapi.resolved.yaml`, a copy of the
reference; its `/notify` is our `/webhooks/spark`) and our own consumption API
(`ingress/consumption-openapi.json`). Both modes: positive (what the documents allow) and
negative (what they do not). Spark's document only has JSON bodies; a third variant of it
sends text and bytes, since a broken sender or an attacker is not held to it.

A scenario, against the real ingress on a socket and a real worker:

1. unsigned webhooks (the generated `x-payload-signature`, or none) and POST /consumption
   without a valid token: 401 each, and Redis holds nothing;
2. signed webhooks (a requests auth hook signs each body with the test secret, as Spark
   does: base64 HMAC-SHA256 of the raw bytes), POST /consumption with the token and
   GET /consumption/batches/{id} of generated ids: 202 for every signed webhook, and the
   consumption answers each one the document describes (checked with openapi-core); every
   accepted batch reads `queued`; Redis holds exactly what was accepted;
3. a worker starts: every signed body ends as an event delivery or a dead letter (every
   broken one a dead letter), and every accepted batch reads `stored` with its count.

No answer may be a 5xx. The counts are printed for the README's "Guarantees and figures".
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import redis
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_core.templating.paths.exceptions import PathNotFound
from schemathesis import Case, GenerationMode

from ingress.consumption import openapi_document
from shared.batch_status import KEY_PREFIX
from shared.queues import INGEST_QUEUE
from shared.readings import parse_time
from shared.signing import SIGNATURE_HEADER, sign
from tests.fixtures.services import IngressServer, WorkerProcess

SPARK_SPEC = Path(__file__).parent / "fixtures" / "spark" / "webhook-server-openapi.resolved.yaml"
WEBHOOK_PATH = "/webhooks/spark"
SECRET = "test-secret"
TOKEN = "fuzz-token"
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


class _StringTimes(yaml.SafeLoader):
    """YAML without timestamps: the document's date-time examples stay strings, as in JSON."""


_StringTimes.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def webhook_spec(*, raw_bodies: bool = False) -> dict[str, Any]:
    """Spark's receiver document at our path; with `raw_bodies`, text and bytes instead of
    JSON."""
    spec: dict[str, Any] = yaml.load(SPARK_SPEC.read_text(encoding="utf-8"), Loader=_StringTimes)  # noqa: S506
    operation = spec["paths"].pop("/notify")
    if raw_bodies:
        operation["post"]["requestBody"]["content"] = {
            "text/plain": {"schema": {"type": "string"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        }
    spec["paths"][WEBHOOK_PATH] = operation
    return spec


def consumption_spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(openapi_document())
    return spec


class SignBody(requests.auth.AuthBase):
    """Signs the raw body as it goes out, as Spark does."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        raw = body.encode("utf-8") if isinstance(body, str) else body
        assert isinstance(raw, bytes)
        request.headers[SIGNATURE_HEADER] = sign(SECRET.encode(), raw)
        return request


@dataclass(frozen=True)
class Plan:
    """Requests per kind and generation mode (positive and negative each)."""

    unsigned_webhooks: int
    signed_webhooks: int
    raw_webhooks: int
    consumption: int
    unauthorized: int
    batch_lookups: int


@dataclass
class Tally:
    sent: Counter[str] = field(default_factory=Counter)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    # The bodies of signed webhooks answered 2xx, as sent.
    signed: list[bytes] = field(default_factory=list)
    # Accepted batches: id -> readings.
    batches: dict[str, int] = field(default_factory=dict)
    # Answers that break a rule: what was sent and what came back.
    wrong: list[str] = field(default_factory=list)

    def total(self) -> int:
        return sum(self.sent.values())

    def summary(self) -> str:
        lines = [f"fuzzing: {self.total()} requests"]
        for kind, count in sorted(self.sent.items()):
            answers = ", ".join(
                f"{status}: {n}" for (k, status), n in sorted(self.statuses.items()) if k == kind
            )
            lines.append(f"  {kind}: {count} ({answers})")
        lines.append(
            f"  signed webhooks accepted: {len(self.signed)}, "
            f"reading batches accepted: {len(self.batches)}"
        )
        return "\n".join(lines)


class Fuzzer:
    def __init__(self, ingress: IngressServer, tally: Tally) -> None:
        self.base_url = ingress.url
        self.session = requests.Session()
        self.tally = tally
        self.openapi = OpenAPI.from_dict(consumption_spec())
        self.webhook = schemathesis.openapi.from_dict(webhook_spec())[WEBHOOK_PATH]["POST"]
        self.raw_webhook = schemathesis.openapi.from_dict(webhook_spec(raw_bodies=True))[
            WEBHOOK_PATH
        ]["POST"]
        consumption = schemathesis.openapi.from_dict(consumption_spec())
        self.post = consumption["/consumption"]["POST"]
        self.lookup = consumption["/consumption/batches/{batchId}"]["GET"]
        self.random = random.Random(15)

    def close(self) -> None:
        self.session.close()

    def run(
        self,
        operation: Any,
        mode: GenerationMode,
        count: int,
        kind: str,
        send: Callable[[Case[Any]], None],
    ) -> None:
        """Send `count` generated cases (Hypothesis's generate phase only: no shrinking, no
        replays, so each example is one request)."""
        if count == 0:
            return

        # Derandomized: the same requests on every run, so that a finding reproduces and CI
        # does not turn red on a new draw; FUZZ_RANDOM=1 draws new ones.
        @settings(
            max_examples=count,
            derandomize=os.environ.get("FUZZ_RANDOM") != "1",
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def each(case: Case[Any]) -> None:
            self.tally.sent[kind] += 1
            send(case)

        each()

    def request(
        self, case: Case[Any], *, headers: dict[str, str] | None = None, signed: bool = False
    ) -> requests.Response:
        kwargs = case.as_transport_kwargs(base_url=self.base_url)
        kwargs["headers"].update(headers or {})
        if signed:
            kwargs["auth"] = SignBody()
        return self.session.request(**kwargs, timeout=30)

    def note(self, kind: str, answer: requests.Response, allowed: set[int]) -> None:
        self.tally.statuses[(kind, answer.status_code)] += 1
        if answer.status_code not in allowed or answer.status_code >= 500:
            body = answer.request.body
            shown = body[:300] if body is not None else b""
            self.tally.wrong.append(
                f"{kind}: {answer.request.method} {answer.request.url} {shown!r} -> "
                f"{answer.status_code} {answer.text[:300]}"
            )

    def check_document(self, kind: str, answer: requests.Response) -> None:
        request = RequestsOpenAPIRequest(answer.request)
        try:
            self.openapi.validate_response(request, RequestsOpenAPIResponse(answer))
        except PathNotFound:
            # A negative case's path outside the document (an empty batch id): Flask's 404.
            return
        except Exception as exc:  # every kind of mismatch is a finding to report
            self.tally.wrong.append(
                f"{kind}: answer not as documented: {exc!r}: {answer.request.url} "
                f"{answer.status_code} {answer.text[:300]}"
            )

    # What each kind of request sends and what it may be answered.

    def unsigned_webhook(self, case: Case[Any]) -> None:
        answer = self.request(case)
        self.note("webhook unsigned", answer, {401})

    def signed_webhook(self, case: Case[Any]) -> None:
        answer = self.request(case, signed=True)
        self.note("webhook signed", answer, {202})
        if answer.status_code == 202:
            body = answer.request.body or b""
            self.tally.signed.append(body.encode() if isinstance(body, str) else body)

    def unauthorized(self, case: Case[Any]) -> None:
        token = self.random.choice(["", "Bearer", "Bearer wrong", f"Basic {TOKEN}", TOKEN])
        answer = self.request(case, headers={"Authorization": token} if token else None)
        self.note("consumption unauthorized", answer, {401})
        self.check_document("consumption unauthorized", answer)

    def consumption(self, case: Case[Any]) -> None:
        answer = self.request(case, headers={"Authorization": f"Bearer {TOKEN}"})
        self.note("consumption", answer, {202, 400, 413})
        self.check_document("consumption", answer)
        if answer.status_code == 202:
            accepted = answer.json()
            self.tally.batches[accepted["batchId"]] = accepted["readings"]

    def consumption_spanned(self, case: Case[Any]) -> None:
        """A positive case with each reading's end put after its start, which the document
        cannot say; otherwise almost every generated batch is refused (400) and nothing
        reaches the worker."""
        readings = case.body.get("readings") if isinstance(case.body, dict) else None
        for item in readings if isinstance(readings, list) else ():
            try:
                assert isinstance(item, dict)
                start = parse_time(str(item["start"]))
                span = timedelta(minutes=self.random.randint(1, 2 * 24 * 60))
                item["end"] = (start + span).isoformat()
            except (AssertionError, KeyError, ValueError, OverflowError):
                continue
        self.consumption(case)

    def batch_lookup(self, case: Case[Any]) -> None:
        answer = self.request(case, headers={"Authorization": f"Bearer {TOKEN}"})
        # 200 only for an id that was handed out, which a generated one never is.
        self.note("batch lookup", answer, {404})
        self.check_document("batch lookup", answer)

    def batch_status(self, batch_id: str) -> requests.Response:
        answer = self.session.get(
            f"{self.base_url}/consumption/batches/{batch_id}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )
        self.check_document("batch status", answer)
        return answer


def broken(body: bytes) -> bool:
    """A body that no reading of Spark's envelope could take: it must become a dead letter."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return True
    if not isinstance(document, dict):
        return True
    event_id = document.get("eventId")
    return not isinstance(event_id, str) or not event_id.strip()


def ingress_env() -> dict[str, str]:
    return {"CONSUMPTION_API_TOKENS": TOKEN}


def fuzz(
    plan: Plan,
    *,
    ingress: IngressServer,
    database_url: str,
    redis_url: str,
    start_worker: Callable[..., WorkerProcess],
    drain_seconds: float,
) -> Tally:
    """The whole scenario (see the module docstring); returns the tally with its findings."""
    tally = Tally()
    fuzzer = Fuzzer(ingress, tally)
    client = redis.Redis.from_url(redis_url)
    try:
        for mode in MODES:
            fuzzer.run(fuzzer.webhook, mode, plan.unsigned_webhooks, "webhook unsigned",
                       fuzzer.unsigned_webhook)  # fmt: skip
            fuzzer.run(fuzzer.raw_webhook, mode, plan.raw_webhooks, "webhook unsigned",
                       fuzzer.unsigned_webhook)  # fmt: skip
            fuzzer.run(fuzzer.post, mode, plan.unauthorized, "consumption unauthorized",
                       fuzzer.unauthorized)  # fmt: skip
        queued_unsigned = client.llen(INGEST_QUEUE)
        statuses_unsigned = len(client.keys(KEY_PREFIX + "*"))
        if queued_unsigned or statuses_unsigned:
            tally.wrong.append(
                f"unsigned or unauthorized requests left {queued_unsigned} message(s) and "
                f"{statuses_unsigned} batch status(es) in Redis"
            )

        for mode in MODES:
            fuzzer.run(fuzzer.webhook, mode, plan.signed_webhooks, "webhook signed",
                       fuzzer.signed_webhook)  # fmt: skip
            fuzzer.run(fuzzer.raw_webhook, mode, plan.raw_webhooks, "webhook signed",
                       fuzzer.signed_webhook)  # fmt: skip
            spanned = mode == GenerationMode.POSITIVE
            fuzzer.run(fuzzer.post, mode, plan.consumption, "consumption",
                       fuzzer.consumption_spanned if spanned else fuzzer.consumption)  # fmt: skip
            fuzzer.run(fuzzer.lookup, mode, plan.batch_lookups, "batch lookup",
                       fuzzer.batch_lookup)  # fmt: skip
        queued = client.llen(INGEST_QUEUE)
        if queued != len(tally.signed) + len(tally.batches):
            tally.wrong.append(
                f"{queued} messages queued for {len(tally.signed)} signed webhooks and "
                f"{len(tally.batches)} batches accepted"
            )
        for batch_id in tally.batches:
            status = fuzzer.batch_status(batch_id).json().get("status")
            if status != "queued":
                tally.wrong.append(f"batch {batch_id} reads {status!r} before any worker ran")

        start_worker(database_url, redis_url, concurrency=2)
        _wait_for_the_worker(tally, fuzzer, database_url, drain_seconds)
    finally:
        client.close()
        fuzzer.close()
    return tally


def _wait_for_the_worker(
    tally: Tally, fuzzer: Fuzzer, database_url: str, drain_seconds: float
) -> None:
    expected_deliveries = len(tally.signed)

    def deliveries() -> tuple[int, set[bytes], set[bytes]]:
        with psycopg.connect(database_url) as conn:
            events = conn.execute("SELECT body_sha256 FROM event_deliveries").fetchall()
            dead = conn.execute("SELECT body_sha256, deliveries FROM dead_letters").fetchall()
        total = len(events) + sum(count for _, count in dead)
        return total, {bytes(sha) for (sha,) in events}, {bytes(sha) for sha, _ in dead}

    def batches_stored() -> int:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM consumption_batches WHERE stored_at IS NOT NULL"
            ).fetchone()
        return int(row[0]) if row else 0

    # Until everything accepted is in PostgreSQL, or the deadline; what is missing then is
    # listed below.
    deadline = time.monotonic() + drain_seconds
    while time.monotonic() < deadline and (
        deliveries()[0] < expected_deliveries or batches_stored() < len(tally.batches)
    ):
        time.sleep(0.5)
    total, delivered, dead = deliveries()
    if total != expected_deliveries:
        tally.wrong.append(f"{total} deliveries recorded for {expected_deliveries} signed webhooks")
    for body in tally.signed:
        sha = hashlib.sha256(body).digest()
        if broken(body) and sha not in dead:
            tally.wrong.append(f"broken signed body {body[:200]!r} is not a dead letter")
        elif sha not in delivered and sha not in dead:
            tally.wrong.append(f"signed body {body[:200]!r} is neither an event nor dead letter")
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT batch_id, source, readings FROM consumption_batches WHERE stored_at IS NOT NULL"
        ).fetchall()
    stored = {batch_id: (source, readings) for batch_id, source, readings in rows}
    if len(stored) != len(tally.batches):
        tally.wrong.append(f"{len(stored)} batches stored for {len(tally.batches)} accepted")
    for batch_id, readings in tally.batches.items():
        if stored.get(batch_id) != ("api", readings):
            tally.wrong.append(f"batch {batch_id} of {readings}: stored as {stored.get(batch_id)}")
            continue
        answer = fuzzer.batch_status(batch_id).json()
        if answer.get("status") != "stored" or answer.get("readings") != readings:
            tally.wrong.append(f"batch {batch_id} of {readings} reads {answer}")
