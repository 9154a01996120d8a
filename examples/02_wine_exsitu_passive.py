"""Example 2: ex-situ binary Wine network written to 15x15 passive arrays.

Trains ``n_sets`` binary weight sets in software (BinaryConnect, one seed each), writes each
into fresh 15x15 passive arrays (random prior states) with V/2 (or V/3) pulses, optionally
write-verify, and reports the write fidelity (fraction of cells in the intended state) and
the test accuracy before (software) and after (read through the circuit). Repeats for each
wire resistance and device diameter, to show how both move with them.
    .venv/bin/python examples/02_wine_exsitu_passive.py          # 300 sets, fast engine
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mtjsim.runs import save_figure, write_json  # noqa: E402
from mtjsim.train.datasets import Encoding, load_dataset  # noqa: E402
from mtjsim.train.loop import TrainConfig, exsitu_write  # noqa: E402
from mtjsim.train.network import NetworkSpec  # noqa: E402
from mtjsim.train.rules import Rule, train_binary_software  # noqa: E402


def main(n_sets: int = 300, hidden=(14,), r_wires_ohm=(1.0, 5.0, 20.0),
         diameters_nm=(40.0, 60.0), scheme: str = "v2", verify_rounds: int = 0,
         engine: str = "fast", epochs: int = 40, out: str | Path = "runs/ex02") -> dict:
    out = Path(out)
    data = load_dataset("wine", Encoding.ANALOG, seed=0)
    spec = NetworkSpec(sizes=(13, *hidden, 3), tile_rows=15, tile_cols=15)
    sets = [train_binary_software(spec, data.x_train, data.y_train, epochs=epochs, seed=k)
            for k in range(n_sets)]
    results = []
    print(f"{'r_wire':>7} {'d (nm)':>7} {'fidelity':>9} {'acc sw':>7} {'acc circuit':>12} "
          f"{'failed':>7} {'disturbs':>9}")
    for r_w in r_wires_ohm:
        for d_nm in diameters_nm:
            cfg = TrainConfig(rule=Rule.EXSITU_BINARY, hidden=tuple(hidden), r_wire_ohm=r_w,
                              diameter_m=d_nm * 1e-9, scheme=scheme,
                              verify_rounds=verify_rounds, engine=engine, baseline=False)
            runs = [exsitu_write(cfg, data, w, seed=k) for k, w in enumerate(sets)]
            row = {
                "r_wire_ohm": r_w, "diameter_nm": d_nm, "scheme": scheme,
                "verify_rounds": verify_rounds,
                "fidelity": [r["fidelity"] for r in runs],
                "software_test_acc": [r["software_test_acc"] for r in runs],
                "circuit_test_acc": [r["circuit_test_acc"] for r in runs],
                "failed_writes": [r["counters"]["failed_writes"] for r in runs],
                "disturbs": [r["counters"]["disturbs"] for r in runs],
                "energy_j": [r["counters"]["energy_j"] for r in runs],
            }
            results.append(row)
            print(f"{r_w:7.1f} {d_nm:7.0f} {np.mean(row['fidelity']):9.4f} "
                  f"{np.mean(row['software_test_acc']):7.3f} "
                  f"{np.mean(row['circuit_test_acc']):12.3f} "
                  f"{np.mean(row['failed_writes']):7.2f} {np.mean(row['disturbs']):9.2f}")
    write_json(out / "exsitu.json", {"n_sets": n_sets, "hidden": list(hidden),
                                     "engine": engine, "results": results})
    save_figure(_figure(results, n_sets, scheme), out / "exsitu.png")
    return {"results": results, "out": out}


def _figure(results, n_sets, scheme):
    """Accuracy and fidelity distributions of every (wire, diameter) configuration, and
    their means against wire resistance."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ax = axes[0]
    bins = np.linspace(0.5, 1.0, 26)
    ax.hist(results[0]["software_test_acc"], bins=bins, color="0.6", alpha=0.5,
            label="software (intended)")
    for k, r in enumerate(results):
        ax.hist(r["circuit_test_acc"], bins=bins, histtype="step", color=f"C{k}",
                label=f"circuit, {r['r_wire_ohm']:g} ohm, {r['diameter_nm']:g} nm")
    ax.set_xlabel("test accuracy")
    ax.set_ylabel("weight sets")
    ax.set_title(f"{n_sets} weight sets written with {scheme}", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    lo = min(min(r["fidelity"]) for r in results)
    fbins = np.linspace(min(lo, 0.99) - 1e-3, 1.0 + 1e-3, 30)
    for k, r in enumerate(results):
        ax.hist(r["fidelity"], bins=fbins, histtype="step", color=f"C{k}",
                label=f"{r['r_wire_ohm']:g} ohm, {r['diameter_nm']:g} nm")
    ax.set_yscale("log")
    ax.set_xlabel("write fidelity (cells in the intended state)")
    ax.set_ylabel("weight sets")
    ax.legend(fontsize=7)
    ax = axes[2]
    for d in sorted({r["diameter_nm"] for r in results}):
        rs = [r for r in results if r["diameter_nm"] == d]
        x = [r["r_wire_ohm"] for r in rs]
        ax.plot(x, [np.mean(r["fidelity"]) for r in rs], "o-", label=f"fidelity, {d:g} nm")
        ax.plot(x, [np.mean(r["circuit_test_acc"]) for r in rs], "s--",
                label=f"accuracy, {d:g} nm")
    ax.set_xscale("log")
    ax.set_xlabel("wire resistance per segment (ohm)")
    ax.set_ylabel("mean over weight sets")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
