"""`SandboxConfig`: everything a sandbox is started with (`python -m sandbox` flags, tests)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.delivery import DEFAULT_RETRY_DELAYS, DEFAULT_TIMEOUT
from sandbox.neighbourhoods import DEFAULT_NEIGHBOURHOODS, Neighbourhood

# Spark collects eligibility changes for ten minutes and sends one event per partner.
DEFAULT_ELIGIBILITY_WINDOW = 600.0


@dataclass(frozen=True)
class SandboxConfig:
    client_id: str
    client_secret: str = field(repr=False)
    token_ttl: float = 3600.0
    delivery_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS
    delivery_timeout: float = DEFAULT_TIMEOUT
    emit_every: float | None = None
    timezone: str = "Europe/Oslo"
    seed: int | None = None
    # The grid neighbourhoods that make users eligible; a reset restores these.
    neighbourhoods: tuple[Neighbourhood, ...] = DEFAULT_NEIGHBOURHOODS
    # Seconds of sandbox time that eligibility changes are collected before one event is sent.
    eligibility_window: float = DEFAULT_ELIGIBILITY_WINDOW
