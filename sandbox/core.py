"""`Sandbox`: the state, clock, delivery, user directory, simulations, daily price curves,
the LPC schedule, reports and compensation behind the routes.

One `Sandbox` lives in each Flask app made by `sandbox.app.create_app`; views reach it with
`current_sandbox()`, tests with `sandbox_of(app)` or through their fixtures.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, current_app

from sandbox.clock import Clock
from sandbox.compensation import user_compensation
from sandbox.config import SandboxConfig
from sandbox.daily_curves import CurveSwitches, DailyCurves
from sandbox.delivery import DeliveryWorker
from sandbox.directory import UserDirectory
from sandbox.eligibility import EligibilityAnnouncer
from sandbox.emitter import DemoEmitter
from sandbox.lpc_schedule import LpcSchedule, LpcSwitches
from sandbox.lpc_simulation import lpc_payload
from sandbox.neighbourhoods import NeighbourhoodMap
from sandbox.partner_data import bulk_add_users, simulate_partner_data
from sandbox.report_faults import ReportFaults
from sandbox.reports import Report, ReportBook, check_report, check_targets_known
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
        self.state = SandboxState(
            tenant_id=str(tenant),
            token_time=self._clock_seconds if config.tokens_on_sandbox_clock else time.monotonic,
        )
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
        self.curves = DailyCurves(
            self.directory,
            self.clock,
            self.publish,
            timezone=self.timezone,
            rng=self.rng,
            new_id=self.new_id,
            switches=CurveSwitches(
                enabled=config.daily_curves,
                changed_curve_probability=config.changed_curve_probability,
                hour=config.daily_curve_hour,
            ),
        )
        self.lpc_schedule = LpcSchedule(
            self.directory,
            self.clock,
            self.publish,
            switches=LpcSwitches(
                enabled=config.lpc_every is not None,
                every_seconds=config.lpc_every or LpcSwitches.every_seconds,
                seed=config.seed or 0,
            ),
        )
        self.reports = ReportBook()
        self.report_faults = ReportFaults()
        self.emitter = None
        if config.emit_every:
            kinds = [self.simulate_user_eligibility, self.simulate_price_curve]
            self.emitter = DemoEmitter(kinds, config.emit_every)

    def start(self) -> None:
        self.delivery.start()
        self.eligibility.start()
        self.curves.start()
        self.lpc_schedule.start()
        if self.emitter is not None:
            self.emitter.start()

    def stop(self) -> None:
        if self.emitter is not None:
            self.emitter.stop()
        self.report_faults.release()
        self.lpc_schedule.stop()
        self.curves.stop()
        self.eligibility.stop()
        self.delivery.stop()

    def reset(self) -> None:
        """Back to a fresh sandbox: no data, no logs, no faults, default switches and
        neighbourhoods, no reports, no days of price curves or LPC runs, real time."""
        with self.eligibility.held(), self.curves.held(), self.lpc_schedule.held():
            self.directory.reset(NeighbourhoodMap(self.config.neighbourhoods))
            self.eligibility.restore_defaults()
            self.delivery.reset()
            self.state.reset()
            self.reports.reset()
            self.report_faults.reset()
            self.clock.reset()
            self.curves.reset()
            self.lpc_schedule.reset()

    # The clock. Moving it through these (as the control surface does) sends at once what
    # the move makes due; a move of `clock` itself is noticed within a second.

    def set_clock(self, when: datetime, *, frozen: bool = False) -> list[Event]:
        """Make `when` the sandbox's time; the daily price curves and LPC events the move
        sent."""
        self.clock.set(when, frozen=frozen)
        return self._clock_moved()

    def advance_clock(self, seconds: float) -> list[Event]:
        """Move the sandbox's time on; the daily price curves and LPC events the move sent."""
        self.clock.advance(seconds)
        return self._clock_moved()

    def use_real_time(self) -> None:
        """Back to real time, without sending curves or LPC runs for the time in between."""
        with self.curves.held(), self.lpc_schedule.held():
            self.clock.reset()
            self.curves.rebase()
            self.lpc_schedule.rebase()
        self.eligibility.wake()

    def _clock_moved(self) -> list[Event]:
        sent = self.curves.catch_up()
        sent += self.lpc_schedule.catch_up()
        self.eligibility.wake()
        return sent

    def _clock_seconds(self) -> float:
        return self.clock.now().timestamp()

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

    def simulate_lpc(
        self, targets: list[tuple[JSONObject, list[JSONObject] | None]], kind: str
    ) -> Event:
        """`/simulation/events/lpc/{kind}`: a ResourceLPC or LocationLPC event, published."""
        payload = lpc_payload(targets, kind=kind, now=self.clock.now(), rng=self.rng)
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

    # Reports and compensation

    def accept_report(self, body: Any, raw_body: str) -> Report:
        """Check a PostReportRequest and keep it; ReportRejected says why it is not taken."""
        now = self.clock.now()
        checked = check_report(
            body,
            find_event=self.state.get_event,
            now=now,
            timezone=self.timezone,
            grace_seconds=self.config.report_grace_seconds,
        )
        check_targets_known(checked.usages, self.directory)
        report = Report(
            report_id=self.new_id(),
            event_id=checked.event.event_id,
            received_at=now,
            body=body,
            raw_body=raw_body,
            usages=tuple(checked.usages),
            kind=checked.kind,
            event_created_at=checked.event.created_at,
        )
        self.reports.add(report)
        return report

    def compensation(self, user_id: str) -> JSONObject | None:
        """The user's compensation for the current month; None for an unknown user."""
        return user_compensation(
            user_id,
            directory=self.directory,
            reports=self.reports.reports(),
            find_event=self.state.get_event,
            now=self.clock.now(),
            timezone=self.timezone,
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
