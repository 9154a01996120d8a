"""Fast-engine reads in the settings of issue 5's targets, against the peer's numbers quoted
there (CrossSim 3.2's iterative parasitic solver on this machine, same 1 ohm/segment network):
128x128 read 11.5 ms at 3e-9 (5 ms at 5e-4), 256x256 143 ms, a batch of 100 vectors at
128x128 1.4 s.

    PYTHONPATH=. python benchmarks/bench_read_sequence.py [--sizes 128 256] [--part seq ff mem]

seq  training-like sequence: before every read ``--flips`` random cells flip, then ONE new
     random input vector (0-0.2 V) is read exactly (tol_rel = tol_v = 1e-6: refined to 1e-6 or
     better) by two engines in the same run, alternating which goes first: ``lu`` (sparse
     LU; flips are low-rank updates of the last factorization, refactored after
     ``max_low_rank`` (48) flips) and ``lines`` (``solver="lines"``: warm-started block SOR
     between row and bit lines, mtjsim/engines/fast_lines.py). Every few reads both answers
     are checked against a fresh engine (new factorization, tol_rel 1e-10). Time per read:
     median, mean (includes the refactorizations) and best.
ff   feedforward through one tile (passive 128x128, r_wire 1 ohm, driver 20 ohm): M built
     once per state with the devices linearized at the read bias (bias_v = 0.1 V), then
     batches of 100 through M (LINEAR), with the a-posteriori check (CHECKED, linear_tol
     1e-3), and exact (EXACT, refined to 1e-10); error of the linear map against exact
     answers for binary (0 / 0.1 V), ternary (-0.1 / 0 / 0.1 V) and uniform 0-0.2 V inputs,
     for bias_v = 0 and 0.1 V; cost of a new state after a few flips (M low-rank update).
mem  peak resident memory (VmHWM) of a fresh process doing a first exact read of a
     256x256 array (and its effective matrix).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np

from mtjsim.circuit.crossbar import ArrayKind, ArraySpec, Crossbar
from mtjsim.engines.fast import FastReadEngine, ReadMode
from timing import best_of

PEER_READ_S = {128: 11.5e-3, 256: 143e-3}     # issue 5: CrossSim 3.2 at 3e-9
PEER_BATCH100_S = 1.4


def rel(got, want):
    return float((np.abs(got - want) / np.abs(want).max(axis=1, keepdims=True)).max())


def spec_of(n, kind="passive"):
    return ArraySpec(kind=ArrayKind(kind), rows=n, cols=n, r_wire_ohm=1.0)


SOLVERS = ("lu", "lines")


def sequence(n, kind, reads, flips, check_every, bias_v):
    """Both solvers on the same sequence of flips and inputs, in the same run."""
    rng = np.random.default_rng(n)
    xb = Crossbar.random(spec_of(n, kind), seed=1)
    engines = {s: FastReadEngine(xb, tol_rel=1e-6, tol_v=1e-6, bias_v=bias_v, solver=s)
               for s in SOLVERS}
    v0 = rng.uniform(0, 0.2, n)
    for eng in engines.values():
        eng.read(v0, cell_voltages=False)          # first factorization / cold line solve
    stats = {s: dict(times=[], errs=[], iters=[], refactors=0) for s in SOLVERS}
    for k in range(reads):
        flat = xb.states.reshape(-1)
        flat[rng.choice(flat.size, flips, replace=False)] ^= 1
        v = rng.uniform(0, 0.2, n)
        ref = (FastReadEngine(xb).read(v, cell_voltages=False).i_out_a
               if k % check_every == 0 else None)
        for s in (SOLVERS if k % 2 == 0 else SOLVERS[::-1]):
            st = stats[s]
            t0 = time.perf_counter()
            r = engines[s].read(v, cell_voltages=False)
            st["times"].append(time.perf_counter() - t0)
            st["refactors"] += r.factorized
            st["iters"].append(int(r.iterations[0]))
            if ref is not None:
                st["errs"].append(rel(r.i_out_a, ref))
    out = {}
    for s, st in stats.items():
        t = np.array(st["times"])
        out[s] = dict(median=np.median(t), mean=t.mean(), best=t.min(), max_err=max(st["errs"]),
                      refactors=st["refactors"], iters=int(np.median(st["iters"])),
                      checks=len(st["errs"]))
    return out


def run_sequence(a):
    print(f"\ntraining-like sequence: {a.flips} random flips, then one new input vector "
          f"(uniform 0-0.2 V), exact (tol_rel 1e-6); {a.reads} reads; bias_v {a.bias_v} V")
    print("(iters: chord iterations for lu, sweeps for lines; refactors: LU factorizations)")
    print(f"{'array':>9} {'kind':>7} {'solver':>6} {'median ms':>9} {'mean ms':>8} "
          f"{'best ms':>8} {'peer ms':>8} {'x peer':>7} {'target ms':>9} {'max err':>8} "
          f"{'checks':>6} {'refactors':>9} {'iters':>5}")
    for n in a.sizes:
        for kind in a.kinds:
            res = sequence(n, kind, a.reads, a.flips, a.check_every, a.bias_v)
            peer = PEER_READ_S.get(n)
            target = {128: 6, 256: 70}.get(n)
            for solver, s in res.items():
                print(f"{n:>4}x{n:<4} {kind:>7} {solver:>6} {1e3 * s['median']:9.2f} "
                      f"{1e3 * s['mean']:8.2f} {1e3 * s['best']:8.2f} "
                      f"{1e3 * peer if peer else float('nan'):8.1f} "
                      f"{peer / s['median'] if peer else float('nan'):7.1f} "
                      f"{target if target else '-':>9} {s['max_err']:8.1e} {s['checks']:6d} "
                      f"{s['refactors']:9d} {s['iters']:5d}", flush=True)


def run_feedforward(a):
    n, B = 128, 100
    rng = np.random.default_rng(5)
    xb = Crossbar.random(spec_of(n), seed=1)
    inputs = {
        "binary 0/0.1": 0.1 * (rng.random((B, n)) < 0.5),
        "ternary -0.1/0/0.1": 0.1 * rng.integers(-1, 2, (B, n)),
        "uniform 0-0.2": rng.uniform(0, 0.2, (B, n)),
    }
    exact_eng = FastReadEngine(xb)
    t_exact, _ = best_of(lambda: exact_eng.read(inputs["uniform 0-0.2"], cell_voltages=False),
                         1)
    exact = {k: exact_eng.read(v, cell_voltages=False).i_out_a for k, v in inputs.items()}
    print(f"\nfeedforward, passive {n}x{n}, r_wire 1 ohm, driver 20 ohm, batch {B}; peer: "
          f"{PEER_BATCH100_S} s per batch")
    print(f"{'bias_v':>6} {'M build s':>9} {'inputs':>20} {'linear s':>9} {'vec/s':>9} "
          f"{'x peer':>7} {'lin err':>8} {'estimate':>8} {'checked s':>9} {'refined':>7} "
          f"{'chk err':>8}")
    for bias in (0.0, 0.1):
        eng = FastReadEngine(xb, bias_v=bias, linear_tol=1e-3)
        t0 = time.perf_counter()
        eng.effective_matrix()
        eng.read(inputs["binary 0/0.1"][:1], mode=ReadMode.CHECKED, cell_voltages=False)
        t_m = time.perf_counter() - t0                    # factor(s) + M + estimate terms
        for name, v in inputs.items():
            t_lin, lin = best_of(lambda: eng.read(v, mode=ReadMode.LINEAR, cell_voltages=False))
            t_chk, chk = best_of(lambda: eng.read(v, mode=ReadMode.CHECKED,
                                                  cell_voltages=False), 2)
            print(f"{bias:6.2f} {t_m:9.3f} {name:>20} {t_lin:9.5f} {B / t_lin:9.2e} "
                  f"{PEER_BATCH100_S / t_lin:7.0f} {rel(lin.i_out_a, exact[name]):8.1e} "
                  f"{chk.error_estimate.max():8.1e} {t_chk:9.4f} {int(chk.refined.sum()):7d} "
                  f"{rel(chk.i_out_a, exact[name]):8.1e}", flush=True)
    print(f"exact batch (EXACT, refined to 1e-10, uniform 0-0.2 V): {t_exact:.3f} s = "
          f"{B / t_exact:.0f} vectors/s, x{PEER_BATCH100_S / t_exact:.1f} the peer")
    # a new state: a few flips, then the next batch through the low-rank-updated M
    eng = FastReadEngine(xb, bias_v=0.1)
    eng.effective_matrix()
    print(f"{'flips':>6} {'new M s':>8} {'batch s':>8} {'M vs refactored':>16}")
    for flips in (1, 4, 16, 48):
        x2 = Crossbar(xb.spec, xb.states.copy())
        flat = x2.states.reshape(-1)
        flat[rng.choice(flat.size, flips, replace=False)] ^= 1
        eng.xbar = x2
        t0 = time.perf_counter()
        M = eng.effective_matrix()
        t_new = time.perf_counter() - t0
        t_b, _ = best_of(lambda: eng.read(inputs["binary 0/0.1"], mode=ReadMode.LINEAR,
                                          cell_voltages=False))
        M_ref = FastReadEngine(x2, bias_v=0.1).effective_matrix()
        print(f"{flips:6d} {t_new:8.4f} {t_b:8.5f} {np.abs(M - M_ref).max() / np.abs(M_ref).max():16.1e}",
              flush=True)


# peak resident memory of this process (VmHWM: unlike ru_maxrss, not inherited from the
# parent across fork/exec)
HWM = ("def hwm():\n"
       "    for line in open('/proc/self/status'):\n"
       "        if line.startswith('VmHWM'):\n"
       "            return int(line.split()[1]) / 1024\n")


def run_memory(a):
    code = (HWM + "import time, numpy as np\n"
            "from mtjsim.circuit.crossbar import ArraySpec, Crossbar\n"
            "from mtjsim.engines.fast import FastReadEngine\n"
            f"xb = Crossbar.random(ArraySpec(rows={a.mem_size}, cols={a.mem_size}, "
            "r_wire_ohm=1.0), seed=1)\n"
            "t0 = time.perf_counter()\n"
            f"eng = FastReadEngine(xb); eng.read(np.full({a.mem_size}, 0.1))\n"
            "t1 = time.perf_counter() - t0\n"
            "r1 = hwm()\n"
            "t0 = time.perf_counter(); eng.effective_matrix(); t2 = time.perf_counter() - t0\n"
            "r2 = hwm()\n"
            "print(f'{t1:.3f} {r1:.0f} {t2:.2f} {r2:.0f}')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    base = subprocess.run([sys.executable, "-c", HWM + "import mtjsim.engines.fast\nprint(hwm())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    n = a.mem_size
    print(f"\nmemory, passive {n}x{n} (fresh process; imports alone: {float(base):.0f} MiB)")
    print(f"{'step':>28} {'time s':>7} {'peak RSS MiB':>12} {'target':>8}")
    print(f"{'first exact read':>28} {float(out[0]):7.3f} {float(out[1]):12.0f} {'2048':>8}")
    print(f"{'+ effective matrix':>28} {float(out[2]):7.2f} {float(out[3]):12.0f} {'2048':>8}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--kinds", nargs="+", default=["passive"])
    ap.add_argument("--part", nargs="+", default=["seq", "ff", "mem"])
    ap.add_argument("--reads", type=int, default=60)
    ap.add_argument("--flips", type=int, default=2)
    ap.add_argument("--check-every", type=int, default=6)
    ap.add_argument("--bias-v", type=float, default=0.1)
    ap.add_argument("--mem-size", type=int, default=256)
    a = ap.parse_args()
    if "seq" in a.part:
        run_sequence(a)
    if "ff" in a.part:
        run_feedforward(a)
    if "mem" in a.part:
        run_memory(a)


if __name__ == "__main__":
    main()
