"""Reads of one training forward pass on example 04's large network (GXNOR MNIST-5k, 784-512-10
ternary, 817 tiles of 32x32 1T1R, two-phase reads at 0.1 V, CHECKED at read_tol 2e-2): the
800 tiles of the first layer read by ``CircuitBackend.forward`` for a batch of 200 training
images, one worker.

    .venv/bin/python benchmarks/bench_train_read.py [--ref fd15c8f] [--no-ref] [--flips 4]
        [--exact-tiles 50]

Times, for the read engine of the working tree and, in the same run, the one of git
revision ``--ref`` (fast.py and fast_ops.py loaded from that commit; default: the commit
before the read speed-ups):

  first    new engines: every tile built, factored, linearized (the first read of a run)
  same     the next batch, no state changed (evaluation passes, late training)
  flipped  the next batch after ``--flips`` random cells of every tile changed state (a
           training update: the engines follow the states as low-rank updates)

and the largest error of each against an exact solve of the same reads (EXACT mode, every
vector converged to tol_rel 1e-10) on ``--exact-tiles`` of the tiles: per phase read, max
|i - i_exact| over the columns relative to the largest |i_exact| of that read (what
``read_tol`` bounds), and on the layer's output z relative to max |z_exact| of the sample.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _rel(z, ref):
    """max over rows of max |z - ref| / max |ref| (rows with ref all 0 skipped)."""
    scale = np.abs(ref).max(axis=1)
    ok = scale > 0
    return float((np.abs(z - ref).max(axis=1)[ok] / scale[ok]).max()) if ok.any() else 0.0


def _load_ref(rev: str):
    """(FastReadEngine, fast_read) of mtjsim/engines/fast.py and mtjsim/ops/fast_ops.py at
    git revision ``rev``, as modules of their own (the working tree's stay imported)."""
    def source(path):
        return subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:{path}"], check=True,
                              capture_output=True, text=True).stdout

    fast = types.ModuleType("mtjsim_ref_fast")
    fast.__file__ = f"{rev}:mtjsim/engines/fast.py"
    sys.modules[fast.__name__] = fast              # dataclasses look their module up
    exec(compile(source("mtjsim/engines/fast.py"), fast.__file__, "exec"), fast.__dict__)
    ops = types.ModuleType("mtjsim_ref_fast_ops")
    sys.modules[ops.__name__] = ops
    ops.__dict__["fast"] = fast
    src = source("mtjsim/ops/fast_ops.py").replace("from mtjsim.engines import fast\n", "")
    exec(compile(src, f"{rev}:mtjsim/ops/fast_ops.py", "exec"), ops.__dict__)
    return fast.FastReadEngine, ops.fast_read, ops.engine_options


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default="fd15c8f", help="git revision of the old read engine")
    ap.add_argument("--no-ref", action="store_true", help="time the working tree only")
    ap.add_argument("--flips", type=int, default=4, help="cells flipped per tile in (c)")
    ap.add_argument("--exact-tiles", type=int, default=50)
    a = ap.parse_args()

    from mtjsim.engines import fast as new_fast
    from mtjsim.ops import fast_ops as new_ops
    from mtjsim.ops.read import ReadSettings
    from mtjsim.train import backends, loop
    from mtjsim.train.backends import WriteCounters

    from timing import mnist_network
    cfg, data, net = mnist_network()
    layer = net.layers[0]
    states0 = [t.xbar.states.copy() for t in layer.tiles]
    rng = np.random.default_rng(7)
    flipped = []
    for s in states0:
        s = s.copy()
        s.flat[rng.choice(s.size, a.flips, replace=False)] ^= 1
        flipped.append(s)
    x = [data.x_train[k * 200:(k + 1) * 200] for k in range(3)]
    sub = dataclasses.replace(layer, tiles=layer.tiles[::max(1, len(layer.tiles)
                                                             // a.exact_tiles)])
    print(f"{len(layer.tiles)} tiles of 32x32 in layer 0, batch 200, two-phase, "
          f"read_tol {cfg.read_tol:g}, {a.flips} flips per tile in (c); errors on "
          f"{len(sub.tiles)} tiles")

    versions = [("new", new_fast.FastReadEngine, new_ops.fast_read, new_ops.engine_options)]
    if not a.no_ref:
        versions.insert(0, (f"ref {a.ref}",) + _load_ref(a.ref))

    def set_states(states):
        for t, s in zip(layer.tiles, states):
            t.xbar.states = s

    def phases(tile, xb):
        """The tile's live phase inputs as forward makes them."""
        ab = layer.with_bias(xb)
        v = np.zeros((xb.shape[0], tile.xbar.spec.rows))
        v[:, :tile.r1 - tile.r0] = ab[:, tile.r0:tile.r1] * cfg.v_read_v
        ph = np.concatenate([np.maximum(v, 0.0), np.maximum(-v, 0.0)])
        return ph[ph.max(axis=1) > 0]

    results = {}
    for name, Engine, fast_read, engine_options in versions:
        backends.FastReadEngine, backends.fast_read = Engine, fast_read
        backends.engine_options = engine_options
        circuit, _ = loop._make_backends(cfg)
        circuit.workers = 1
        exact = loop._make_backends(cfg)[0]
        exact.workers = 1
        exact.read_settings = ReadSettings(fast_mode="exact", fast_bias_v=cfg.v_read_v)
        row = {}
        for case, states, xb in (("first", states0, x[0]), ("same", states0, x[1]),
                                 ("flipped", flipped, x[2])):
            set_states(states)
            c = WriteCounters()
            t0 = time.perf_counter()
            z = circuit.forward(layer, xb, c)
            dt = time.perf_counter() - t0
            z_sub = circuit.forward(sub, xb, WriteCounters())
            z_ex = exact.forward(sub, xb, WriteCounters())
            err_z = _rel(z_sub, z_ex)
            err_i = 0.0
            for t in sub.tiles:
                ph = phases(t, xb)
                if ph.size:
                    err_i = max(err_i, _rel(circuit._read_once(t, ph),
                                            exact._read_once(t, ph)))
            row[case] = (dt, err_i, err_z, z)
            print(f"{name:>14}  {case:8s} {dt:7.2f} s  {1e3 * dt / len(layer.tiles):6.2f} ms/tile"
                  f"  max rel err: phase reads {err_i:.2e}, z {err_z:.2e}", flush=True)
        results[name] = row
        set_states(states0)
        circuit.close()
        exact.close()
    if len(results) == 2:
        (n0, r0), (n1, r1) = results.items()
        print("speed-up (ref / new):  " + "  ".join(
            f"{case} {r0[case][0] / r1[case][0]:.1f}x" for case in r0))
        print("max |z_new - z_ref| / max |z_ref| per sample:  " + "  ".join(
            f"{case} {_rel(r1[case][3], r0[case][3]):.1e}" for case in r0))


if __name__ == "__main__":
    main()
