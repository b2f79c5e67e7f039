from __future__ import annotations

import pytest

from shared.backoff import backoff_seconds


@pytest.mark.parametrize(("attempts", "ceiling"), [(1, 30.0), (2, 60.0), (3, 120.0), (8, 600.0)])
def test_it_waits_a_random_time_up_to_the_doubled_base_and_the_cap(
    attempts: int, ceiling: float
) -> None:
    waits = [backoff_seconds(attempts, base=30, cap=600) for _ in range(2000)]

    assert all(0 <= wait <= ceiling for wait in waits)
    # Full jitter: spread over the whole range, not bunched at its top.
    assert min(waits) < ceiling * 0.1
    assert max(waits) > ceiling * 0.9


def test_it_waits_at_least_what_the_other_side_asked() -> None:
    assert all(backoff_seconds(1, base=1, cap=10, at_least=42) == 42 for _ in range(100))


def test_it_counts_failures_from_one() -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        backoff_seconds(0, base=1, cap=10)
