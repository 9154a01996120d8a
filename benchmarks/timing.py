"""Shared by the benchmark scripts (run as ``python benchmarks/<script>.py``, so this folder
is on the import path)."""

from __future__ import annotations

import time

import numpy as np


def best_of(fn, repeat: int = 5):
    """(best wall time in seconds over ``repeat`` calls, the last call's result)."""
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out
