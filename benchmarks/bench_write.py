"""ngspice wall time of ONE write pulse on passive (V/2) and 1T1R arrays, and the number of
time points per pulse. Single target cell in the middle, all cells P, set, 10 ns.

    .venv/bin/python benchmarks/bench_write.py [--sizes 16 32 64]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mtjsim.circuit.crossbar import ArrayKind, ArraySpec, Crossbar
from mtjsim.ops.write import Direction, PulseProgram, WriteScheme, write


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64])
    a = ap.parse_args()
    print(f"{'array':>14} {'scheme':>6} {'dynamic MTJs':>12} {'time points':>11} "
          f"{'ngspice s':>10} {'total s':>8}")
    for kind, scheme, v in ((ArrayKind.PASSIVE, WriteScheme.V_HALF, 0.5),
                            (ArrayKind.PASSIVE, WriteScheme.V_THIRD, 0.5),
                            (ArrayKind.ONE_T_ONE_R, WriteScheme.ONE_T_ONE_R, 1.2)):
        for n in a.sizes:
            spec = ArraySpec(kind=kind, rows=n, cols=n, r_wire_ohm=1.0)
            xb = Crossbar(spec, np.zeros(spec.shape, dtype=np.int8))
            prog = PulseProgram.single(spec.shape, n // 2, n // 2, scheme, Direction.SET,
                                       v_write_v=v, pulse_width_s=10e-9)
            t0 = time.perf_counter()
            r = write(xb, prog, seed=1)
            total = time.perf_counter() - t0
            print(f"{kind.value + f' {n}x{n}':>14} {scheme.value:>6} {int(r.dynamic.sum()):>12} "
                  f"{r.n_time_points:>11} {r.timings_s['ngspice_s']:>10.2f} {total:>8.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
