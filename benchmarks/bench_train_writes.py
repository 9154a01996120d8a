"""The writes of one training update of example 04's large network (GXNOR MNIST-5k, 784-512-10
ternary on 32x32 1T1R tiles: 817 tiles; batch 200), fast engine, one process: the tiles'
programs one at a time (``backends._run_tile``: each program planned and written on its own)
against all tiles' k-th programs batched into one plan and one write
(``backends._run_tiles``), timed in the same run on the same requests (captured from a real
update), alternating. Prints both, the ratio, and whether they wrote the same states.

    .venv/bin/python benchmarks/bench_train_writes.py [--tile 32] [--hidden 512] [--repeat 1]
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np

from mtjsim.engines import Engine
from mtjsim.train import backends, loop
from mtjsim.train.backends import WriteCounters
from timing import mnist_network


def capture(tile: int, hidden: int):
    """The payloads one update of a freshly initialized network hands to ``_run_tiles``."""
    cfg, data, net = mnist_network(tile, hidden)
    circuit, _ = loop._make_backends(cfg)
    circuit.workers = 1
    payloads = []
    run_tiles = backends._run_tiles

    def keep(payload):
        payloads.append(copy.deepcopy(payload))
        return run_tiles(payload)

    backends._run_tiles = keep
    try:
        idx = np.random.default_rng(1).choice(len(data.y_train), cfg.batch_size, replace=False)
        loop._update(cfg, net, circuit, data.x_train[idx], data.y_train[idx], cfg.lr,
                     WriteCounters())
    finally:
        backends._run_tiles = run_tiles
        circuit.close()
    return net.tiling()["n_tiles"], payloads


def one_by_one(payloads):
    out = []
    for work, settings, keep_records in payloads:
        out += [backends._run_tile((tile, requests, settings, Engine.FAST, keep_records, False))
                for tile, requests in copy.deepcopy(work)]
    return out


def batched(payloads):
    out = []
    for payload in payloads:
        out += backends._run_tiles(copy.deepcopy(payload))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tile", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    n_tiles, payloads = capture(a.tile, a.hidden)
    programs = sum(len(plans) for work, _, _ in payloads for _, reqs in work
                   for _, plans, _ in reqs)
    print(f"{n_tiles} tiles of {a.tile}x{a.tile}: one update's writes, {programs} programs "
          f"in {len(payloads)} phase(s)")
    times = {"one by one": [], "batched": []}
    for _ in range(a.repeat):
        for name, fn in (("one by one", one_by_one), ("batched", batched)):
            t0 = time.perf_counter()
            res = fn(payloads)
            times[name].append(time.perf_counter() - t0)
            states = [s for _, s in res]
            if name == "one by one":
                ref = states
    same = all(np.array_equal(x, y) for x, y in zip(ref, states))
    for name, t in times.items():
        print(f"{name:>11}: {np.mean(t):6.1f} s (mean of {len(t)})")
    print(f"batched is {np.mean(times['one by one']) / np.mean(times['batched']):.1f}x faster; "
          f"same states written: {same}")


if __name__ == "__main__":
    main()
