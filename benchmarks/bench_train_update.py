"""One training update of the GXNOR MNIST-5k network (example 04's 784-512-10 ternary, here
on 128x128 1T1R tiles by default: 61 tiles; batch 200) on the fast engine, with the tiles
read and written by one worker and by ``--workers`` (``CircuitBackend.workers``: reads in
threads, writes in processes), measured in the same run, alternating, on the same network
(each update changes the states, so every update re-linearizes every tile's read, as
training does). The first update (engines built, write voltages solved) is not timed.
Prints reads and writes per update and the ratio.

    .venv/bin/python benchmarks/bench_train_update.py [--updates 2] [--workers 2]
        [--tile 128] [--hidden 512]

Memory: one read engine per tile, ~11 GB for the 61 tiles of 128x128.
"""

from __future__ import annotations

import argparse
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
    circuit, _ = loop._make_backends(cfg)
    rng = np.random.default_rng(1)
    print(f"{net.tiling()['n_tiles']} tiles of {a.tile}x{a.tile}, batch {cfg.batch_size}")

    def update(workers: int) -> tuple[float, float, float]:
        circuit.workers = workers
        c = WriteCounters()
        idx = rng.choice(len(data.y_train), cfg.batch_size, replace=False)
        t0 = time.perf_counter()
        loop._update(cfg, net, circuit, data.x_train[idx], data.y_train[idx], cfg.lr, c)
        return c.read_wall_s, c.write_wall_s, time.perf_counter() - t0

    update(a.workers)                                    # engines, write voltages
    times = {1: [], a.workers: []}
    for _ in range(a.updates):
        for w in (1, a.workers):
            times[w].append(update(w))
    for w, rows in times.items():
        r, wr, tot = np.mean(rows, axis=0)
        print(f"workers {w}: reads {r:6.1f} s  writes {wr:6.1f} s  update {tot:6.1f} s "
              f"(mean of {len(rows)})")
    circuit.close()
    one, many = (np.mean(times[w], axis=0)[2] for w in (1, a.workers))
    print(f"speedup with {a.workers} workers: {one / many:.2f}x")


if __name__ == "__main__":
    main()
