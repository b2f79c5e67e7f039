"""`--emit-every`: the demo emitter simulates events on its own, alternating the two kinds."""

from __future__ import annotations

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

    asked = quiet.sandbox.simulate_user_eligibility()

    # No emitter was made, so the one event is the one asked for, now and later.
    assert quiet.sandbox.emitter is None
    events, total = quiet.state.events_newest_first(0, 10)
    assert [event.event_id for event in events] == [asked.event_id]
    assert total == 1
