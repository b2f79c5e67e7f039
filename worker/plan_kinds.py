"""Every kind of plan the dispatch runs send (worker/curves/dispatch.py), in the order each
batch looks for due ones: LPC caps first, since an acknowledgement due within minutes waits
on their answers, then price-curve plans."""

from __future__ import annotations

from worker.curves.dispatch import CURVE_PLANS, PlanKind
from worker.lpc.dispatch import LPC_PLANS

PLAN_KINDS: tuple[PlanKind, ...] = (LPC_PLANS, CURVE_PLANS)
