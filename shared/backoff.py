"""The one backoff rule of every retry schedule: exponential, with full jitter, capped.

The wait after the n-th failure is uniformly random in [0, min(cap, base * 2**(n-1))]: the
retries of many rows or processes that failed together (a Spark or control-system outage)
spread out instead of arriving together. tenacity's `wait_random_exponential`, the rule the
Spark client's own retries use, computes it. A `Retry-After` the other side sent is a floor.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

from tenacity import RetryCallState, wait_random_exponential


def backoff_seconds(
    attempts: int, *, base: float, cap: float, at_least: float | None = None
) -> float:
    """Seconds to wait after the `attempts`-th failure (1 for the first)."""
    if attempts < 1:
        raise ValueError("attempts counts failures and starts at 1")
    wait = wait_random_exponential(multiplier=base, max=cap)
    # The wait only reads the attempt number of the state it is given.
    state = cast(RetryCallState, SimpleNamespace(attempt_number=attempts))
    delay: float = wait(state)
    return delay if at_least is None else max(delay, at_least)
