"""`SandboxConfig`: everything a sandbox is started with (`python -m sandbox` flags, tests)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.delivery import DEFAULT_RETRY_DELAYS, DEFAULT_TIMEOUT
from sandbox.neighbourhoods import DEFAULT_NEIGHBOURHOODS, Neighbourhood

# Spark collects eligibility changes for ten minutes and sends one event per partner.
DEFAULT_ELIGIBILITY_WINDOW = 600.0
# The local hour at which the sandbox's test areas get the next day's price curves.
DEFAULT_DAILY_CURVE_HOUR = 13
DEFAULT_CHANGED_CURVE_PROBABILITY = 0.2
# How long after the end of an event's month a report is still accepted.
DEFAULT_REPORT_GRACE_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class SandboxConfig:
    client_id: str
    client_secret: str = field(repr=False)
    token_ttl: float = 3600.0
    # Token lifetimes run on real (monotonic) time by default, so moving the sandbox clock for
    # an event test never logs a client out; True runs them on the sandbox clock, for tests
    # of token expiry that move the clock instead of waiting.
    tokens_on_sandbox_clock: bool = False
    delivery_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS
    delivery_timeout: float = DEFAULT_TIMEOUT
    emit_every: float | None = None
    timezone: str = "Europe/Oslo"
    seed: int | None = None
    # The grid neighbourhoods that make users eligible; a reset restores these.
    neighbourhoods: tuple[Neighbourhood, ...] = DEFAULT_NEIGHBOURHOODS
    # Seconds of sandbox time that eligibility changes are collected before one event is sent.
    eligibility_window: float = DEFAULT_ELIGIBILITY_WINDOW
    # Whether the sandbox clock passing `daily_curve_hour` (local) sends the next day's curves.
    daily_curves: bool = True
    daily_curve_hour: int = DEFAULT_DAILY_CURVE_HOUR
    # The chance that a daily curve is followed by a changed one later the same day.
    changed_curve_probability: float = DEFAULT_CHANGED_CURVE_PROBABILITY
    # Sandbox-clock seconds after the end of an event's local month that reports still count.
    report_grace_seconds: float = DEFAULT_REPORT_GRACE_SECONDS
    # Seconds between runs of the LPC schedule (`sandbox.lpc_schedule`); None leaves it off
    # until switched on through the control surface.
    lpc_every: int | None = None
