"""Out-of-order curves under a stream: for each of PAIRS targets, a curve for tomorrow and a
later-created one for the same target and hours, the later one delivered first (as Spark's
webhooks may arrive), the earlier one after it, within a fraction of a second.

What follows the newest: the plans the control system holds (the earlier curve's plan never
in force: skipped, or withdrawn by a later revision) and the reports' source
(`effective_periods_for_event`: nothing left to the earlier curve, every hour to the later).
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from shared.db import connect, fetch_all
from shared.signing import SIGNATURE_HEADER, sign
from tests.faults.invariant import DISPATCH_SECRET
from tests.fixtures.services import IngressServer, WorkerProcess
from tests.waiting import drained, wait_for

SECRET = "curves-secret"
PAIRS = 25
HOURS = 3


class Control:
    """The control system: keeps every plan it is sent, answers 200."""

    def __init__(self) -> None:
        self.plans: list[dict[str, Any]] = []
        self._lock = threading.Lock()

        @Request.application
        def app(request: Request) -> Response:
            with self._lock:
                self.plans += json.loads(request.get_data())["plans"]
            return Response("{}", status=200, content_type="application/json")

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def env(self) -> dict[str, str]:
        return {
            "SPARK_DISPATCHER": "http",
            "SPARK_DISPATCH_URL": f"http://127.0.0.1:{self.server.port}/plans",
            "SPARK_DISPATCH_SECRET": DISPATCH_SECRET,
            "SPARK_DISPATCH_RETRY_SECONDS": "1",
        }

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.plans)


@pytest.fixture
def control() -> Iterator[Control]:
    system = Control()
    yield system
    system.server.shutdown()
    system.server.server_close()


def curve(target: int, created: datetime, price: float, start: datetime) -> dict[str, Any]:
    return {
        "notificationId": str(uuid.uuid4()),
        "eventId": str(uuid.uuid4()),
        "eventCreatedAtUtc": created.isoformat(),
        "notificationSentUtc": datetime.now(UTC).isoformat(),
        "notificationType": "PriceCurveCreated",
        "payload": {
            "payloadType": "PriceCurve",
            "priceArea": "NO1",
            "targets": [{"resourceId": f"ev-{target}", "locationId": f"home-{target}"}],
            "priceCurveDelta": {
                "resolution": "01:00:00",
                "energyUnit": "kWh",
                "currency": "NOK",
                "points": [
                    {"timestamp": (start + timedelta(hours=h)).isoformat(), "price": price}
                    for h in range(HOURS)
                ],
            },
        },
    }


def test_it_follows_the_newest_curve_when_an_older_one_arrives_after_it(
    database_url: str,
    redis_url: str,
    control: Control,
    start_ingress: Callable[..., IngressServer],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    ingress = start_ingress(redis_url, secret=SECRET)
    start_worker(database_url, redis_url, concurrency=2, **control.env())
    start = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    now = datetime.now(UTC)
    pairs = [
        (curve(n, now - timedelta(hours=1), -0.5, start), curve(n, now, 0.4, start))
        for n in range(PAIRS)
    ]
    rng = random.Random(15)
    answered: set[str] = set()
    sent = 0
    session = requests.Session()
    for older, newer in pairs:
        for document in (newer, older):  # the newer first
            raw = json.dumps(document, separators=(",", ":")).encode()
            headers = {SIGNATURE_HEADER: sign(SECRET.encode(), raw)}
            headers["Content-Type"] = "application/json"
            sent += 1
            if session.post(ingress.webhook_url, data=raw, headers=headers, timeout=10).ok:
                answered.add(document["eventId"])
            # Sometimes at once (both in the worker together), sometimes the newer settled.
            threading.Event().wait(rng.choice((0.0, 0.05, 0.3)))

    newer_ids = {newer["eventId"] for _, newer in pairs}
    wait_for(
        lambda: {p["eventId"] for p in control.received()} >= newer_ids, 120, "every newer plan"
    )
    wait_for(drained(redis_url), 60, "the ingest queue drained")
    wait_for(drained(redis_url, "dispatch"), 120, "the dispatch queue drained")

    plans = control.received()
    repeats = sum(
        n - 1
        for n in Counter(
            (p["eventId"], p["resourceId"], p["locationId"], p["revision"]) for p in plans
        ).values()
    )
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for plan in sorted(plans, key=lambda p: int(p["revision"])):
        last[(plan["eventId"], plan["resourceId"])] = plan
    older_in_force = sum(
        1 for (event_id, _), plan in last.items() if event_id not in newer_ids and plan["periods"]
    )
    older_sent = len({p["eventId"] for p in plans} - newer_ids)
    with connect(database_url) as conn:
        stored = {
            row["event_id"]
            for row in conn.execute(
                "SELECT event_id FROM events WHERE status = 'processed'"
            ).fetchall()
        }
        effective = {
            document["eventId"]: len(
                fetch_all(conn, "effective_periods_for_event", {"event_id": document["eventId"]})
            )
            for pair in pairs
            for document in pair
        }
    lost = len(answered - stored)
    wrong_reports = sum(
        effective[older["eventId"]] != 0 or effective[newer["eventId"]] != HOURS
        for older, newer in pairs
    )
    print(
        f"FAULT out-of-order curves: sent {sent}, answered 2xx {len(answered)}, "
        f"stored {len(stored & answered)}, lost {lost}, duplicated effects {repeats}; "
        f"{PAIRS} targets, the newer curve delivered first: newer plan in force for "
        f"{sum(1 for (e, _), p in last.items() if e in newer_ids and p['periods'])}, "
        f"older plan in force for {older_in_force} (older plans sent then withdrawn: "
        f"{older_sent}); report source wrong for {wrong_reports}"
    )
    assert len(answered) == sent
    assert lost == 0
    assert repeats == 0
    assert older_in_force == 0
    assert all(
        len(last[(newer["eventId"], f"ev-{n}")]["periods"]) == HOURS
        for n, (_, newer) in enumerate(pairs)
    )
    assert wrong_reports == 0
