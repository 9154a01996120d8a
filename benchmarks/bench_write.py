"""ONE write pulse on passive (V/2, V/3) and 1T1R arrays: ngspice wall time and time points
per pulse, and the fast (quasi-static) engine measured in the same run, with the ratio and
whether both give the same switched cells. Single target in the middle, all cells P, 10 ns.

    .venv/bin/python benchmarks/bench_write.py [--sizes 16 32 64] [--no-fast]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mtjsim.circuit.crossbar import ArrayKind, ArraySpec, Crossbar
from mtjsim.engines import Engine
from mtjsim.ops.write import Direction, PulseProgram, WriteScheme, write


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--no-fast", action="store_true", help="ngspice only")
    a = ap.parse_args()
    print(f"{'array':>14} {'scheme':>6} {'dynamic MTJs':>12} {'time points':>11} "
          f"{'ngspice s':>10} {'fast s':>8} {'ratio':>7} {'same outcome':>12}")
    for kind, scheme, v in ((ArrayKind.PASSIVE, WriteScheme.V_HALF, 0.5),
                            (ArrayKind.PASSIVE, WriteScheme.V_THIRD, 0.5),
                            (ArrayKind.ONE_T_ONE_R, WriteScheme.ONE_T_ONE_R, 1.2)):
        for n in a.sizes:
            spec = ArraySpec(kind=kind, rows=n, cols=n, r_wire_ohm=1.0)
            xb = Crossbar(spec, np.zeros(spec.shape, dtype=np.int8))
            prog = PulseProgram.single(spec.shape, n // 2, n // 2, scheme, Direction.SET,
                                       v_write_v=v, pulse_width_s=10e-9)
            r = write(xb, prog, seed=1)
            line = (f"{kind.value + f' {n}x{n}':>14} {scheme.value:>6} "
                    f"{int(r.dynamic.sum()):>12} {r.n_time_points:>11} "
                    f"{r.timings_s['ngspice_s']:>10.2f}")
            if not a.no_fast:
                t0 = time.perf_counter()
                f = write(xb, prog, seed=1, engine=Engine.FAST)
                fast_s = time.perf_counter() - t0
                same = bool((r.switched == f.switched).all())
                line += (f" {fast_s:>8.3f} {r.timings_s['ngspice_s'] / fast_s:>7.0f} "
                         f"{str(same):>12}")
            print(line, flush=True)


if __name__ == "__main__":
    main()
