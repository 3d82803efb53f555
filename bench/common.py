"""Helpers shared by the benchmarks."""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Callable, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB = os.path.join(ROOT, "lib")
if LIB not in sys.path:
    sys.path.insert(0, LIB)


def best_cpu(work: Callable[[], object], repeat: int) -> float:
    """Best-of-``repeat`` CPU time (process_time) of ``work()``, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best


def percentile(values: List[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, int(round(fraction * (len(ordered) - 1)))))
    return ordered[index]


def median(values: List[float]) -> float:
    return statistics.median(values) if values else float("nan")
