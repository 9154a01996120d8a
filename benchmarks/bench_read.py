"""Wall time of an ngspice read of passive arrays, split into netlist build, netlist write,
ngspice and result parsing; and the subprocess versus shared-library backends.

    .venv/bin/python benchmarks/bench_read.py [--sizes 16 32 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mtjsim.circuit.crossbar import ArraySpec, Crossbar
from mtjsim.engines.ngspice import Backend
from mtjsim.ops.read import read


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1, help="input vectors per read")
    a = ap.parse_args()
    print(f"{'size':>6} {'backend':>10} {'batch':>5} {'build s':>9} {'write s':>9} "
          f"{'ngspice s':>10} {'parse s':>9} {'total s':>9}")
    for n in a.sizes:
        xb = Crossbar.random(ArraySpec(rows=n, cols=n, r_wire_ohm=1.0), seed=1)
        x = np.random.default_rng(0).uniform(0, 0.2, (a.batch, n))
        for backend in Backend:
            best = None
            for _ in range(a.repeat):
                t0 = time.perf_counter()
                r = read(xb, x, backend=backend)
                total = time.perf_counter() - t0
                if best is None or total < best[1]:
                    best = (r.timings_s, total)
            t, total = best
            print(f"{n:>3}x{n:<2} {backend.value:>10} {a.batch:>5} {t['build_s']:9.4f} "
                  f"{t['netlist_write_s']:9.4f} {t['ngspice_s']:10.4f} {t['parse_s']:9.4f} "
                  f"{total:9.4f}", flush=True)


if __name__ == "__main__":
    main()
