"""Write statistics: one pulse program repeated over many seeds (new thresholds each time,
same devices), per-cell switching probability with a confidence interval, the write error
rate of the selected cells and the disturb rate of the others."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from mtjsim.circuit.crossbar import Crossbar
from mtjsim.engines import Engine
from mtjsim.ops.write import PulseProgram, write
from mtjsim.validation import check_int, check_range


def wilson_interval(k, n, confidence: float = 0.95):
    """Wilson score interval of a binomial proportion k/n (vectorised over k)."""
    k = np.asarray(k, dtype=float)
    z = norm.ppf(0.5 + confidence / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


@dataclass
class WriteStats:
    n_seeds: int
    confidence: float
    targets: np.ndarray
    states_before: np.ndarray
    switch_count: np.ndarray        # (rows, cols) seeds in which the cell switched
    p_switch: np.ndarray
    p_switch_low: np.ndarray
    p_switch_high: np.ndarray
    i_cell_peak_a: np.ndarray       # mean over seeds of the per-cell peak current
    write_error_rate: float         # fraction of (seed, target cell) left in the wrong state
    disturb_rate: float             # fraction of (seed, non-target cell) that switched
    solver_s: float                 # time spent in the engine over all seeds


def _one(args):
    xbar, program, seed, engine = args
    r = write(xbar, program, seed, engine=engine)
    return r.switched, r.write_errors, r.i_cell_peak_a, sum(r.timings_s.get(k, 0.0) for k in
                                                            ("ngspice_s", "fast_s"))


def write_stats(xbar: Crossbar, program: PulseProgram, n_seeds: int, *, first_seed: int = 0,
                workers: int = 1, confidence: float = 0.95,
                engine: Engine = Engine.NGSPICE) -> WriteStats:
    """Repeat ``program`` from the same initial states with seeds first_seed .. +n_seeds-1."""
    check_int("n_seeds", n_seeds, lo=1, hi=1_000_000)
    check_int("workers", workers, lo=1, hi=256)
    check_range("confidence", confidence, lo=0, lo_open=True, hi=1, hi_open=True,
                typical="0.95 or 0.99")
    jobs = [(xbar, program, first_seed + k, engine) for k in range(n_seeds)]
    if workers == 1:
        results = list(map(_one, jobs))
    else:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_one, jobs))
    switched = np.sum([r[0] for r in results], axis=0)
    errors = np.sum([r[1] for r in results], axis=0)
    lo, hi = wilson_interval(switched, n_seeds, confidence)
    t = program.targets
    n_other = (~t).sum()
    return WriteStats(
        n_seeds=n_seeds, confidence=confidence, targets=t.copy(),
        states_before=xbar.states.copy(), switch_count=switched, p_switch=switched / n_seeds,
        p_switch_low=lo, p_switch_high=hi,
        i_cell_peak_a=np.mean([r[2] for r in results], axis=0),
        write_error_rate=float(errors[t].sum() / (t.sum() * n_seeds)),
        disturb_rate=float(switched[~t].sum() / (n_other * n_seeds)) if n_other else 0.0,
        solver_s=float(sum(r[3] for r in results)))
