"""Plots people would rather look at than read. matplotlib with the Agg backend (no screen)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def read_figure(result, title: str):
    """States, solved cell resistances, output currents per vector and (transient) waveforms."""
    has_wave = result.waveforms is not None
    fig, axes = plt.subplots(1, 4 if has_wave else 3, figsize=(18 if has_wave else 14, 4))
    ax = axes[0]
    im = ax.imshow(result.states, cmap="coolwarm", vmin=0, vmax=1)
    ax.set_title("state (0 = P, 1 = AP)")
    ax.set_xlabel("column (bit line)")
    ax.set_ylabel("row")
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax = axes[1]
    im = ax.imshow(result.r_cell_ohm / 1e3, cmap="viridis")
    ax.set_title("MTJ secant resistance at solved bias (kohm)")
    ax.set_xlabel("column")
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax = axes[2]
    cols = np.arange(result.i_out_a.shape[1])
    for b, row in enumerate(result.i_out_a[:8]):
        ax.plot(cols, row * 1e6, marker="o", ms=3, label=f"vector {b}")
    ax.set_xlabel("column")
    ax.set_ylabel("bit-line current into sense (uA)")
    ax.set_title("read currents")
    ax.legend(fontsize=7)
    if has_wave:
        w = result.waveforms
        ax = axes[3]
        t_ns = w["time_s"] * 1e9
        for j in range(min(4, w["i_out_a"].shape[0])):
            ax.plot(t_ns, w["i_out_a"][j] * 1e6, label=f"I col {j}")
        ax.set_xlabel("time (ns)")
        ax.set_ylabel("current (uA)")
        ax2 = ax.twinx()
        ax2.plot(t_ns, w["v_row_v"][0], "k--", lw=0.8, label="V row 0")
        ax2.set_ylabel("row 0 input (V)")
        ax.set_title("transient read waveforms")
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _mark(ax, mask, color, marker="s"):
    ii, jj = np.nonzero(mask)
    if marker == "x":  # an unfilled marker takes its colour from "color"
        ax.scatter(jj, ii, color=color, marker=marker, s=60, linewidths=1.3)
    else:
        ax.scatter(jj, ii, facecolors="none", edgecolors=color, marker=marker, s=60,
                   linewidths=1.3)


def write_figure(result, title: str):
    """States before/after (targets boxed, disturbs circled), peak current, and waveforms of
    one selected cell and, when there is one, a disturbed cell."""
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.2))
    for ax, st, name in ((axes[0], result.states_before, "before"),
                         (axes[1], result.states_after, "after")):
        ax.imshow(st, cmap="coolwarm", vmin=0, vmax=1)
        _mark(ax, result.targets, "lime")
        ax.set_title(f"state {name} (blue P, red AP)")
        ax.set_xlabel("column")
    _mark(axes[1], result.disturbed, "yellow", "o")
    _mark(axes[1], result.write_errors, "black", "x")
    axes[0].set_ylabel("row  (green: targets)")
    axes[1].set_ylabel("yellow o: disturb, black x: write error")
    im = axes[2].imshow(result.i_cell_peak_a * 1e6, cmap="magma")
    axes[2].set_title("peak |I| per cell (uA)")
    fig.colorbar(im, ax=axes[2], shrink=0.8)
    w = result.waveforms
    ax = axes[3]
    t_ns = w["time_s"] * 1e9
    picks = [("selected", tuple(np.argwhere(result.targets)[0]), "C0")]
    if result.disturbed.any():
        picks.append(("disturbed", tuple(np.argwhere(result.disturbed)[0]), "C3"))
    else:  # the half-selected cell with the largest current
        half = np.where(result.targets, 0, result.i_cell_peak_a)
        picks.append(("most-stressed unselected", np.unravel_index(half.argmax(), half.shape), "C2"))
    ax2 = ax.twinx()
    for label, (i, j), color in picks:
        ax.plot(t_ns, w["i_cell_a"][i, j] * 1e6, color=color, label=f"I {label} ({i},{j})")
        ax2.plot(t_ns, w["state"][i, j], color=color, ls="--", lw=1)
    ax.set_xlabel("time (ns)")
    ax.set_ylabel("cell current (uA)")
    ax2.set_ylabel("state (dashed; 0 = P, 1 = AP)")
    ax2.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title("waveforms")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def write_stats_figure(stats, title: str):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    im = axes[0].imshow(stats.p_switch, cmap="viridis", vmin=0, vmax=1)
    _mark(axes[0], stats.targets, "red")
    axes[0].set_title(f"switching probability ({stats.n_seeds} seeds; red: targets)")
    fig.colorbar(im, ax=axes[0], shrink=0.8)
    im = axes[1].imshow(stats.p_switch_high - stats.p_switch_low, cmap="Greys")
    axes[1].set_title(f"width of the {stats.confidence:.0%} Wilson interval")
    fig.colorbar(im, ax=axes[1], shrink=0.8)
    im = axes[2].imshow(stats.i_cell_peak_a * 1e6, cmap="magma")
    axes[2].set_title("mean peak |I| per cell (uA)")
    fig.colorbar(im, ax=axes[2], shrink=0.8)
    for ax in axes:
        ax.set_xlabel("column")
        ax.set_ylabel("row")
    fig.suptitle(f"{title}\nwrite error rate {stats.write_error_rate:.3g}, "
                 f"disturb rate {stats.disturb_rate:.3g}")
    fig.tight_layout()
    return fig


def energy_figure(reports):
    """Stacked bars of the energy breakdown per operation, with energy/op and TOPS/W.
    Log scales: a feedforward op costs fJ, an update op pJ."""
    fig, axes = plt.subplots(1, 2, figsize=(5 + 2.2 * len(reports), 4.4))
    labels = [f"{r.operation}\n{r.conditions.get('array', '')} {r.conditions.get('scheme', '')}"
              .strip() for r in reports]
    x = np.arange(len(reports))
    bottom = np.zeros(len(reports))
    colors = {"array_j": "C0", "wires_j": "C1", "access_j": "C2", "periphery_j": "C3"}
    for key, color in colors.items():
        vals = np.array([r.breakdown[key] / r.ops for r in reports]) * 1e15
        axes[0].bar(x, vals, bottom=bottom, color=color, label=key[:-2])
        bottom += vals
    axes[0].set_yscale("log")
    first = [r.breakdown["array_j"] / r.ops * 1e15 for r in reports if r.breakdown["array_j"] > 0]
    if first:  # the lowest segment starts at the axis: leave it room on a log scale
        axes[0].set_ylim(bottom=0.1 * min(first))
    axes[0].set_ylabel("dissipated energy per operation (fJ/op, log)")
    axes[0].set_title("breakdown per op (stacked)")
    axes[0].legend(fontsize=8)
    axes[1].bar(x, [r.tops_per_w for r in reports], color="C4")
    for k, r in enumerate(reports):
        axes[1].text(k, r.tops_per_w, f"{r.tops_per_w:.3g} TOPS/W\n"
                     f"{r.energy_per_op_j * 1e15:.3g} fJ/op", ha="center", va="bottom", fontsize=8)
    axes[1].set_yscale("log")
    axes[1].set_ylabel("TOPS/W (log)")
    axes[1].set_title("efficiency")
    axes[1].margins(y=0.3)
    for ax in axes:
        ax.set_xticks(x, labels, fontsize=8)
    fig.tight_layout()
    return fig
