"""Disclosure rules: small pure functions, one rule each (the policy gives the numbers).

Every function takes plain values and returns a decision or a released value, so each rule is
tested on its own and `disclosure.protect` only walks tables and applies them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

#: Cell flags set by the privacy layer (AggregateTable.flags values).
SUPPRESSED = "suppressed"  # the value was withheld (released as None)
PRIMARY = "primary"  # ... because it is itself below the threshold (display "<min_cell")
SECONDARY = "secondary"  # ... because it would let a suppressed cell be derived
ROUNDED = "rounded"  # the value was rounded to the policy's base
NOISY = "noisy"  # the value carries differential-privacy noise
RECOMPUTED = "recomputed"  # a total recomputed as the sum of its released, rounded cells
LIMITED = "limited"  # a statistic cut to the policy's significant digits

PERCENTILE_NAME = re.compile(r"^(?:p|pct|percentile_?)(\d{1,2})$")
MEDIAN_NAMES = frozenset({"median", "p50"})
EXTREME_NAMES = frozenset({"min", "max", "minimum", "maximum"})
MEAN_NAMES = frozenset({"mean", "avg", "average"})
SUM_NAMES = frozenset({"sum", "total"})


def below_threshold(count: int | None, min_cell: int) -> bool:
    """Primary suppression: counts 1 .. min_cell-1 are withheld; 0 is released (no person)."""
    return count is not None and 0 < count < min_cell


def round_to_base(value: int, base: int) -> int:
    """Nearest multiple of base, halves rounded up (12 -> 10, 13 -> 15 with base 5)."""
    if base <= 1:
        return int(value)
    return math.floor(value / base + 0.5) * base


def limit_digits(value: float | None, digits: int) -> float | None:
    """Keep `digits` significant digits of a statistic (None, inf and nan pass through)."""
    if value is None or not isinstance(value, int | float) or not math.isfinite(value):
        return value
    if value == 0:
        return 0.0
    return float(f"{value:.{digits}g}")


def percentile_of(column: str) -> float | None:
    """The quantile a statistic column holds (p10 -> 0.10, median -> 0.5), else None."""
    name = column.lower()
    if name in MEDIAN_NAMES:
        return 0.5
    match = PERCENTILE_NAME.match(name)
    if match:
        return int(match.group(1)) / 100
    return None


def percentile_releasable(n: int, q: float, min_each_side: int) -> bool:
    """At least `min_each_side` persons below and above the percentile."""
    below = math.floor(n * q)
    above = n - math.ceil(n * q)
    return below >= min_each_side and above >= min_each_side


def distribution_releasable(n: int | None, min_n: int) -> bool:
    return n is not None and n >= min_n


def is_extreme(column: str) -> bool:
    return column.lower() in EXTREME_NAMES


def dominance_violated(contributions: Sequence[float], n: int, k: float) -> bool:
    """(n, k) rule: the n largest non-negative contributions make more than k of the total."""
    values = sorted((abs(v) for v in contributions), reverse=True)
    total = sum(values)
    if total <= 0:
        return False
    return sum(values[:n]) > k * total


def dominance_violated_bound(count: int, mean: float, maximum: float, n: int, k: float) -> bool:
    """The (n, k) rule when only n, mean and max are known (non-negative values).

    The n largest contributions are at most n * max, so the rule is applied to that bound: a
    conservative test that never releases a dominated sum or mean.
    """
    if count <= 0 or mean is None or maximum is None:
        return False
    total = abs(mean) * count
    if total <= 0:
        return False
    return min(n, count) * abs(maximum) > k * total


def needs_partner(suppressed_in_line: int, cells_in_line: int, total_released: bool) -> bool:
    """Complementary suppression for one line (cells that add up to a published total).

    A single suppressed cell of a line whose total is known is the total minus the others:
    another cell (or the total) must go too.
    """
    return total_released and suppressed_in_line == 1 and cells_in_line >= 1
