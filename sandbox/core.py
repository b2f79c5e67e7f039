"""`Sandbox`: the state, clock, delivery, user directory and simulations behind the routes.

One `Sandbox` lives in each Flask app made by `sandbox.app.create_app`; views reach it with
`current_sandbox()`, tests with `sandbox_of(app)` or through their fixtures.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Flask, current_app

from sandbox.clock import Clock
from sandbox.config import SandboxConfig
from sandbox.delivery import DeliveryWorker
from sandbox.directory import UserDirectory
from sandbox.eligibility import EligibilityAnnouncer
from sandbox.emitter import DemoEmitter
from sandbox.neighbourhoods import NeighbourhoodMap
from sandbox.partner_data import bulk_add_users, simulate_partner_data
from sandbox.simulation import (
    PriceCurveRequest,
    price_curve_payload,
    random_user_eligibility_payload,
)
from sandbox.state import Event, JSONObject, SandboxState

EXTENSION_KEY = "spark_sandbox"


class Sandbox:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.timezone = ZoneInfo(config.timezone)
        self.clock = Clock()
        tenant = uuid.uuid5(uuid.NAMESPACE_URL, f"spark-sandbox:{config.client_id}")
        self.state = SandboxState(tenant_id=str(tenant))
        self.delivery = DeliveryWorker(
            self.state,
            self.clock,
            retry_delays=config.delivery_delays,
            timeout=config.delivery_timeout,
        )
        self.rng = random.Random(config.seed)
        self.directory = UserDirectory(NeighbourhoodMap(config.neighbourhoods))
        self.eligibility = EligibilityAnnouncer(
            self.directory, self.clock, self.publish, window=config.eligibility_window
        )
        self.emitter = None
        if config.emit_every:
            kinds = [self.simulate_user_eligibility, self.simulate_price_curve]
            self.emitter = DemoEmitter(kinds, config.emit_every)

    def start(self) -> None:
        self.delivery.start()
        self.eligibility.start()
        if self.emitter is not None:
            self.emitter.start()

    def stop(self) -> None:
        if self.emitter is not None:
            self.emitter.stop()
        self.eligibility.stop()
        self.delivery.stop()

    def reset(self) -> None:
        """Back to a fresh sandbox: no data, no logs, no faults, default switches and
        neighbourhoods, real time."""
        with self.eligibility.held():
            self.directory.reset(NeighbourhoodMap(self.config.neighbourhoods))
            self.eligibility.restore_defaults()
            self.delivery.reset()
            self.state.reset()
            self.clock.reset()

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def publish(self, payload: JSONObject) -> Event:
        """Store an event and hand it to delivery, as Spark does with every event it creates."""
        event = Event(event_id=str(uuid.uuid4()), created_at=self.clock.now(), payload=payload)
        self.state.add_event(event)
        self.delivery.submit(event)
        return event

    # Simulations

    def simulate_price_curve(self, wanted: PriceCurveRequest | None = None) -> Event:
        payload = price_curve_payload(
            wanted or PriceCurveRequest(),
            now=self.clock.now(),
            timezone=self.timezone,
            rng=self.rng,
            new_id=self.new_id,
        )
        return self.publish(payload)

    def simulate_user_eligibility(self) -> Event:
        """Random user ids; no user's eligibility changes (as in Spark)."""
        payload = random_user_eligibility_payload(
            now=self.clock.now(), rng=self.rng, new_id=self.new_id
        )
        return self.publish(payload)

    def simulate_partner_data(self) -> list[str]:
        """`POST /simulation/partner`: new random users; their eligibility is announced."""
        return simulate_partner_data(
            self.directory, rng=self.rng, now=self.clock.now(), new_id=self.new_id
        )

    def delete_simulated_partner_data(self) -> int:
        """`DELETE /simulation/partner`: delete every simulated user; how many there were."""
        user_ids = self.directory.simulated_user_ids()
        now = self.clock.now()
        for user_id in user_ids:
            self.directory.delete_user(user_id, now)
        return len(user_ids)

    def bulk_add_users(
        self,
        count: int,
        *,
        prefix: str | None = None,
        neighbourhood_id: str | None = None,
        announce: bool = False,
        now: datetime | None = None,
    ) -> list[str]:
        """Many eligible users at once (see `partner_data.bulk_add_users`); their ids."""
        if prefix is None:
            prefix = f"bulk-{self.rng.getrandbits(32):08x}-"
        return bulk_add_users(
            self.directory,
            count,
            prefix=prefix,
            now=now or self.clock.now(),
            seed=self.rng.getrandbits(64),
            neighbourhood_id=neighbourhood_id,
            announce=announce,
        )

    def replace_neighbourhoods(self, neighbourhoods: NeighbourhoodMap) -> int:
        """Use other neighbourhoods from now on; how many locations moved in or out."""
        return self.directory.set_neighbourhoods(neighbourhoods, self.clock.now())


def sandbox_of(app: Flask) -> Sandbox:
    sandbox = app.extensions.get(EXTENSION_KEY)
    if not isinstance(sandbox, Sandbox):
        raise RuntimeError("this Flask app was not made by sandbox.app.create_app")
    return sandbox


def current_sandbox() -> Sandbox:
    return sandbox_of(current_app)
