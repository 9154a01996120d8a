"""Fast read engine against ngspice on random arrays (r_wire 1 ohm, driver 20 ohm, virtual
ground, half the cells AP): wall time and the largest difference in column currents.

    PYTHONPATH=. python benchmarks/bench_fast_read.py [--sizes 16 32 64 128 256]
        [--kind passive|1t1r] [--batch 100] [--with-ngspice-128]

Columns (seconds unless said):
  ngspice      one input vector, ``mtjsim.ops.read.read`` (.op), netlist to parsed result
  fast first   a new FastReadEngine: build + factor the nodal matrix, solve the same vector
  x first      ngspice / fast first
  fast batch   a cached engine, ``batch`` random vectors, exact (chord/Newton refinement)
  per vec      fast batch / batch; ``x vec`` = ngspice / per vec
  M build      the effective matrix (min(rows, cols) solves), once per state
  linear       the batch through M only (ReadMode.LINEAR, no cell voltages): a matrix product
  rel diff     max |fast - ngspice| / max |ngspice| over the columns of the vector
  lin err      max relative error of the LINEAR answers against the exact ones (bias roll-off)
ngspice is skipped (``-``) at 128x128 unless --with-ngspice-128 (about 90 s) and always above
(ngspice's time grows ~40x per doubling of the side: about an hour at 256x256).
"""

from __future__ import annotations

import argparse

import numpy as np

from mtjsim.circuit.crossbar import ArrayKind, ArraySpec, Crossbar
from mtjsim.engines.fast import FastReadEngine, ReadMode
from timing import best_of


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    ap.add_argument("--kind", choices=[k.value for k in ArrayKind], default="passive")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3, help="best of, for the fast timings")
    ap.add_argument("--with-ngspice-128", action="store_true",
                    help="also run ngspice at 128x128 (about 90 s)")
    a = ap.parse_args()
    kind = ArrayKind(a.kind)
    print(f"{kind.value} arrays, r_wire 1 ohm, driver 20 ohm, virtual ground, random states; "
          f"batch {a.batch}")
    print(f"{'size':>8} {'ngspice':>9} {'fast first':>10} {'x first':>8} {'fast batch':>10} "
          f"{'per vec':>9} {'x vec':>8} {'M build':>8} {'linear':>8} {'rel diff':>9} "
          f"{'lin err':>8} {'iters':>5}")
    for n in a.sizes:
        xb = Crossbar.random(ArraySpec(kind=kind, rows=n, cols=n, r_wire_ohm=1.0), seed=1)
        rng = np.random.default_rng(0)
        v1 = rng.uniform(0.0, 0.2, n)
        vb = rng.uniform(0.0, 0.2, (a.batch, n))

        t_first, first = best_of(lambda: FastReadEngine(xb).read(v1), a.repeat if n < 256 else 1)
        eng = FastReadEngine(xb)
        eng.read(v1)                                       # factor once: later reads are cached
        t_batch, exact = best_of(lambda: eng.read(vb), 1 if n >= 128 else a.repeat)
        t_m, _ = best_of(lambda: eng.effective_matrix(), 1)
        t_lin, lin = best_of(lambda: eng.read(vb, mode=ReadMode.LINEAR, cell_voltages=False),
                             a.repeat)
        lin_err = np.abs(lin.i_out_a - exact.i_out_a).max() / np.abs(exact.i_out_a).max()
        per_vec = t_batch / a.batch

        t_ng = diff = None
        if n < 128 or (n == 128 and a.with_ngspice_128):     # 256: hours in ngspice
            from mtjsim.ops.read import read
            t_ng, ref = best_of(lambda: read(xb, v1), 1 if n >= 64 else a.repeat)
            diff = np.abs(first.i_out_a[0] - ref.i_out_a[0]).max() / np.abs(ref.i_out_a).max()

        def fmt(x, spec):
            return format(x, spec) if x is not None else "-"
        print(f"{n:>4}x{n:<3} {fmt(t_ng, '9.3f'):>9} {t_first:10.4f} "
              f"{fmt(t_ng and t_ng / t_first, '8.0f'):>8} {t_batch:10.3f} {per_vec:9.5f} "
              f"{fmt(t_ng and t_ng / per_vec, '8.0f'):>8} {t_m:8.3f} {t_lin:8.4f} "
              f"{fmt(diff, '9.1e'):>9} {lin_err:8.1e} {exact.iterations.max():5d}", flush=True)


if __name__ == "__main__":
    main()
