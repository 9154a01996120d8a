"""Example 3: stochastic binary in-situ training of Wine, with and without access transistors.

The same 13-14-3 binary network, rule and data on 15x15 passive arrays (V/2 writes,
half-select disturbs, sneak paths) and on 15x15 1T1R arrays; each run trains side by side
with its ideal-write software baseline. Run folders under ``out``.
    .venv/bin/python examples/03_stochastic_binary_insitu.py             # fast engine
    .venv/bin/python examples/03_stochastic_binary_insitu.py ngspice     # the reference
"""

from __future__ import annotations

import sys
from pathlib import Path

from mtjsim.train.loop import TrainConfig, train


def main(epochs: int = 10, arrays=("passive", "1t1r"), hidden=(14,), batch_size: int = 42,
         r_wire_ohm: float = 2.0, engine: str = "fast", seed: int = 0,
         out: str | Path = "runs/ex03", progress: bool = True) -> dict:
    out = Path(out)
    summaries = {}
    for arr in arrays:
        cfg = TrainConfig(dataset="wine", rule="stochastic-binary", array=arr,
                          hidden=tuple(hidden), epochs=epochs, batch_size=batch_size,
                          r_wire_ohm=r_wire_ohm, engine=engine, seed=seed)
        res = train(cfg, out / arr, progress=progress)
        summaries[arr] = res.summary
    print(f"{'array':>8} {'test acc':>9} {'baseline':>9} {'failed':>7} {'disturbs':>9} "
          f"{'energy (pJ)':>12} {'wall (s)':>9}")
    for arr, s in summaries.items():
        t = s["totals"]
        print(f"{arr:>8} {s['final']['test_acc']:9.3f} {s['final']['baseline_test_acc']:9.3f} "
              f"{t['failed_writes']:7.0f} {t['disturbs']:9.0f} {t['energy_j'] * 1e12:12.4g} "
              f"{t['wall_s']:9.1f}")
    return summaries


if __name__ == "__main__":
    main(engine=sys.argv[1] if len(sys.argv) > 1 else "fast")
