"""`--emit-every`: the demo emitter simulates events on its own, alternating the two kinds."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.fixtures.sandbox import SandboxHandle, WebhookReceiver


def test_it_emits_alternating_events_and_delivers_them(
    start_sandbox: Callable[..., SandboxHandle], webhook_receiver: WebhookReceiver
) -> None:
    demo = start_sandbox(emit_every=0.1)
    demo.register_webhook(webhook_receiver.url)

    received = webhook_receiver.wait_for(3)

    kinds = [e.payload_type for e in reversed(demo.state.events_newest_first(0, 100)[0])]
    assert kinds[:3] == ["UserEligibility", "PriceCurve", "UserEligibility"]
    assert len(received) >= 3


def test_it_emits_nothing_unless_asked(start_sandbox: Callable[..., SandboxHandle]) -> None:
    quiet = start_sandbox()

    time.sleep(0.3)

    assert quiet.state.events_newest_first(0, 10) == ([], 0)
