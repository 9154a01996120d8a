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
