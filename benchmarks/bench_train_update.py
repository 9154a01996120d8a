"""One training update of the GXNOR MNIST-5k network (example 04's large 784-512-10 ternary,
here on 128x128 1T1R tiles by default: 61 tiles; batch 200) on the fast engine, with the
tiles read and written by one worker and by ``--workers`` (``CircuitBackend.workers``: shard
processes that keep their tiles' read engines), measured in the same run, alternating, on
two copies of the network, each with its backend, fed the same batches (each update changes
the states, so every update re-linearizes every tile's read, as training does; the two
copies must stay identical, which is checked). The first update (engines built, write
voltages solved) is not timed. Prints reads and writes per update and the ratio.

    .venv/bin/python benchmarks/bench_train_update.py [--updates 2] [--workers 2]
        [--tile 128] [--hidden 512]

Memory: one read engine per tile and copy, ~11 GB for the 61 tiles of 128x128.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np

from mtjsim.train import loop
from mtjsim.train.backends import WriteCounters
from timing import mnist_network


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--updates", type=int, default=2, help="timed updates per setting")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tile", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=512)
    a = ap.parse_args()
    cfg, data, net = mnist_network(a.tile, a.hidden)
    nets = {1: net, a.workers: copy.deepcopy(net)}
    circuits = {w: loop._make_backends(cfg)[0] for w in nets}
    for w, circuit in circuits.items():
        circuit.workers = w
    rng = np.random.default_rng(1)
    print(f"{net.tiling()['n_tiles']} tiles of {a.tile}x{a.tile}, batch {cfg.batch_size}")

    def update(w: int, idx) -> tuple[float, float, float]:
        c = WriteCounters()
        t0 = time.perf_counter()
        loop._update(cfg, nets[w], circuits[w], data.x_train[idx], data.y_train[idx], cfg.lr,
                     c)
        return c.read_wall_s, c.write_wall_s, time.perf_counter() - t0

    times = {w: [] for w in nets}
    for k in range(a.updates + 1):               # the first: engines, write voltages
        idx = rng.choice(len(data.y_train), cfg.batch_size, replace=False)
        for w in nets:
            row = update(w, idx)
            if k:
                times[w].append(row)
    for w, rows in times.items():
        r, wr, tot = np.mean(rows, axis=0)
        print(f"workers {w}: reads {r:6.1f} s  writes {wr:6.1f} s  update {tot:6.1f} s "
              f"(mean of {len(rows)})")
    for circuit in circuits.values():
        circuit.close()
    states = [list(n.states().values()) for n in nets.values()]
    same = all(np.array_equal(x, y) for x, y in zip(*states))
    one, many = (np.mean(times[w], axis=0)[2] for w in nets)
    print(f"speedup with {a.workers} workers: {one / many:.2f}x; same states: {same}")


if __name__ == "__main__":
    main()
