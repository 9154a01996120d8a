"""Where the time of ngspice-in-the-loop training goes: one row per write program of the
default Wine setup (stochastic binary, 13-14-3, 15x15 passive tiles, V/2, r_wire 2 ohm,
seed 0), then totals per epoch.

Per program: tile, direction, level, target cells, pulses, engine calls (transients: one per
pulse when pulse by pulse), pulse widths, cells carrying the switching model per transient,
time points, engine seconds, wall seconds, cells switched, disturbs. ``--compare`` replays
every program from the same start states in ONE transient (the old way) and adds its
dynamic cells, time points and seconds (this doubles the run time).

    .venv/bin/python benchmarks/bench_train_ngspice.py                # 1 epoch, pulse by pulse
    .venv/bin/python benchmarks/bench_train_ngspice.py --compare      # and one transient each
    .venv/bin/python benchmarks/bench_train_ngspice.py --one-transient --epochs 1
    .venv/bin/python benchmarks/bench_train_ngspice.py --engine fast --epochs 10
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import time

import numpy as np

from mtjsim.circuit.crossbar import Crossbar
from mtjsim.engines import Engine
from mtjsim.train.backends import CircuitBackend, WriteCounters, run_program
from mtjsim.train.datasets import load_dataset
from mtjsim.train.loop import TrainConfig, _update, build_network, evaluate, write_settings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--engine", default="ngspice", choices=[e.value for e in Engine])
    ap.add_argument("--one-transient", action="store_true",
                    help="run each program in one transient (pulse_by_pulse off)")
    ap.add_argument("--compare", action="store_true",
                    help="also replay every program in one transient (ngspice)")
    ap.add_argument("--r-wire-ohm", type=float, default=2.0)
    ap.add_argument("--levels", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-eval", action="store_true", help="skip the per-epoch test accuracy")
    a = ap.parse_args()

    cfg = TrainConfig(epochs=a.epochs, engine=Engine(a.engine), r_wire_ohm=a.r_wire_ohm,
                      levels=a.levels, seed=a.seed, baseline=False)
    data = load_dataset(cfg.dataset, cfg.input_encoding, seed=cfg.seed)
    net = build_network(cfg, data)
    net.set_weights(net.random_weights(np.random.default_rng(cfg.seed)))
    settings = dataclasses.replace(write_settings(cfg), pulse_by_pulse=not a.one_transient)
    backend = CircuitBackend(cfg.seed + 1, engine=cfg.engine, v_read_v=cfg.v_read_v,
                             settings=settings, profile=True)
    cells = {t.name: t.xbar.cells for layer in net.layers for t in layer.tiles}
    batch_rng = np.random.default_rng(cfg.seed + 3)

    head = (f"{'#':>4} {'ep':>2} {'tile':>8} {'dir':>5} {'lv':>2} {'tgt':>4} {'pulses':>6} "
            f"{'calls':>5} {'width ns':>11} {'dyn':>5} {'points':>6} {'pts/pulse':>9} "
            f"{'engine s':>8} {'wall s':>7} {'sw':>3} {'dist':>4}")
    if a.compare:
        head += f" | {'1-tr dyn':>8} {'1-tr pts':>8} {'1-tr s':>7} {'1-tr sw':>7}"
    print(head, flush=True)
    epochs = []
    n_done = 0
    for epoch in range(a.epochs):
        t0 = time.perf_counter()
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        first = len(backend.profile)
        lr = cfg.lr * cfg.lr_decay ** epoch
        c = WriteCounters()
        order = batch_rng.permutation(len(data.y_train))
        compare_s = 0.0
        for b in range(0, len(order), cfg.batch_size):
            idx = order[b:b + cfg.batch_size]
            _update(cfg, net, backend, data.x_train[idx], data.y_train[idx], lr, c)
            for k, p in enumerate(backend.profile[n_done:], start=n_done + 1):
                line = (f"{k:>4} {epoch + 1:>2} {p['tile']:>8} {p['direction']:>5} "
                        f"{p['level']:>2} {p['targets']:>4} {p['pulses']:>6} {p['writes']:>5} "
                        f"{p['width_min_ns']:>5.1f}-{p['width_max_ns']:<5.1f} "
                        f"{p['dynamic_mean']:>5.0f} {p['time_points']:>6} "
                        f"{p['time_points'] / p['pulses']:>9.0f} {p['engine_s']:>8.2f} "
                        f"{p['wall_s']:>7.2f} {p['switched']:>3} {p['disturbs']:>4}")
                if a.compare:
                    tc = time.perf_counter()
                    spec = net.layers[0].tiles[0].xbar.spec
                    xb = Crossbar(spec, p["states_before"], cells=cells[p["tile"]])
                    o = run_program(xb, p["program"], p["seed"], Engine.NGSPICE, False)
                    compare_s += time.perf_counter() - tc
                    line += (f" | {o.dynamic_mean:>8.0f} {o.time_points:>8} {o.engine_s:>7.2f} "
                             f"{int((o.states_after != p['states_before']).sum()):>7}")
                print(line, flush=True)
            n_done = len(backend.profile)
        train_s = time.perf_counter() - t0 - compare_s
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        child_cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
        acc = float("nan") if a.no_eval else evaluate(net, backend, data.x_test, data.y_test, c)
        rows = backend.profile[first:]
        epochs.append({"epoch": epoch + 1, "programs": c.programs, "pulses": c.pulses,
                       "points": sum(p["time_points"] for p in rows),
                       "engine_s": sum(p["engine_s"] for p in rows),
                       "write_s": c.write_wall_s, "read_s": c.read_wall_s,
                       "train_s": train_s, "child_cpu_s": child_cpu, "test_acc": acc})

    print()
    print(f"{'epoch':>5} {'programs':>8} {'pulses':>6} {'points':>7} {'pts/pulse':>9} "
          f"{'engine s':>8} {'write s':>8} {'read s':>7} {'epoch s':>8} {'ngspice cpu s':>13} "
          f"{'test acc':>8}")
    for e in epochs:
        print(f"{e['epoch']:>5} {e['programs']:>8} {e['pulses']:>6} {e['points']:>7} "
              f"{e['points'] / max(e['pulses'], 1):>9.0f} {e['engine_s']:>8.1f} "
              f"{e['write_s']:>8.1f} {e['read_s']:>7.1f} {e['train_s']:>8.1f} "
              f"{e['child_cpu_s']:>13.1f} {e['test_acc']:>8.3f}")
    print(f"mode: {'one transient per program' if a.one_transient else 'pulse by pulse'}, "
          f"engine {a.engine}; 'epoch s': updates only (no --compare replays, no test read); "
          f"'ngspice cpu s': CPU time of the ngspice subprocesses (includes --compare)")


if __name__ == "__main__":
    main()
