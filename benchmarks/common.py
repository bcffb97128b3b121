"""What a benchmark returns: rows of a figure, its unit, and the comparison it names."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@dataclass
class BenchRow:
    area: str  # cdm | study | ingest | privacy | access | federation | web
    name: str  # what was measured
    value: float
    unit: str  # s | ms | rows/s | requests/s | ...
    baseline_name: str = ""  # what it is compared against, measured in the same run
    baseline: float | None = None
    goal: str = ""  # the goal, e.g. "ratio <= 1.5"
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline  # type: ignore[operator]


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """The fastest of `repeat` wall-clock timings of fn(), in seconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def median_of(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)
