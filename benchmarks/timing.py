"""Shared by the benchmark scripts (run as ``python benchmarks/<script>.py``, so this folder
is on the import path)."""

from __future__ import annotations

import time

import numpy as np


def best_of(fn, repeat: int = 5):
    """(best wall time in seconds over ``repeat`` calls, the last call's result)."""
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def mnist_network(tile: int = 32, hidden: int = 512):
    """Example 04's large configuration (GXNOR MNIST-5k, 784-hidden-10 ternary on 1T1R tiles
    of tile x tile, batches of 200, lr 0.015; the example now trains 784-128-10 with batches
    of 400: a quarter of the tiles, half the updates) without its baseline, with its data
    and its network at seeded random weights: (cfg, data, net)."""
    from mtjsim.train import loop
    cfg = loop.TrainConfig(dataset="mnist5k", rule="gxnor", array="1t1r", tile_rows=tile,
                           tile_cols=tile, hidden=(hidden,), batch_size=200, lr=0.015,
                           ste_window=0.15, ste_center="thresholds", encoding="ternary",
                           standardize_images=True, read_tol=2e-2, baseline=False)
    data = loop.load_data(cfg)
    net = loop.build_network(cfg, data)
    net.set_weights(net.random_weights(np.random.default_rng(0)))
    return cfg, data, net
