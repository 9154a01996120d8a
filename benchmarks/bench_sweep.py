"""Sweep timing on dask.distributed: the diameter example with 1 and 2 local workers, and
the scheduler's overhead per point (a sweep of points that simulate nothing).

    .venv/bin/python benchmarks/bench_sweep.py [--file examples/sweep_diameter.toml]
        [--workers 1 2] [--trivial-points 400]

Columns: wall = the whole run_sweep (cluster start, points, table, plots); start = cluster
up with every worker's imports done; execute = first submit to last result; points = sum of
the points' own compute times; overhead/point = (execute x workers - points) / n, the time a
worker spends per point on anything but the point (scheduling, transfer, the driver writing
the result, idle waiting at the end).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from mtjsim.sweep import load_sweep, parse_sweep
from mtjsim.sweep.runner import run_sweep

REPO = Path(__file__).resolve().parents[1]


def _row(label: str, n: int, run) -> str:
    over = (run.execute_s * run.workers - run.point_s) / max(run.computed, 1)
    return (f"{label:<28}{n:>7}{run.workers:>8}{run.wall_s:>9.2f}{run.cluster_start_s:>8.2f}"
            f"{run.execute_s:>9.2f}{run.point_s:>9.2f}{over * 1e3:>12.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", type=Path, default=REPO / "examples" / "sweep_diameter.toml")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--trivial-points", type=int, default=400)
    a = ap.parse_args()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (other jobs compete "
          f"for the cores)")
    print(f"{'sweep':<28}{'points':>7}{'workers':>8}{'wall s':>9}{'start':>8}{'execute':>9}"
          f"{'points s':>9}{'ms/pt ovh':>12}")
    for w in a.workers:
        sweep = load_sweep(a.file)
        with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
            run = run_sweep(sweep, Path(tmp), workers=w, progress=False)
        print(_row(a.file.stem, len(sweep.points), run), flush=True)
    # Points that only compute the analytic device figures (~0.1 ms): what is left is the
    # cost of dask and of the driver's atomic JSON write per point.
    n = a.trivial_points
    trivial = parse_sweep({"metrics": ["device"], "sweep": {
        "device.diameter_m": {"linspace": [20e-9, 100e-9, n]}}}, name="trivial")
    for w in a.workers:
        with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
            run = run_sweep(trivial, Path(tmp), workers=w, progress=False, plots=False)
        print(_row(f"trivial (overhead only)", n, run) +
              f"   execute/n = {run.execute_s / n * 1e3:.2f} ms", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
