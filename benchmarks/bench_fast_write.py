"""One write pulse on ngspice and on the fast (quasi-static) engine, measured in the same run:
wall time, ratio, and whether the outcomes agree. Single target in the middle, all cells P.

    .venv/bin/python benchmarks/bench_fast_write.py [--sizes 16 32 64]
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
    a = ap.parse_args()
    print(f"{'array':>14} {'scheme':>6} {'ngspice s':>10} {'fast s':>8} {'ratio':>7} "
          f"{'same outcome':>12}")
    for kind, scheme, v in ((ArrayKind.PASSIVE, WriteScheme.V_HALF, 0.5),
                            (ArrayKind.PASSIVE, WriteScheme.V_THIRD, 0.5),
                            (ArrayKind.ONE_T_ONE_R, WriteScheme.ONE_T_ONE_R, 1.2)):
        for n in a.sizes:
            spec = ArraySpec(kind=kind, rows=n, cols=n, r_wire_ohm=1.0)
            xb = Crossbar(spec, np.zeros(spec.shape, dtype=np.int8))
            prog = PulseProgram.single(spec.shape, n // 2, n // 2, scheme, Direction.SET,
                                       v_write_v=v, pulse_width_s=10e-9)
            t0 = time.perf_counter()
            r_ng = write(xb, prog, seed=1)
            t1 = time.perf_counter()
            r_fast = write(xb, prog, seed=1, engine=Engine.FAST)
            t2 = time.perf_counter()
            same = bool((r_ng.switched == r_fast.switched).all())
            print(f"{kind.value + f' {n}x{n}':>14} {scheme.value:>6} {t1 - t0:>10.2f} "
                  f"{t2 - t1:>8.3f} {(t1 - t0) / (t2 - t1):>7.0f} {str(same):>12}", flush=True)


if __name__ == "__main__":
    main()
