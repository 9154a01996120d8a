"""Run folder of a training run: epochs.csv (per-epoch table), summary.json, final_states.npz,
accuracy.png (circuit against the ideal-write baseline), writes.png (write statistics)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from mtjsim.runs import save_figure, write_json, write_npz  # noqa: E402


def write_run(result) -> list[Path]:
    out = Path(result.out)
    rows = result.rows
    paths = [write_json(out / "summary.json", result.summary)]
    arrays = {f"circuit/{k}": v for k, v in result.network.states().items()}
    arrays.update({f"circuit_weights/layer{k}": w for k, w in
                   enumerate(result.network.weights())})
    if result.baseline is not None:
        arrays.update({f"baseline_weights/layer{k}": w for k, w in
                       enumerate(result.baseline.weights())})
    if "weights" in result.extras:
        arrays.update({f"intended_weights/layer{k}": np.asarray(w) for k, w in
                       enumerate(result.extras["weights"])})
    paths.append(write_npz(out / "final_states.npz", **arrays))
    if rows:
        paths.append(save_figure(accuracy_figure(rows, result.config), out / "accuracy.png"))
        paths.append(save_figure(writes_figure(rows, result.config), out / "writes.png"))
    return paths


def _title(cfg) -> str:
    return (f"{cfg.dataset.value}, {cfg.rule.value}, {cfg.array.value} "
            f"{cfg.tile_rows}x{cfg.tile_cols} tiles, r_wire {cfg.r_wire_ohm:g} ohm, "
            f"engine {cfg.engine.value}, seed {cfg.seed}")


def _epoch_axis(ax) -> None:
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # no ticks at epoch 1.5


def accuracy_figure(rows, cfg):
    ep = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(ep, [r["test_acc"] for r in rows], "o-", color="C0", label="test, circuit writes")
    ax.plot(ep, [r["train_acc"] for r in rows], "o--", color="C0", alpha=0.5,
            label="train, circuit writes")
    if rows[0].get("baseline_test_acc") not in (None, ""):
        ax.plot(ep, [r["baseline_test_acc"] for r in rows], "s-", color="C1",
                label="test, ideal writes (software)")
        ax.plot(ep, [r["baseline_train_acc"] for r in rows], "s--", color="C1", alpha=0.5,
                label="train, ideal writes")
    _epoch_axis(ax)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(_title(cfg), fontsize=8)
    return fig


def writes_figure(rows, cfg):
    ep = np.array([r["epoch"] for r in rows])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    for key, label in (("intended_flips", "intended weight flips (expected)"),
                       ("realized_flips", "realized weight flips"),
                       ("failed_writes", "failed writes (deterministic steps)"),
                       ("disturbs", "half-select disturbs")):
        ax.plot(ep, [float(r.get(key) or 0) for r in rows], "o-", ms=3, label=label)
    if rows[0].get("baseline_realized_flips") not in (None, ""):
        ax.plot(ep, [float(r["baseline_realized_flips"]) for r in rows], "k:",
                label="realized flips, ideal writes")
    _epoch_axis(ax)
    ax.set_ylabel("count per epoch")
    ax.set_yscale("symlog", linthresh=1)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax = axes[1]
    ax.bar(ep, [float(r.get("energy_j") or 0) * 1e12 for r in rows], color="C2")
    _epoch_axis(ax)
    ax.set_ylabel("write energy per epoch (pJ)")
    ax.grid(alpha=0.3)
    fig.suptitle(_title(cfg), fontsize=8)
    fig.tight_layout()
    return fig
