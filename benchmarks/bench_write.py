"""Writes on ngspice and the fast (quasi-static) engine, measured in the same run.

1. ONE write pulse on passive (V/2, V/3) and 1T1R arrays: ngspice wall time and time points,
   the fast engine's time, the ratio, and whether both give the same switched cells. Single
   target in the middle, all cells P, 10 ns, r_wire 1 ohm.
2. One stochastic write-update STEP of a 1T1R tile (fast engine only; ngspice would take
   hours): what the training loop issues per tile and mini-batch, a column-parallel SET
   program and a RESET program (one pulse per column with targets, per-column widths that
   realize the requested probabilities, planned by mtjsim.train.programs), 10 % of the cells
   targeted with probabilities 0.2-0.8, half the cells AP, r_wire 1 ohm. The fast engine
   runs these as training does (train.backends.run_program: one seed per pulse, merged into
   one batched write, mtjsim.engines.fast_write_columns, no waveforms); the step is timed
   after a first one that solves and caches the write voltages, ``--repeat`` times (the
   same step each time: the range tells the machine's noise). For 64x64 and smaller the
   same program also runs pulse after pulse on the full write network (same thresholds).

    .venv/bin/python benchmarks/bench_write.py [--sizes 16 32 64] [--no-fast]
        [--step-sizes 32 64 128] [--no-pulse] [--repeat 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mtjsim.circuit.crossbar import ArrayKind, ArraySpec, Crossbar
from mtjsim.engines import Engine
from mtjsim.engines.fast_write import quasi_static_write
from mtjsim.ops.write import Direction, PulseProgram, WriteScheme, write


def warm_up() -> None:
    """Import and first-call costs (energy report, scipy) out of the timings."""
    spec = ArraySpec(kind=ArrayKind.ONE_T_ONE_R, rows=4, cols=4)
    prog = PulseProgram.single(spec.shape, 1, 1, WriteScheme.ONE_T_ONE_R, Direction.SET)
    write(Crossbar(spec, np.zeros(spec.shape, dtype=np.int8)), prog, engine=Engine.FAST)


def single_pulse(sizes, fast: bool) -> None:
    print(f"{'array':>14} {'scheme':>6} {'dynamic MTJs':>12} {'time points':>11} "
          f"{'ngspice s':>10} {'fast s':>8} {'ratio':>7} {'same outcome':>12}")
    for kind, scheme, v in ((ArrayKind.PASSIVE, WriteScheme.V_HALF, 0.5),
                            (ArrayKind.PASSIVE, WriteScheme.V_THIRD, 0.5),
                            (ArrayKind.ONE_T_ONE_R, WriteScheme.ONE_T_ONE_R, 1.2)):
        for n in sizes:
            spec = ArraySpec(kind=kind, rows=n, cols=n, r_wire_ohm=1.0)
            xb = Crossbar(spec, np.zeros(spec.shape, dtype=np.int8))
            prog = PulseProgram.single(spec.shape, n // 2, n // 2, scheme, Direction.SET,
                                       v_write_v=v, pulse_width_s=10e-9)
            r = write(xb, prog, seed=1)
            line = (f"{kind.value + f' {n}x{n}':>14} {scheme.value:>6} "
                    f"{int(r.dynamic.sum()):>12} {r.n_time_points:>11} "
                    f"{r.timings_s['ngspice_s']:>10.2f}")
            if fast:
                t0 = time.perf_counter()
                f = write(xb, prog, seed=1, engine=Engine.FAST)
                fast_s = time.perf_counter() - t0
                same = bool((r.switched == f.switched).all())
                line += (f" {fast_s:>8.3f} {r.timings_s['ngspice_s'] / fast_s:>7.0f} "
                         f"{str(same):>12}")
            print(line, flush=True)


def update_step(sizes, repeat: int = 1) -> None:
    from mtjsim.train.backends import _merged_thresholds, run_program
    from mtjsim.train.programs import WriteSettings, build_program
    print(f"\n{'1T1R tile':>10} {'direction':>9} {'targets':>7} {'pulses':>6} "
          f"{'plan s':>7} {'write s':>8} {'switched':>8} "
          f"{'pulse-by-pulse s':>16} {'same':>5}")
    for n in sizes:
        spec = ArraySpec(kind=ArrayKind.ONE_T_ONE_R, rows=n, cols=n, r_wire_ohm=1.0)
        # the write voltages are solved once per array and direction, then cached: a first
        # step (not timed) stands for the steps of training before this one
        steps = []
        for rep in range(repeat + 1):
            timed = rep == 1             # the rows of the programs: the first timed step
            xb = Crossbar.random(spec, seed=1)
            rng = np.random.default_rng(0)
            total = 0.0
            for direction in (Direction.SET, Direction.RESET):
                start = 1 - direction.target_state
                targets = (rng.random(spec.shape) < 0.1) & (xb.states == start)
                p_col = rng.uniform(0.2, 0.8, n)
                t0 = time.perf_counter()
                planned = build_program(xb, direction, targets, p_col, WriteSettings())
                t1 = time.perf_counter()
                before = Crossbar(spec, xb.states.copy(), cells=xb.cells)
                # as training runs it: one seed per pulse, merged into one batched write
                out = run_program(xb, planned.program, 2, Engine.FAST)
                xb.states = out.states_after.copy()
                t2 = time.perf_counter()
                total += t2 - t0
                seq = ("-", "-")
                if timed and n <= 64:        # the same program on the full network
                    th = _merged_thresholds(before, planned.program,
                                            _pulse_seeds(2, len(planned.program.pulses())))
                    t3 = time.perf_counter()
                    s = quasi_static_write(before, planned.program, 2, batched=False,
                                           thresholds=th, waveforms=False)
                    seq = (f"{time.perf_counter() - t3:.3f}",
                           str(bool((s.states_after == out.states_after).all())))
                if timed:
                    print(f"{f'{n}x{n}':>10} {direction.value:>9} {int(targets.sum()):>7} "
                          f"{len(planned.program.pulses()):>6} {t1 - t0:>7.3f} {t2 - t1:>8.3f} "
                          f"{int((out.states_after != before.states).sum()):>8} "
                          f"{seq[0]:>16} {seq[1]:>5}", flush=True)
            if rep:
                steps.append(total)
        spread = f"; {len(steps)} steps: {min(steps):.3f} to {max(steps):.3f}" if repeat > 1 else ""
        print(f"{f'{n}x{n}':>10} {'step':>9} {'':>7} {'':>6} {'':>7} {steps[0]:>8.3f}  "
              f"(plan + write, both programs{spread})")


def _pulse_seeds(seed, n):
    extra = np.random.default_rng(seed).integers(0, 2 ** 31 - 1, size=n - 1)
    return [seed] + [int(s) for s in extra]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--step-sizes", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--no-fast", action="store_true", help="ngspice only (single pulses)")
    ap.add_argument("--no-pulse", action="store_true", help="skip the single-pulse table")
    ap.add_argument("--repeat", type=int, default=1, help="timed update steps per size")
    a = ap.parse_args()
    warm_up()
    if not a.no_pulse:
        single_pulse(a.sizes, not a.no_fast)
    if not a.no_fast:
        update_step(a.step_sizes, a.repeat)


if __name__ == "__main__":
    main()
