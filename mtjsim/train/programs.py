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
from dataclasses import dataclass, fields

import numpy as np
from scipy.optimize import brentq

from mtjsim.circuit.crossbar import ArrayKind, Crossbar
from mtjsim.devices.switching import p_switch_progress
from mtjsim.ops.write import Direction, Parallelism, PulseProgram, WriteScheme
from mtjsim.engines import fast_write_columns
from mtjsim.engines.fast_write import RAMP_SOLVES, rate_terms
from mtjsim.engines.fast_write_columns import FRACS
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
    p_det: float = 0.999                  # probability a deterministic step is planned for
    # ... and then its width stretched by this fraction. Near P = 1 the model's P rises
    # through a kink (the thresholds' two roots meet; 0.99 -> 0.999 within 0.2 % of the
    # width), so small differences between the planner's law and the engines show there.
    # With the edges sampled at grid midpoints a width at p_det failed 1-3 % of the time
    # (15x15, one RESET target per column: passive 0.0116 and 1T1R 0.028 where 0.001 was
    # asked). With the edges' exact means (rate_terms), 1 and 3 targets per column, SET
    # and RESET, 1,440 targets each: passive 6 failures at +0 %, 0 at +1 % and +3 %; 1T1R
    # 1 at +0 %, 0 at +1 % and +3 %. The margin stays generous.
    det_margin: float = 0.1
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
        check_range("det_margin", self.det_margin, lo=0, hi=10, typical="0 to 0.2")
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
    group, its stochastic targets ``levels`` quantile groups (probability = group mean): the
    targets in order of p (ties by row) split as ``numpy.array_split`` does, the larger
    groups first. Program k holds the k-th group of every column."""
    rows, cols = req.targets.shape
    det = req.targets & (req.p >= 1.0)
    sto = req.targets & (req.p < 1.0) & (req.p > 0)
    has_det = det.any(axis=0).astype(int)
    n_sto = sto.sum(axis=0)
    group = np.full((rows, cols), -1)
    group[det] = 0
    si, sj = np.nonzero(sto)
    if si.size:
        order = np.lexsort((si, req.p[si, sj], sj))       # by column, then p, then row
        si, sj = si[order], sj[order]
        rank = np.arange(si.size) - np.searchsorted(sj, sj)   # within its column
        n = n_sto[sj]
        q, big = np.divmod(n, np.minimum(levels, n))       # size, number of size q + 1
        first = big * (q + 1)                              # ranks in the larger groups
        group[si, sj] = has_det[sj] + np.where(rank < first, rank // (q + 1),
                                                big + (rank - first) // q)
    out = []
    for k in range(int((has_det + np.minimum(levels, n_sto)).max(initial=0))):
        targets = group == k
        count = targets.sum(axis=0)
        with np.errstate(invalid="ignore"):
            p_col = np.where(count > 0, np.where(targets, req.p, 0.0).sum(axis=0) / count,
                             np.nan)
        out.append((targets, p_col))
    return out


# --- switching probability with per-cell parameters -----------------------------------------
@dataclass
class PulseLaw:
    """What a pulse gives each of its targets (``mtjsim.devices.switching
    .p_switch_progress``): thermal progress ``q`` and precessional drive ``d`` of its two
    edges, and their rates per second of flat top (the width), as the engines integrate
    them: the model's rates (Neel-Brown blended into Sun's precession around I_c0), the
    current linear between the ramp knots. Left out: the model's cap on the thermal rate
    (1e12/s; it binds only for E below ~1e-3, which an edge switches anyway) and the drain
    of progress by the opposite direction's rate."""

    q_edges: np.ndarray
    d_edges: np.ndarray
    q_rate_per_s: np.ndarray
    d_rate_per_s: np.ndarray
    delta: np.ndarray

    @classmethod
    def from_knots(cls, i_knots, delta, tau0_s, tau_d_s, rise_s: float, fall_s: float):
        """``i_knots`` (targets, FRACS.size): current / I_c0 at the ramp fractions ``FRACS``
        of the pulse's levels (the last one is the flat top). Between knots the current is
        linear and the rates' means over each interval are exact (``rate_terms``): the
        engines' fine grid of steps adds up to the same."""
        i_knots = np.asarray(i_knots, float)
        delta, tau0_s, tau_d_s = (np.asarray(a, float)[:, None] for a in (delta, tau0_s,
                                                                            tau_d_s))
        q_r, d_r = rate_terms(i_knots[:, :-1], delta, tau0_s, tau_d_s, i_knots[:, 1:])
        dt = (rise_s + fall_s) / RAMP_SOLVES   # both edges cross the same knots
        q_top, d_top = rate_terms(i_knots[:, -1:], delta, tau0_s, tau_d_s)
        return cls(q_r.sum(axis=1) * dt, d_r.sum(axis=1) * dt, q_top[:, 0], d_top[:, 0],
                   delta[:, 0])

    def take(self, targets) -> "PulseLaw":
        """The law of the targets indexed by ``targets``."""
        return PulseLaw(*(getattr(self, f.name)[targets] for f in fields(self)))

    def p(self, width_s, targets=slice(None)):
        """P_sw of each target (or of those indexed by ``targets``) for flat tops
        ``width_s`` (broadcast over them)."""
        return p_switch_progress(
            self.q_edges[targets] + self.q_rate_per_s[targets] * width_s,
            self.d_edges[targets] + self.d_rate_per_s[targets] * width_s, self.delta[targets])


def _direction_params(xbar: Crossbar, direction: Direction):
    c = xbar.cells
    i_c0 = c.i_c0_p2ap_a if direction is Direction.SET else c.i_c0_ap2p_a
    return i_c0, c.delta, c.tau0_s, c.tau_d_s


def _widths_for(law: PulseLaw, p_col, cols_t, settings: WriteSettings, n_cols: int,
                sections: int = 8, tol: float = 1e-4, max_rounds: int = 12):
    """Per column: the width whose mean P_sw over the column's targets is p_col, to ``tol``
    in logit(P): P and 1 - P both within 0.01 % of the law's (for p_det the engines need
    more, ``WriteSettings.det_margin``). Unreachable -> w_max (or w_min for tiny p).

    All columns at once, on ln(width), in rounds of one call of ``p_switch_progress`` each
    (its cost is per call, not per point, at these sizes). A round evaluates ``sections``
    evenly spaced points of every column's bracket and the regula falsi point of logit(P)
    (the midpoint where an end has P at 0 or 1 in floating point) and keeps the smallest
    bracket: it shrinks at least 9-fold per round, so it also gets through the kink where
    P reaches 1 (the two roots of the threshold law meet there, and 1 - P falls like a
    square root), where a secant alone crawls. On 400 recorded MNIST and 164 Wine programs:
    5.1 and 6.7 calls on average (at most 10), where a 24-step bisection took 24 (a
    straight line in logit across the last section instead left 1 - P at up to 1.7e-3
    for p_det = 0.999, at that kink)."""
    count = np.maximum(np.bincount(cols_t, minlength=n_cols), 1)
    target = np.clip(np.where(np.isnan(p_col), 0.0, p_col), 0.0, 1.0 - 1e-12)

    def logit_gap(logw, on=None):
        """logit(mean P) - logit(target), (points, cols) for ln widths (points, cols):
        +-inf where P is 0 or 1, NaN where both P and the target are 0; only the columns
        ``on`` (default: all) are evaluated, the others come out as if P were 0."""
        sel = np.arange(len(cols_t)) if on is None else np.flatnonzero(on[cols_t])
        c = cols_t[sel]
        p = law.p(np.exp(logw[:, c]), sel)                        # (points, targets)
        at = c + n_cols * np.arange(len(logw))[:, None]           # the column's mean
        m = np.bincount(at.ravel(), weights=p.ravel(), minlength=p.shape[0] * n_cols)
        m = np.clip(m.reshape(-1, n_cols) / count, 0.0, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (np.log(m) - np.log1p(-m)) - (np.log(target) - np.log1p(-target))

    a = np.full(n_cols, math.log(settings.w_min_s))
    b = np.full(n_cols, math.log(settings.w_max_s))
    fa, fb = logit_gap(np.stack([a, b]))
    at_min = ~(fa < 0)          # there already at w_min (also: no targets, p = 0)
    at_max = fb < 0             # not reached at w_max
    x = np.where(at_min, a, b)
    live = ~at_min & ~at_max & (fb > tol)
    frac = np.arange(1, sections + 1)[:, None] / (sections + 1)
    cols = np.arange(n_cols)
    for _ in range(max_rounds):
        if not live.any():
            break
        finite = np.isfinite(fa) & np.isfinite(fb)
        with np.errstate(invalid="ignore", divide="ignore"):
            guess = np.where(finite, a - fa * (b - a) / (fb - fa), 0.5 * (a + b))
        pts = np.sort(np.vstack([a + (b - a) * frac, guess]), axis=0)
        fx = logit_gap(pts, live)                   # (the others are not used)
        k = np.sum(fx < 0, axis=0)                  # points below: the crossing follows them
        xs, fs = np.vstack([a, pts, b]), np.vstack([fa, fx, fb])
        a, fa = np.where(live, xs[k, cols], a), np.where(live, fs[k, cols], fa)
        b, fb = np.where(live, xs[k + 1, cols], b), np.where(live, fs[k + 1, cols], fb)
        hit_b = live & (np.abs(fb) <= tol)
        hit_a = live & ~hit_b & (np.abs(fa) <= tol)
        x = np.where(hit_b, b, np.where(hit_a, a, x))
        live &= ~hit_a & ~hit_b & (b - a > 1e-9)
    return np.exp(np.where(live, b, x))     # unconverged: the end with P >= p_col


def _switched_fraction(law: PulseLaw, width_s, n: int = 24):
    """E[w - min(T_switch, w)] / w: the fraction of the pulse a target spends switched
    (its edges aside)."""
    ts = np.linspace(0, 1, n)[:, None] * width_s
    return np.trapezoid(law.p(ts), ts, axis=0) / width_s


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
    return build_programs([xbar], direction, [targets], [p_col], settings).programs[0]


@dataclass
class PlannedBatch:
    programs: list[PlannedProgram]          # one per tile
    # 1T1R: the estimate's column batch, which writes the programs on the fast engine from
    # the idle lines it solved (``ColumnBatch.write``); None where the estimate was not
    # made from it
    columns: fast_write_columns.ColumnBatch | None


def build_programs(xbars: list[Crossbar], direction: Direction, targets: list[np.ndarray],
                   p_cols: list[np.ndarray], settings: WriteSettings) -> PlannedBatch:
    """``build_program`` for several tiles of one ArraySpec at once (independent circuits:
    ``targets[t]`` and ``p_cols[t]`` on ``xbars[t]``), with one estimate of the targets'
    currents and one width search for all: a 32x32 program costs ~16 ms of planning on
    its own, nearly all of it per call, not per target."""
    spec = xbars[0].spec
    T, (R, C) = len(xbars), spec.shape
    scheme = settings.scheme_for(spec.kind)
    v = voltage_for(xbars[0], direction, settings)
    p_req = np.concatenate([np.asarray(p, float) for p in p_cols])          # (T * C,)
    deterministic = p_req >= 1.0
    p_goal = np.where(deterministic, settings.p_det, p_req)
    common = dict(v_write_v=v, pulse_width_s=settings.w_min_s, rise_s=settings.rise_s,
                  fall_s=settings.rise_s, parallel=Parallelism.COLUMN, gap_s=settings.gap_s,
                  v_gate_write_v=settings.v_gate_write_v)
    probes = [PulseProgram(scheme, direction, tg, **common) for tg in targets]
    # each column's pulse (pulses in column order: one per column with targets)
    orders = [[int(np.flatnonzero(c)[0]) for _, c in probe.pulses()] for probe in probes]
    pulse_of = np.full((T, C), -1)
    for t, order in enumerate(orders):
        pulse_of[t, order] = np.arange(len(order))
    # the targets of all tiles, flat: tile, row, column; gc: the column among all tiles'
    tt, ti, tj = np.nonzero(np.stack([np.asarray(tg, bool) for tg in targets]))
    gc = tt * C + tj
    k_t = pulse_of[tt, tj]
    sign = 1.0 if direction is Direction.SET else -1.0

    def per_target(arrays):
        return np.stack([np.broadcast_to(a, spec.shape) for a in arrays])[tt, ti, tj]

    params = [_direction_params(x, direction) for x in xbars]
    i_c0, delta, tau0, tau_d = (per_target([p[n] for p in params]) for n in range(4))
    one_t = spec.kind is ArrayKind.ONE_T_ONE_R
    tgt = direction.target_state
    has_pulses = tt.size > 0

    def law_of(i_knots):
        return PulseLaw.from_knots(sign * i_knots / i_c0[:, None], delta, tau0, tau_d,
                                   settings.rise_s, settings.rise_s)

    # each target's current at the ramp knots of its pulse: 1T1R from the hot-cell networks
    # (the gate ramps with the lines, so the current is far from linear in the level),
    # passive linear in the level from the full-level solve
    columns = (fast_write_columns.ColumnBatch.make(xbars, probes)
               if one_t and has_pulses else None)
    i_knots = None if columns is None else columns.at_knots()
    if i_knots is not None:
        i_knots = i_knots[:, tt, ti, tj].T
    else:                               # passive, or a hot-cell solve failed
        # solved at every knot: the MTJs' bias dependence bends the current away from
        # linear in the level, which moves where an edge passes I_c0 (P 3-7 % off at p 0.02
        # from the edges' thermal progress, with the full-level current scaled instead)
        columns = None
        i_knots = np.zeros((tt.size, FRACS.size))
        for t in np.unique(tt):
            m = tt == t
            for f, frac in enumerate(FRACS):
                if frac > 0:
                    i_knots[m, f] = pulse_currents(xbars[t], probes[t], frac=frac)[
                        k_t[m], ti[m], tj[m]]
    law = law_of(i_knots)
    widths = _widths_for(law, p_goal, gc, settings, T * C)
    if settings.mean_field and has_pulses and one_t and columns is not None:
        # The targets of a column share its bit line and driver: a SET target that switches
        # draws less current, so the others see a smaller drop and more current for the rest
        # of the pulse (RESET: the other way round). Each target's currents re-solved with
        # the others at their expected states over the pulse and its own at the start (its
        # own state sets its MTJ voltage through the series transistor). At the full level
        # only, the edges scaled with it (the shift is ~1 %; 5x fewer solves). Measured on
        # 32x32, every cell a SET target, p = 0.3: 0.314 realized without, 0.300 with.
        switched = np.zeros((T, R, C))
        switched[tt, ti, tj] = _switched_fraction(law, widths[gc])
        i_mf = columns.at_full(switched)
        if i_mf is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                scale = np.nan_to_num(i_mf[tt, ti, tj] / i_knots[:, -1], nan=1.0)
            i_knots = i_knots * scale[:, None]
            law = law_of(i_knots)
            # searched again: the columns whose targets' currents moved (not those of a
            # lone target, whose current is the same solve)
            moved = np.zeros(T * C, bool)
            moved[gc[scale != 1.0]] = True
            again = np.flatnonzero(moved[gc])
            if again.size:
                widths = np.where(moved, _widths_for(law.take(again), p_goal, gc[again],
                                                     settings, T * C), widths)
    elif settings.mean_field and has_pulses and not one_t:
        # Passive: expected states during each pulse: earlier columns' targets switched with
        # their P_sw, and the pulse's own targets for the part of the pulse after their
        # switch (their shared line drops).
        w_t = widths[gc]
        p_end = law.p(w_t)
        frac = _switched_fraction(law, w_t)
        i_pre = np.zeros(tt.size)
        for t in np.unique(tt):
            m = tt == t
            i_pre[m] = _passive_mean_field(xbars[t], probes[t], len(orders[t]), ti[m], tj[m],
                                           k_t[m], p_end[m], frac[m], tgt)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.nan_to_num(i_pre / i_knots[:, -1], nan=1.0)
        i_knots = i_knots * scale[:, None]      # the edges scaled with the full level
        law = law_of(i_knots)
        widths = _widths_for(law, p_goal, gc, settings, T * C)
    # past the kink where P reaches 1 (see WriteSettings.det_margin)
    widths = np.where(deterministic, np.minimum(widths * (1 + settings.det_margin),
                                                settings.w_max_s), widths)
    p_pred = np.full((T, R, C), np.nan)
    p_pred[tt, ti, tj] = law.p(widths[gc])
    i_est = np.full((T, R, C), np.nan)
    i_est[tt, ti, tj] = sign * i_knots[:, -1]
    out = []
    for t, order in enumerate(orders):
        w = widths[t * C:(t + 1) * C]
        program = PulseProgram(scheme, direction, targets[t],
                               widths_s=tuple(float(w[j]) for j in order), **common)
        out.append(PlannedProgram(program, p_goal[t * C:(t + 1) * C], p_pred[t], i_est[t]))
    return PlannedBatch(out, columns)


def _passive_mean_field(xbar, probe, n_pulses, ti, tj, k_t, p_end, frac, tgt):
    """Pre-switch currents of a passive tile's targets with the expected states during
    each pulse (``build_programs``)."""
    s0 = xbar.states.astype(float)
    states = np.broadcast_to(s0, (n_pulses,) + s0.shape).copy()
    for k in range(n_pulses):
        earlier = k_t < k
        states[k, ti[earlier], tj[earlier]] += (tgt - s0[ti[earlier], tj[earlier]]) * \
            p_end[earlier]
        own = k_t == k
        states[k, ti[own], tj[own]] += (tgt - s0[ti[own], tj[own]]) * frac[own]
    _, v_all = pulse_currents(xbar, probe, states, return_voltage=True)
    v_t = v_all[k_t, ti, tj]
    c = xbar.cells
    i_pre, _ = mtj_current(v_t, s0[ti, tj], c.r_p_ohm[ti, tj], c.tmr0[ti, tj],
                           c.v_h_v[ti, tj], derivative=False)
    return i_pre
