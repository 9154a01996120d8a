"""Example 5: is the circuit's accuracy loss larger than the training's own noise?

Wine, stochastic binary 13-14-3 on 15x15 arrays (``mtjsim train`` defaults: passive, V/2,
1 ohm wire segments), over many seeds. Per seed, three runs with the same data split,
initial weights and mini-batches:

* the circuit (fast engine unless ``engine`` says otherwise),
* its ideal-write baseline (exact reads, every requested switch with exactly its
  probability),
* a replica of that baseline that differs from it only in the random draws of the
  stochastic writes (``train(..., writes=IdealBackend(other seed))``).

Wine's test set has 53 samples (one is 1.9 points) and a run has 30 updates, so the
replica-baseline gap is the noise floor of any run-by-run comparison: a circuit whose
writes and reads were perfect would still differ from its baseline by about that much. The
question the seeds answer is whether the circuit-baseline gap is larger, on the mean (with
its standard error) and in spread.

Writes ``seeds.csv`` (one row per seed), ``summary.json`` and ``gaps.png`` under ``out``.
    .venv/bin/python examples/05_wine_seeds.py            # 32 seeds, ~25 s each here
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mtjsim.runs import save_figure, write_json  # noqa: E402
from mtjsim.train.backends import IdealBackend  # noqa: E402
from mtjsim.train.loop import TrainConfig, train  # noqa: E402

WITHIN_POINTS = 3.0          # the per-run target for Wine


def replica_seed(seed: int) -> int:
    """A switching-draw stream for the replica, independent of the baseline's (seed + 2)."""
    return int(np.random.SeedSequence([seed, 5]).generate_state(1)[0])


def main(seeds: int = 32, array: str = "passive", r_wire_ohm: float = 1.0, epochs: int = 10,
         engine: str = "fast", out: str | Path = "runs/ex05", progress: bool = True) -> dict:
    out = Path(out)
    rows = []
    it = range(seeds)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc="wine seeds")
    for seed in it:
        cfg = TrainConfig(dataset="wine", rule="stochastic-binary", array=array,
                          r_wire_ohm=r_wire_ohm, epochs=epochs, engine=engine, seed=seed)
        run = train(cfg, None, progress=False)
        replica = train(dataclasses.replace(cfg, baseline=False), None, progress=False,
                        writes=IdealBackend(replica_seed(seed), levels=cfg.levels))
        last = run.rows[-1]
        tot = run.summary["totals"]
        rows.append({
            "seed": seed,
            "circuit_test_acc": last["test_acc"],
            "baseline_test_acc": last["baseline_test_acc"],
            "replica_test_acc": replica.rows[-1]["test_acc"],
            "realized_switches": tot["realized_switches"],
            "expected_switches": tot["expected_switches"],
            "failed_writes": tot["failed_writes"],
            "disturbs": tot["disturbs"],
            "wall_s": tot["wall_s"],
        })
    summary = summarize(rows)
    summary.update({"dataset": "wine", "rule": "stochastic-binary", "array": array,
                    "r_wire_ohm": r_wire_ohm, "epochs": epochs, "engine": engine})
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "seeds.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    write_json(out / "summary.json", summary)
    save_figure(gap_figure(rows, summary), out / "gaps.png")
    c, r = summary["circuit_minus_baseline"], summary["replica_minus_baseline"]
    print(f"{len(rows)} seeds, test accuracy (mean): circuit {summary['circuit_mean']:.1f} %, "
          f"baseline {summary['baseline_mean']:.1f} %, replica {summary['replica_mean']:.1f} %")
    for name, g in (("circuit - baseline", c), ("replica - baseline", r)):
        print(f"  {name}: mean {g['mean']:+.2f} +- {g['se']:.2f} points (SE), SD {g['sd']:.2f},"
              f" within {WITHIN_POINTS:g} points on {g['within']} of {len(rows)}")
    return summary


def summarize(rows: list[dict]) -> dict:
    """Means, gaps (percentage points) with their standard errors and spread, and how many
    runs are within ``WITHIN_POINTS``."""
    acc = {k: 100 * np.array([r[f"{k}_test_acc"] for r in rows])
           for k in ("circuit", "baseline", "replica")}
    n = len(rows)

    def gap(a, b):
        g = a - b
        sd = float(g.std(ddof=1)) if n > 1 else float("nan")
        return {"mean": float(g.mean()), "sd": sd, "se": sd / np.sqrt(n),
                "within": int((np.abs(g) <= WITHIN_POINTS + 1e-9).sum()),
                "min": float(g.min()), "max": float(g.max())}

    return {
        "seeds": n,
        **{f"{k}_mean": float(v.mean()) for k, v in acc.items()},
        "circuit_at_least_90": int((acc["circuit"] >= 90.0 - 1e-9).sum()),
        "circuit_minus_baseline": gap(acc["circuit"], acc["baseline"]),
        "replica_minus_baseline": gap(acc["replica"], acc["baseline"]),
        "realized_switches": int(sum(r["realized_switches"] for r in rows)),
        "expected_switches": float(sum(r["expected_switches"] for r in rows)),
        "failed_writes": int(sum(r["failed_writes"] for r in rows)),
        "disturbs": int(sum(r["disturbs"] for r in rows)),
    }


def gap_figure(rows: list[dict], summary: dict):
    base = 100 * np.array([r["baseline_test_acc"] for r in rows])
    circ = 100 * np.array([r["circuit_test_acc"] for r in rows])
    rep = 100 * np.array([r["replica_test_acc"] for r in rows])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    lo = min(base.min(), circ.min(), rep.min()) - 2
    line = np.array([lo, 101])
    ax1.fill_between(line, line - WITHIN_POINTS, line + WITHIN_POINTS, color="0.9",
                     label=f"within {WITHIN_POINTS:g} points")
    ax1.plot(line, line, color="0.5", lw=0.8)
    jitter = np.random.default_rng(0).uniform(-0.3, 0.3, len(rows))   # ties on a 1.9-pt grid
    ax1.scatter(base + jitter, circ, s=18, label="circuit", color="C0")
    ax1.scatter(base - jitter, rep, s=18, marker="x", label="ideal replica", color="C1")
    ax1.set(xlim=(lo, 101), ylim=(lo, 101), xlabel="ideal-write baseline, test accuracy (%)",
            ylabel="test accuracy (%)", title="per seed")
    ax1.legend(loc="upper left", fontsize=8)
    gaps = [circ - base, rep - base]
    edges = np.arange(-20, 21, 1.887) - 0.94          # one test sample of 53 per bin
    ax2.hist(gaps, bins=edges, label=["circuit - baseline", "replica - baseline"],
             color=["C0", "C1"])
    ax2.axvspan(-WITHIN_POINTS, WITHIN_POINTS, color="0.9", zorder=0)
    c, r = summary["circuit_minus_baseline"], summary["replica_minus_baseline"]
    ax2.set(xlabel="gap to the baseline (points)", ylabel="seeds",
            title=f"mean gap: circuit {c['mean']:+.1f} +- {c['se']:.1f}, "
                  f"replica {r['mean']:+.1f} +- {r['se']:.1f}")
    ax2.legend(fontsize=8)
    fig.suptitle(f"Wine, stochastic binary, {summary['seeds']} seeds")
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
