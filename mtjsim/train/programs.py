"""Switching requests -> write pulse programs whose switching probabilities are the requested.

A rule asks, per tile and direction, for a set of target cells and a switching probability
per target (1 for a deterministic step). The write is column-parallel (outer-product style:
one pulse per column with all its target rows selected), so a column carries one pulse
width. ``split_levels`` groups each column's targets into at most ``levels`` probability
levels (deterministic targets in a group of their own); program k holds the k-th group of
every column, with the group's mean probability as that column's probability. With binary
or ternary inputs and a single sample the request is an outer product and one level is
exact; with mini-batches the level mean keeps the expected number of switches.

The width realizing a column's probability comes from the device law
(``mtjsim.devices.switching``, the equations of models/mtj_stt.lib) at the current each
target sees in the circuit (``mtjsim.train.estimate``: a DC solve of the pulse's line levels
with parasitics, half-selected cells and the other targets of the column):
``mean_i P_sw(I_i, w) = p``. Cells that flip part-way through the pulse change the shared
line drops; ``mean_field`` re-solves once with each target's expected state over the pulse.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from mtjsim.circuit.crossbar import ArrayKind, Crossbar
from mtjsim.devices.switching import LNTH_MIN
from mtjsim.ops.write import Direction, Parallelism, PulseProgram, WriteScheme
from mtjsim.engines import fast_write_columns
from mtjsim.engines.fast import mtj_current
from mtjsim.train.estimate import pulse_currents
from mtjsim.validation import check_int, check_range

#: Selected-cell current over I_c0 used to choose the write voltage, per scheme: V/2 and V/3
#: are capped by the half-selected cells (V/2 x 1.5 gives 0.75 I_c0 on them, thermally
#: stable for the pulses used here); 1T1R is capped by its RESET, where the MTJ sits on the
#: transistor's source side (gate 1.2 V, 40 nm device: at most about 1.9 I_c0).
DEFAULT_I_RATIO = {WriteScheme.V_HALF: 1.5, WriteScheme.V_THIRD: 2.0,
                   WriteScheme.ONE_T_ONE_R: 1.6}


def default_scheme(kind: ArrayKind) -> WriteScheme:
    return WriteScheme.V_HALF if kind is ArrayKind.PASSIVE else WriteScheme.ONE_T_ONE_R


@dataclass(frozen=True)
class WriteSettings:
    """How requests become pulses (SI units)."""

    scheme: WriteScheme | None = None     # default: V/2 for passive, 1T1R for 1t1r arrays
    i_ratio: float | None = None          # selected current / I_c0 that sets the write voltage
    v_set_v: float | None = None          # explicit write voltages (override i_ratio)
    v_reset_v: float | None = None
    p_det: float = 0.999                  # probability a deterministic step is written with
    w_min_s: float = 1e-9                 # pulse width range
    w_max_s: float = 100e-9
    rise_s: float = 0.2e-9
    gap_s: float = 1e-9
    v_gate_write_v: float = 1.2
    levels: int = 1                       # probability levels per column (programs per request)
    mean_field: bool = True
    # Run a program's pulses as consecutive writes, one transient per pulse (fresh thresholds
    # per pulse, states carried over): see docs/training.md, "ngspice in the loop".
    pulse_by_pulse: bool = True

    def __post_init__(self):
        if self.scheme is not None and not isinstance(self.scheme, WriteScheme):
            raise ValueError(f"scheme={self.scheme!r}: must be one of "
                             f"{[s.value for s in WriteScheme]}")
        if self.i_ratio is not None:
            check_range("i_ratio", self.i_ratio, lo=0, lo_open=True, hi=20,
                        typical="1.3 to 3")
        for name in ("v_set_v", "v_reset_v"):
            if getattr(self, name) is not None:
                check_range(name, getattr(self, name), lo=0, lo_open=True, hi=5,
                            typical="0.3 to 1.5")
        check_range("p_det", self.p_det, lo=0.5, hi=1, hi_open=True, typical="0.99 to 0.9999")
        check_range("w_min_s", self.w_min_s, lo=10e-12, hi=1e-6, typical="1e-9")
        check_range("w_max_s", self.w_max_s, lo=self.w_min_s, hi=1e-3, typical="100e-9")
        check_range("rise_s", self.rise_s, lo=1e-12, hi=self.w_min_s, typical="0.2e-9")
        check_range("gap_s", self.gap_s, lo=1e-12, hi=1e-6, typical="1e-9")
        check_int("levels", self.levels, lo=1, hi=16)

    def scheme_for(self, kind: ArrayKind) -> WriteScheme:
        return self.scheme or default_scheme(kind)


@dataclass
class SwitchRequest:
    """Cells of one tile to switch in one direction, each with its probability."""

    direction: Direction
    targets: np.ndarray        # bool (rows, cols)
    p: np.ndarray              # float (rows, cols): requested probability of each target

    def __post_init__(self):
        self.targets = np.asarray(self.targets, dtype=bool)
        self.p = np.where(self.targets, np.clip(np.asarray(self.p, dtype=float), 0, 1), 0.0)


def split_levels(req: SwitchRequest, levels: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(targets, p_col)] per program: each column's deterministic targets (p = 1) form one
    group, its stochastic targets ``levels`` quantile groups (probability = group mean)."""
    rows, cols = req.targets.shape
    per_col: list[list[tuple[np.ndarray, float]]] = []
    for j in range(cols):
        groups = []
        t = req.targets[:, j]
        det = t & (req.p[:, j] >= 1.0)
        if det.any():
            groups.append((det, 1.0))
        sto = np.flatnonzero(t & (req.p[:, j] < 1.0) & (req.p[:, j] > 0))
        if sto.size:
            order = sto[np.argsort(req.p[sto, j], kind="stable")]
            for chunk in np.array_split(order, min(levels, sto.size)):
                mask = np.zeros(rows, bool)
                mask[chunk] = True
                groups.append((mask, float(req.p[chunk, j].mean())))
        per_col.append(groups)
    out = []
    for k in range(max((len(g) for g in per_col), default=0)):
        targets = np.zeros((rows, cols), bool)
        p_col = np.full(cols, np.nan)
        for j, groups in enumerate(per_col):
            if k < len(groups):
                targets[:, j], p_col[j] = groups[k]
        out.append((targets, p_col))
    return out


# --- switching probability with per-cell parameters -----------------------------------------
def p_switch_cells(i_ratio, width_s, delta, tau0_s, tau_d_s, edges_s: float = 0.0):
    """P_sw of ``mtjsim.devices.switching.p_switch`` for per-cell arrays, current given as
    ``I / I_c0``; a trapezoidal pulse with ``edges_s`` of linear rise plus fall counts as
    a flat pulse lengthened by the drive its edges add: ``edges (i-1)/(2i)`` above I_c0
    (precession integrates ``(i - 1)+``), ``edges/(2 Delta i)`` below it (Neel-Brown)."""
    return _p_switch_of_width(i_ratio, delta, tau0_s, tau_d_s, edges_s)(width_s)


def _p_switch_of_width(i_ratio, delta, tau0_s, tau_d_s, edges_s: float = 0.0):
    """``p_switch_cells`` as a function of the width, what does not depend on it computed
    once (the planner's bisection evaluates it 60 times)."""
    i = np.asarray(i_ratio, dtype=float)
    errs = dict(divide="ignore", invalid="ignore", over="ignore", under="ignore")
    with np.errstate(**errs):
        extra = np.maximum(np.where(i > 1, edges_s * (i - 1) / (2 * np.maximum(i, 1e-9)),
                                    edges_s / (2 * delta * np.maximum(i, 1e-9))), 0)
        thermal = np.exp(-delta * (1.0 - np.minimum(i, 1.0)))
    above = np.maximum(i - 1.0, 0.0)
    scale = -(math.pi ** 2 * delta / 4.0)

    def p_switch(width_s):
        with np.errstate(**errs):
            t = width_s + extra
            p_th = -np.expm1(-t * thermal / tau0_s)
            drive = above * t / tau_d_s
            p_pr = np.where(drive < LNTH_MIN, 0.0, np.exp(scale * np.exp(-2.0 * drive)))
        return np.where(i < 1.0, p_th, p_pr)
    return p_switch


def _direction_params(xbar: Crossbar, direction: Direction):
    c = xbar.cells
    i_c0 = c.i_c0_p2ap_a if direction is Direction.SET else c.i_c0_ap2p_a
    return i_c0, c.delta, c.tau0_s, c.tau_d_s


def _widths_for(i_ratio_t, p_col, cols_t, params_t, settings: WriteSettings, n_cols: int):
    """Per column: the width whose mean P_sw over the column's targets is p_col (bisection
    on log width, all columns at once). Unreachable -> w_max (or w_min for tiny p)."""
    lo = np.full(n_cols, math.log(settings.w_min_s))
    hi = np.full(n_cols, math.log(settings.w_max_s))
    count = np.bincount(cols_t, minlength=n_cols)
    p_switch = _p_switch_of_width(i_ratio_t, *params_t, edges_s=2 * settings.rise_s)

    def mean_p(logw):
        p = p_switch(np.exp(logw[cols_t]))
        return np.bincount(cols_t, weights=p, minlength=n_cols) / np.maximum(count, 1)

    target = np.where(np.isnan(p_col), 0.0, p_col)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        above = mean_p(mid) >= target
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    return np.exp(hi)


def _expected_min_fraction(i_ratio, width_s, params, edges, n: int = 24):
    """E[min(T_switch, w)] / w: the fraction of the pulse a target spends unswitched."""
    ts = np.linspace(0, 1, n)[:, None] * width_s
    p = p_switch_cells(i_ratio, ts, *params, edges_s=edges)
    return np.trapezoid(1 - p, ts, axis=0) / width_s


@functools.lru_cache(maxsize=64)
def write_voltage(xbar_key, direction: Direction, scheme: WriteScheme, i_ratio: float,
                  v_gate_write_v: float) -> float:
    """The write voltage at which an isolated target at the far corner (row 0, last column:
    the longest row and bit-line paths) carries ``i_ratio`` times the nominal I_c0 of the
    direction, from its start state (P for SET, AP for RESET)."""
    spec = xbar_key
    d = spec.device
    i_c0 = d.i_c0_p2ap_a if direction is Direction.SET else d.i_c0_ap2p_a
    start = 1 - direction.target_state
    xb = Crossbar(spec, np.full(spec.shape, start, dtype=np.int8))

    def excess(v):
        prog = PulseProgram.single(spec.shape, 0, spec.cols - 1, scheme, direction, v_write_v=v,
                                   parallel=Parallelism.COLUMN, v_gate_write_v=v_gate_write_v)
        i = abs(pulse_currents(xb, prog)[0, 0, spec.cols - 1])
        return i / i_c0 - i_ratio

    if excess(5.0) < 0:
        raise ValueError(f"i_ratio={i_ratio}: not reachable below 5 V on this array "
                         f"(scheme {scheme.value}, {direction.value}, write gate "
                         f"{v_gate_write_v:g} V): lower i_ratio or raise v_gate_write_v")
    return float(brentq(excess, 1e-3, 5.0, xtol=1e-6))


def voltage_for(xbar: Crossbar, direction: Direction, settings: WriteSettings) -> float:
    explicit = settings.v_set_v if direction is Direction.SET else settings.v_reset_v
    if explicit is not None:
        return explicit
    scheme = settings.scheme_for(xbar.spec.kind)
    ratio = settings.i_ratio or DEFAULT_I_RATIO[scheme]
    return write_voltage(xbar.spec, direction, scheme, ratio, settings.v_gate_write_v)


@dataclass
class PlannedProgram:
    program: PulseProgram
    p_col: np.ndarray              # (cols,) requested probability per column (NaN: no pulse)
    p_predicted: np.ndarray        # (rows, cols) the model's P_sw of each target (NaN elsewhere)
    i_target_a: np.ndarray         # (rows, cols) estimated pre-switch current of each target


def build_program(xbar: Crossbar, direction: Direction, targets: np.ndarray, p_col: np.ndarray,
                  settings: WriteSettings) -> PlannedProgram:
    """One column-parallel program whose column widths realize ``p_col`` on ``targets``."""
    spec = xbar.spec
    scheme = settings.scheme_for(spec.kind)
    v = voltage_for(xbar, direction, settings)
    p_col = np.where(p_col >= 1.0, settings.p_det, p_col)
    common = dict(v_write_v=v, pulse_width_s=settings.w_min_s, rise_s=settings.rise_s,
                  fall_s=settings.rise_s, parallel=Parallelism.COLUMN, gap_s=settings.gap_s,
                  v_gate_write_v=settings.v_gate_write_v)
    probe = PulseProgram(scheme, direction, targets, **common)
    pulses = probe.pulses()
    order = [int(np.flatnonzero(c)[0]) for _, c in pulses]   # column of each pulse
    sign = 1.0 if direction is Direction.SET else -1.0
    i_c0, delta, tau0, tau_d = _direction_params(xbar, direction)
    ti, tj = np.nonzero(targets)
    params_t = (delta[ti, tj], tau0[ti, tj], tau_d[ti, tj])
    pulse_of_col = {j: k for k, j in enumerate(order)}
    k_t = np.array([pulse_of_col[j] for j in tj], dtype=int)
    s0 = xbar.states.astype(float)

    i_all = None
    if spec.kind is ArrayKind.ONE_T_ONE_R:       # the fast engine's hot-cell networks
        i_all = fast_write_columns.pulse_currents(xbar, probe)
    if i_all is None:
        i_all = pulse_currents(xbar, probe)
    i_t = sign * i_all[k_t, ti, tj]
    widths = _widths_for(i_t / i_c0[ti, tj], p_col, tj, params_t, settings, spec.cols)
    if settings.mean_field and len(pulses) > 0 and spec.kind is ArrayKind.PASSIVE:
        # Expected states during each pulse: earlier columns' targets switched with their
        # P_sw, and the pulse's own targets for the part of the pulse after their switch
        # (their shared line drops). Not on 1T1R arrays: a pulse's estimated network (its
        # column, the source lines as series resistances) holds no cell of an earlier
        # column, and the own term under-estimated the pre-switch current there, since a
        # cell's own state sets its MTJ voltage through the series transistor (measured on
        # 15x15, RESET p = 0.7 asked: 0.84 realized with it, in the 99 % interval without).
        edges = 2 * settings.rise_s
        w_t = widths[tj]
        p_end = p_switch_cells(i_t / i_c0[ti, tj], w_t, *params_t, edges_s=edges)
        frac = _expected_min_fraction(i_t / i_c0[ti, tj], w_t, params_t, edges)
        tgt = direction.target_state
        states = np.broadcast_to(s0, (len(pulses),) + s0.shape).copy()
        for k in range(len(pulses)):
            earlier = k_t < k
            states[k, ti[earlier], tj[earlier]] += (tgt - s0[ti[earlier], tj[earlier]]) * \
                p_end[earlier]
            own = k_t == k
            states[k, ti[own], tj[own]] += (tgt - s0[ti[own], tj[own]]) * (1 - frac[own])
        _, v_all = pulse_currents(xbar, probe, states, return_voltage=True)
        v_t = v_all[k_t, ti, tj]
        c = xbar.cells
        i_pre, _ = mtj_current(v_t, s0[ti, tj], c.r_p_ohm[ti, tj], c.tmr0[ti, tj],
                               c.v_h_v[ti, tj], derivative=False)
        i_t = sign * i_pre
        widths = _widths_for(i_t / i_c0[ti, tj], p_col, tj, params_t, settings, spec.cols)
    widths_s = tuple(float(widths[j]) for j in order)
    program = PulseProgram(scheme, direction, targets, widths_s=widths_s, **common)
    p_pred = np.full(spec.shape, np.nan)
    p_pred[ti, tj] = p_switch_cells(i_t / i_c0[ti, tj], widths[tj], *params_t,
                                    edges_s=2 * settings.rise_s)
    i_est = np.full(spec.shape, np.nan)
    i_est[ti, tj] = i_t
    return PlannedProgram(program, p_col, p_pred, i_est)
