"""The shapes of the daily price curves: which hours of the next day they cover, with what
deltas, and how a changed curve differs from the first.

Spark sends a curve only for "the hours that our forecast indicates a need for change", so a
daily curve is a realistic subset of the day rather than all of it: one block of hours that
invites usage (negative delta: a cheap night, or a midday solar surplus) and one or two
blocks that ask to move usage away (positive delta: the morning and evening peaks). Blocks are
chosen by local wall-clock hour, so on DST days they simply have an hour less or more.
`full_day` covers every hour instead (23 or 25 on DST days), signs by `PEAK_HOURS`.
"""

from __future__ import annotations

from datetime import datetime
from random import Random
from zoneinfo import ZoneInfo

from sandbox.clock import spark_timestamp
from sandbox.simulation import PEAK_HOURS
from sandbox.state import JSONObject

# Deltas per kWh run from 5 to 100 øre (or ören, or Danish øre), and a tenth of that in euros.
DELTA_RANGE = (0.05, 1.0)
DELTA_SCALE = {"NOK": 1.0, "SEK": 1.0, "DKK": 1.0, "EUR": 0.1}
DELTA_DIGITS = 4

# (first local hour choices, length choices) of each kind of block.
Block = tuple[tuple[int, ...], tuple[int, ...]]
INVITE_BLOCKS: tuple[Block, ...] = (((0, 1, 2), (3, 4, 5)), ((10, 11, 12), (2, 3, 4)))
MORNING_PEAK: Block = ((6, 7), (2, 3))
EVENING_PEAK: Block = ((16, 17, 18), (2, 3, 4))


def daily_points(
    hours: list[datetime],
    timezone: ZoneInfo,
    rng: Random,
    currency: str,
    *,
    full_day: bool = False,
) -> list[JSONObject]:
    """PriceCurvePoints for some of `hours` (the UTC hour starts of one local day)."""
    if full_day:
        signs = {hour: 1 if hour in PEAK_HOURS else -1 for hour in range(24)}
    else:
        signs = _block_signs(rng)
    scale = DELTA_SCALE.get(currency, 1.0)
    points = []
    for start in hours:
        sign = signs.get(start.astimezone(timezone).hour)
        if sign is None:
            continue
        magnitude = round(rng.uniform(*DELTA_RANGE) * scale, DELTA_DIGITS)
        points.append({"price": sign * magnitude, "timestamp": spark_timestamp(start)})
    return points


def _block_signs(rng: Random) -> dict[int, int]:
    """Local hour -> sign of its delta, for one invite block and one or two peak blocks."""
    signs: dict[int, int] = {}
    blocks = [(rng.choice(INVITE_BLOCKS), -1)]
    peaks = rng.choice(((MORNING_PEAK,), (EVENING_PEAK,), (MORNING_PEAK, EVENING_PEAK)))
    blocks += [(peak, 1) for peak in peaks]
    for (starts, lengths), sign in blocks:
        _mark(signs, rng.choice(starts), rng.choice(lengths), sign)
    return signs


def _mark(signs: dict[int, int], first: int, length: int, sign: int) -> None:
    for hour in range(first, first + length):
        signs[hour] = sign


def changed_points(points: list[JSONObject], rng: Random) -> list[JSONObject]:
    """The same hours with about a third of the deltas changed (same sign, larger)."""
    if not points:
        return []
    changed = [dict(point) for point in points]
    for index in rng.sample(range(len(points)), max(1, len(points) // 3)):
        price = changed[index]["price"]
        changed[index]["price"] = round(price * rng.uniform(1.25, 2.0), DELTA_DIGITS)
    return changed


def about_half(targets: list[JSONObject], rng: Random) -> list[JSONObject]:
    """Half of the targets (rounded up), in their original order."""
    keep = set(rng.sample(range(len(targets)), (len(targets) + 1) // 2))
    return [target for index, target in enumerate(targets) if index in keep]
