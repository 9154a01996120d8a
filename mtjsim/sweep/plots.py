"""Plots of a sweep table, chosen from its swept dimensions (parameters with more than one
value), drawn from ``sweep.csv`` alone so ``mtjsim report DIR`` can redraw them:

* one dimension: ``lines.png``, every headline metric against it;
* two dimensions: ``heatmaps.png``, one heatmap per metric (first dimension across, second
  up), and ``lines.png`` (against the first dimension, one line per value of the second);
* more: ``lines.png`` against the first dimension, one line per combination of the others;
* ``energy_vs_diameter.png`` when the device diameter is swept and an energy was computed.

Failed and pending points are gaps in the lines and grey cells in the heatmaps.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import EngFormatter  # noqa: E402

from mtjsim.runs import save_figure  # noqa: E402
from mtjsim.sweep import store  # noqa: E402

# (column, title) of the metrics worth a panel, in order; drawn when the table has them.
HEADLINE = (
    ("read_margin_far", "read margin, far cell (I_P - I_AP) / I_P"),
    ("read_margin_near", "read margin, near cell"),
    ("i_read_p50_a", "column current, median (band: 5-95 %)"),
    ("read_decision_error_rate", "read decision error rate"),
    ("write_error_rate", "write error rate"),
    ("disturb_rate", "disturb rate (all non-target cells)"),
    ("disturb_rate_half_selected", "disturb rate (half-selected cells)"),
    ("ff_energy_per_op_j", "feedforward energy per op"),
    ("update_energy_per_op_j", "update energy per op"),
    ("ff_tops_per_w", "feedforward TOPS/W"),
    ("update_tops_per_w", "update TOPS/W"),
    ("r_p_spice_ohm", "R_P (engine, 1x1)"),
    ("train_accuracy", "training accuracy"),
)
MAX_CURVES = 12
_UNITS = (("_ohm_m2", "ohm m²"), ("_ohm", "Ω"), ("_m", "m"), ("_v", "V"), ("_s", "s"),
          ("_f", "F"), ("_a", "A"), ("_j", "J"), ("_k", "K"))


def unit_of(name: str) -> str:
    for suffix, unit in _UNITS:
        if name.endswith(suffix):
            return unit
    return ""


def _num(s: str) -> float:
    try:
        return float(s)
    except (TypeError, ValueError):
        return math.nan


class Table:
    """A sweep table read back: parameter and metric columns, numbers where they parse."""

    def __init__(self, path: Path):
        header, rows = store.read_table(path)
        self.path = Path(path)
        i_seed, i_err = header.index("seed"), header.index("error")
        self.params = header[3:i_seed]
        self.metrics = header[i_seed + 1:i_err]
        self.rows = rows
        self.ok = np.array([r["status"] == "ok" for r in rows], dtype=bool)

    def values(self, param: str) -> list:
        """Distinct values of a parameter in first-seen order (numbers sorted)."""
        raw = list(dict.fromkeys(r[param] for r in self.rows))
        nums = [_num(v) for v in raw]
        if all(not math.isnan(x) for x in nums):
            return sorted(set(nums))
        return raw

    def numeric(self, param: str) -> bool:
        return all(not math.isnan(_num(r[param])) for r in self.rows)

    def column(self, name: str) -> np.ndarray:
        return np.array([_num(r[name]) if ok else math.nan
                         for r, ok in zip(self.rows, self.ok)], dtype=float)

    def key(self, param: str, row: dict):
        return _num(row[param]) if self.numeric(param) else row[param]

    @property
    def dims(self) -> list[str]:
        return [p for p in self.params if len(self.values(p)) > 1]

    def headline(self) -> list[tuple[str, str]]:
        out = []
        for col, title in HEADLINE:
            if col in self.metrics and np.isfinite(self.column(col)).any():
                out.append((col, title))
        return out


def _log_axis(values) -> bool:
    v = np.asarray([x for x in values if isinstance(x, float) and np.isfinite(x)])
    return len(v) > 1 and (v > 0).all() and v.max() / v.min() >= 20


def _set_xaxis(ax, t: Table, dim: str):
    vals = t.values(dim)
    if t.numeric(dim):
        if _log_axis(vals):
            ax.set_xscale("log")
        unit = unit_of(dim)
        if unit:
            ax.xaxis.set_major_formatter(EngFormatter(unit=unit))
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        if ax.get_xscale() == "linear":
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(nbins=5))
    ax.set_xlabel(dim)


def _xpos(t: Table, dim: str, row: dict):
    if t.numeric(dim):
        return _num(row[dim])
    return t.values(dim).index(row[dim])


def _groups(t: Table, others: list[str]):
    """Each combination of the other dimensions' values with the indices of its rows."""
    combos: dict[tuple, list[int]] = {}
    for k, row in enumerate(t.rows):
        combos.setdefault(tuple(row[p] for p in others), []).append(k)
    return combos


def _label(others, combo) -> str:
    return ", ".join(f"{p.split('.')[-1]}={_short(v)}" for p, v in zip(others, combo))


def _short(v: str) -> str:
    x = _num(v)
    return v if math.isnan(x) else f"{x:.4g}"


def _style_y(ax, col: str, y: np.ndarray):
    if _log_axis(list(y)):
        ax.set_yscale("log")
    unit = unit_of(col)
    if unit:
        ax.yaxis.set_major_formatter(EngFormatter(unit=unit))


def lines_figure(t: Table, metrics: list[tuple[str, str]], x_dim: str, title: str):
    others = [d for d in t.dims if d != x_dim]
    combos = _groups(t, others)
    n = len(metrics)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.8 * nrows), squeeze=False)
    for ax, (col, mtitle) in zip(axes.flat, metrics):
        y = t.column(col)
        for g, (combo, idx) in enumerate(list(combos.items())[:MAX_CURVES]):
            idx = sorted(idx, key=lambda k: _xpos(t, x_dim, t.rows[k]))
            xs = [_xpos(t, x_dim, t.rows[k]) for k in idx]
            line, = ax.plot(xs, y[idx], marker="o", ms=3,
                            label=_label(others, combo) if others else None)
            if col == "i_read_p50_a" and "i_read_p05_a" in t.metrics:
                lo, hi = t.column("i_read_p05_a")[idx], t.column("i_read_p95_a")[idx]
                ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15)
            bad = [x for x, k in zip(xs, idx) if not t.ok[k]]
            if bad:
                ax.plot(bad, [np.nanmin(y) if np.isfinite(y).any() else 0] * len(bad), "x",
                        color="red", ms=6, label="failed" if g == 0 else None)
        _set_xaxis(ax, t, x_dim)
        if not t.numeric(x_dim):
            ax.set_xticks(range(len(t.values(x_dim))), t.values(x_dim))
        _style_y(ax, col, y)
        ax.set_title(mtitle, fontsize=9)
        ax.grid(alpha=0.3)
        if others or not t.ok.all():
            ax.legend(fontsize=6)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    if len(combos) > MAX_CURVES:
        title += f" (first {MAX_CURVES} of {len(combos)} curves)"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _tick(t: Table, dim: str, v) -> str:
    if not t.numeric(dim):
        return str(v)
    unit = unit_of(dim)
    x = float(f"{v:.3g}")
    return EngFormatter(unit=unit)(x) if unit else f"{x:g}"


def _heatmap(ax, fig, t: Table, col: str, mtitle: str, x_dim: str, y_dim: str) -> None:
    xs, ys = t.values(x_dim), t.values(y_dim)
    grid = np.full((len(ys), len(xs)), np.nan)
    failed = np.zeros_like(grid, dtype=bool)
    y = t.column(col)
    for k, row in enumerate(t.rows):
        i = ys.index(t.key(y_dim, row))
        j = xs.index(t.key(x_dim, row))
        grid[i, j] = y[k]
        failed[i, j] = row["status"] == "failed"
    finite = grid[np.isfinite(grid)]
    norm = None
    if len(finite) and (finite > 0).all() and finite.max() / finite.min() >= 50:
        norm = matplotlib.colors.LogNorm(finite.min(), finite.max())
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")
    im = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap=cmap,
                   norm=norm)
    unit = unit_of(col)
    fig.colorbar(im, ax=ax, format=EngFormatter(unit=unit) if unit else None)
    ax.set_xticks(range(len(xs)), [_tick(t, x_dim, v) for v in xs], rotation=45, ha="right",
                  fontsize=7)
    ax.set_yticks(range(len(ys)), [_tick(t, y_dim, v) for v in ys], fontsize=7)
    ax.set_xlabel(x_dim, fontsize=8)
    ax.set_ylabel(y_dim, fontsize=8)
    if len(xs) * len(ys) <= 64:
        for i, j in itertools.product(range(len(ys)), range(len(xs))):
            if failed[i, j]:
                ax.text(j, i, "failed", ha="center", va="center", fontsize=6, color="red")
            elif np.isfinite(grid[i, j]):
                bright = im.norm(grid[i, j]) > 0.6      # viridis is light at the top
                ax.text(j, i, f"{grid[i, j]:.3g}", ha="center", va="center", fontsize=6,
                        color="k" if bright else "w")
    ax.set_title(mtitle, fontsize=9)


def heatmaps_figure(t: Table, metrics: list[tuple[str, str]], x_dim: str, y_dim: str,
                    title: str):
    """One heatmap per metric over two swept dimensions, in one figure."""
    n = len(metrics)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    w = 1.8 + 0.55 * max(len(t.values(x_dim)), 5)
    h = 1.6 + 0.4 * max(len(t.values(y_dim)), 5)
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows), squeeze=False)
    for ax, (col, mtitle) in zip(axes.flat, metrics):
        _heatmap(ax, fig, t, col, mtitle, x_dim, y_dim)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def energy_figure(t: Table, title: str):
    d = "device.diameter_m"
    others = [x for x in t.dims if x != d]
    combos = _groups(t, others)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for col, name, style in (("ff_energy_per_op_j", "feedforward", "-o"),
                             ("update_energy_per_op_j", "update", "--s")):
        if col not in t.metrics:
            continue
        y = t.column(col)
        for combo, idx in list(combos.items())[:MAX_CURVES]:
            idx = sorted(idx, key=lambda k: _num(t.rows[k][d]))
            lab = name + (f" ({_label(others, combo)})" if others else "")
            ax.plot([_num(t.rows[k][d]) for k in idx], y[idx], style, ms=4, label=lab)
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(EngFormatter(unit="m"))
    ax.yaxis.set_major_formatter(EngFormatter(unit="J"))
    ax.set_xlabel("MTJ diameter")
    ax.set_ylabel("energy per operation")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax.set_title(f"energy per op versus device size\n{title}", fontsize=9)
    fig.tight_layout()
    return fig


def render_plots(sweep_dir: Path) -> list[Path]:
    """Draw the plots of ``sweep_dir/sweep.csv`` into ``sweep_dir/plots``; returns the files."""
    sweep_dir = Path(sweep_dir)
    t = Table(sweep_dir / store.TABLE)
    dims = t.dims
    metrics = t.headline()
    out_dir = sweep_dir / "plots"
    written = []
    if not dims or not metrics:
        return written
    title = f"{sweep_dir.name}: {sum(t.ok)} of {len(t.rows)} points"
    written.append(save_figure(lines_figure(t, metrics, dims[0], title), out_dir / "lines.png"))
    if len(dims) == 2:
        fig = heatmaps_figure(t, metrics, dims[0], dims[1], title)
        written.append(save_figure(fig, out_dir / "heatmaps.png"))
    if "device.diameter_m" in dims and t.numeric("device.diameter_m") and (
            {"ff_energy_per_op_j", "update_energy_per_op_j"} & set(t.metrics)):
        written.append(save_figure(energy_figure(t, title), out_dir / "energy_vs_diameter.png"))
    return written
