"""Fast DC solver for crossbar READS: the same network as ``build_read_circuit``'s netlist,
solved with scipy's sparse LU instead of ngspice (no KLU in Debian's ngspice 39).

What is solved (DC, capacitors open), node for node as in ``mtjsim.circuit.crossbar``:

* row lines (word lines of a passive array, source lines of a 1T1R array): driver (input
  source behind ``r_driver_ohm``, or an ideal source on the line's first node when 0 ohm;
  NaN input = driver disconnected) and ``cols`` wire segments of ``r_wire_ohm``;
* bit lines: ``rows`` segments to the sense node, which is held at 0 V (virtual ground) or
  loaded by ``r_sense_ohm``; ``r_wire_ohm == 0`` merges the nodes of every line;
* MTJ (models/mtj.lib): ``I = G(V) V``, ``G = (1-s)/R_P + s/R_AP(V)`` with per-cell
  ``r_p_ohm``, ``tmr0``, ``v_h_v`` and ``s`` the cell's state;
* 1T1R access NMOS (models/nmos.lib): SPICE level 1 exactly as ngspice's mos1load.c,
  symmetric (the lower-potential terminal is the source), gamma = 0, gate at
  ``spec.v_gate_v`` (gate lines carry no DC current), plus the bulk-drain and bulk-source
  junctions (IS = 1e-14 A default, ngspice's gmin = 1e-12 S) with the bulk at ground: they
  leak ~1e-12 A in reverse but conduct visibly when a source line is driven below 0 V.

How: every element stamps into one nodal system over all nodes; nodes held by ideal sources
(inputs with ``r_driver_ohm == 0``, virtual-ground sense nodes) are eliminated. Linearized at
zero bias the free-node matrix K is factored once per (array state, floating rows): the
column currents are then a linear map ``i_out = M v_in`` (``effective_matrix``), exact when
every device is linear (passive array, cells in P or with ``tmr0 == 0``). Otherwise each input
vector is refined from that linear answer by chord iterations reusing the LU of K (cheap: one
triangular solve per vector and iteration), with a fall-back to damped Newton (Jacobian
refactored per iteration) for vectors where the chord contracts too slowly.
See docs/fast_engine.md for validity and measured speed/accuracy.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import hashlib
import itertools
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from mtjsim.circuit.crossbar import ArrayKind, ArraySpec, Crossbar, SenseKind
from mtjsim.devices.mosfet import NMOSParams
from mtjsim.devices.mtj import mtj_conductance_s
from mtjsim.engines import fast_lines

try:                                        # scikit-learn's dependency; optional here
    from threadpoolctl import ThreadpoolController
    _THREADPOOLS = ThreadpoolController()
except ImportError:                         # pragma: no cover
    _THREADPOOLS = None

_BLAS_LOCK = threading.Lock()
_blas_depth = 0                             # one_blas_thread contexts open (any thread)
_blas_limiter = None


@contextlib.contextmanager
def one_blas_thread():
    """BLAS held to one thread while any such context is open, in any thread; nested and
    concurrent ones share the outermost limit (setting it cost ~30 us, paid per solve before)."""
    global _blas_depth, _blas_limiter
    if _THREADPOOLS is None:                # pragma: no cover
        yield
        return
    with _BLAS_LOCK:
        if _blas_depth == 0:
            _blas_limiter = _THREADPOOLS.limit(limits=1, user_api="blas")
        _blas_depth += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _blas_depth -= 1
            if _blas_depth == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None

# --- ngspice constants the level-1 junctions use (src/include/ngspice/const.h, CODATA 2014) --
_K_BOLTZMANN_J_PER_K = 1.38064852e-23
_Q_ELECTRON_C = 1.6021766208e-19
_T_NOMINAL_K = 300.15                       # 27 degC: ngspice's default TEMP = TNOM
VT_V = _K_BOLTZMANN_J_PER_K * _T_NOMINAL_K / _Q_ELECTRON_C
I_SAT_JUNCTION_A = 1e-14                    # level-1 IS default (models/nmos.lib sets none)
GMIN_S = 1e-12                              # ngspice's default gmin, added across junctions
_MAX_EXP_ARG = 709.0                        # ngspice's clamp of exp() arguments


class ReadMode(enum.Enum):
    EXACT = "exact"      # iterate the nonlinear devices to tolerance (matches ngspice)
    LINEAR = "linear"    # linear map only (at the engine's bias_v): a matrix product;
                         # approximate if nonlinear
    CHECKED = "checked"  # linear map, a-posteriori error estimate per vector, exact refinement
                         # of the vectors whose estimate exceeds the engine's linear_tol


class FastReadConvergenceError(RuntimeError):
    """Refinement did not reach tolerance. Carries which input vectors failed and how far off
    they were, so the caller can loosen tolerances, raise max_iter or fall back to ngspice."""

    def __init__(self, message: str, *, vectors: np.ndarray, iterations: int,
                 step_v: np.ndarray, step_a: np.ndarray, tol_v: float, tol_a: np.ndarray):
        super().__init__(message)
        self.vectors = vectors        # indices (into the batch) of the vectors that failed
        self.iterations = iterations
        self.step_v = step_v          # last node-voltage update of each failed vector, V
        self.step_a = step_a          # last change of its column currents, A
        self.tol_v = tol_v
        self.tol_a = tol_a


@dataclass
class FastRead:
    """Result of a fast read: one entry per input vector along the first axis."""

    i_out_a: np.ndarray            # (batch, cols) bit-line current into the sense (= i(vsns_j))
    v_cell_v: np.ndarray | None    # (batch, rows, cols) across each MTJ, t minus b, or None
    v_in_v: np.ndarray             # (batch, rows) the inputs, NaN = floating row
    iterations: np.ndarray         # (batch,) refinement iterations per vector (0 = linear answer)
    newton: np.ndarray             # (batch,) True where the chord fell back to full Newton
    converged: bool                # EXACT: True (else an error is raised); LINEAR: True only
                                   # for a linear network (otherwise an approximation)
    linear_network: bool           # every device linear: the linear map is exact
    mode: ReadMode
    step_v: np.ndarray             # (batch,) last node-voltage update, V (0 when not iterated)
    factorized: bool               # this read had to build and factor a matrix (cache miss)
    timings_s: dict = field(default_factory=dict)
    low_rank: int = 0              # flipped cells solved as a low-rank update (0: none)
    error_estimate: np.ndarray | None = None   # CHECKED: (batch,) estimated relative error
                                               # of the linear answer (else zeros)
    refined: np.ndarray | None = None          # CHECKED: (batch,) vectors solved exactly


# --- device equations (vectorized) ---------------------------------------------------------
def mtj_current(v_v, s, r_p_ohm, tmr0, v_h_v, derivative: bool = True):
    """Current t -> b of models/mtj.lib and (if asked) its derivative dI/dV.
    G = (1-s)/R_P + s/(R_P (1 + TMR0/q)), q = 1 + (V/Vh)^2."""
    q = 1.0 + (v_v / v_h_v) ** 2
    g = mtj_conductance_s(v_v, s, r_p_ohm, tmr0, v_h_v)
    if not derivative:
        return g * v_v, None
    # d(G V)/dV = G + V dG/dV; dG_AP/dq = TMR0 / (R_P (q + TMR0)^2), dq/dV = 2 V / Vh^2
    di_dv = g + s * 2 * v_v * v_v * tmr0 / (v_h_v * v_h_v * r_p_ohm * (q + tmr0) ** 2)
    return g * v_v, di_dv


def nmos_current(v_d_v, v_s_v, v_g_v, tr: NMOSParams, derivative: bool = True):
    """Level-1 channel current leaving the drain node (ngspice's ``mode * cdrain``) and its
    derivatives with respect to V(d) and V(s) (gate fixed, bulk at 0, gamma = 0).

    The device is symmetric: the lower-potential terminal acts as source (ngspice mode -1
    when V(d) < V(s)). ngspice's three regions in one form: with vgst = V(g) - V(low) - VTO
    clipped at 0 and v_eff = min(vgst, |vds|) (vgst in saturation, |vds| in the linear region,
    0 in cutoff), cdrain = beta (1 + lambda |vds|) v_eff (vgst - v_eff / 2)."""
    vds = v_d_v - v_s_v
    fwd = vds >= 0
    vds_m = np.abs(vds)
    vgst = np.maximum(v_g_v - np.minimum(v_d_v, v_s_v) - tr.vto_v, 0.0)
    v_eff = np.minimum(vgst, vds_m)
    beta = tr.kp_a_per_v2 * tr.w_m / tr.l_m
    betap = beta * (1 + tr.lambda_per_v * vds_m)
    shape = v_eff * (vgst - 0.5 * v_eff)
    cdrain = betap * shape
    if not derivative:
        return np.where(fwd, cdrain, -cdrain), None, None
    gm = betap * v_eff
    gds = betap * (vgst - v_eff) + tr.lambda_per_v * beta * shape
    i_d = np.where(fwd, cdrain, -cdrain)
    # forward: I = cdrain(vgs, vds); reverse: I = -cdrain(vgd, vsd)
    di_dvd = np.where(fwd, gds, gm + gds)
    di_dvs = np.where(fwd, -(gm + gds), -gds)
    return i_d, di_dvd, di_dvs


def junction_current(v_node_v, derivative: bool = True):
    """Bulk junction of a level-1 drain or source with the bulk at 0 V: current leaving the
    node into the junction and its conductance (ngspice mos1load.c, ngspice 39 form; None
    without ``derivative``)."""
    v_bx = -v_node_v
    rev = v_bx <= -3 * VT_V
    e = np.exp(np.minimum(v_bx / VT_V, _MAX_EXP_ARG))
    c_bx = np.where(rev, GMIN_S * v_bx - I_SAT_JUNCTION_A,
                    I_SAT_JUNCTION_A * (e - 1) + GMIN_S * v_bx)
    if not derivative:
        return -c_bx, None
    g_bx = np.where(rev, GMIN_S, I_SAT_JUNCTION_A * e / VT_V + GMIN_S)
    return -c_bx, g_bx


# --- topology: node numbering and element lists, straight from the ArraySpec --------------
class _Topology:
    """Node indices of every line position, cell terminal and source of one ArraySpec.

    Row line i position p (0 = driver output, j+1 = cell (i, j)) is ``row[i, p]``; bit line j
    position p (i = cell (i, j), rows = sense) is ``bit[j, p]``; with r_wire_ohm == 0 all
    positions of a line share one node. ``inp[i]`` is the source node behind the driver
    resistance (r_driver_ohm > 0 only); ``drain[i, j]`` the 1T1R MTJ-NMOS node."""

    def __init__(self, spec: ArraySpec):
        R, C = spec.rows, spec.cols
        self.spec = spec
        merge = spec.r_wire_ohm == 0
        n = 0
        if merge:
            self.row = np.repeat(np.arange(R)[:, None], C + 1, axis=1)
            n += R
            self.bit = n + np.repeat(np.arange(C)[:, None], R + 1, axis=1)
            n += C
        else:
            self.row = np.arange(R * (C + 1)).reshape(R, C + 1)
            n += R * (C + 1)
            self.bit = n + np.arange(C * (R + 1)).reshape(C, R + 1)
            n += C * (R + 1)
        self.inp = None
        if spec.r_driver_ohm > 0:
            self.inp = n + np.arange(R)
            n += R
        self.one_t = spec.kind is ArrayKind.ONE_T_ONE_R
        self.drain = None
        if self.one_t:
            self.drain = n + np.arange(R * C).reshape(R, C)
            n += R * C
        self.n_all = n
        self.sense = self.bit[:, R].copy()

        # MTJ terminals per cell, flattened row-major: t minus b is the cell voltage
        cell_row = self.row[:, 1:]                 # (R, C): row-line node at cell (i, j)
        cell_bit = self.bit[:, :R].T               # (R, C): bit-line node at cell (i, j)
        if self.one_t:
            self.mtj_t, self.mtj_b = cell_bit.ravel(), self.drain.ravel()
            self.mos_d, self.mos_s = self.drain.ravel(), cell_row.ravel()
        else:
            self.mtj_t, self.mtj_b = cell_row.ravel(), cell_bit.ravel()

        # linear two-terminal conductances (b = -1: to ground), drivers kept apart because
        # they depend on which rows float
        a, b, g = [], [], []
        if not merge:
            gw = 1.0 / spec.r_wire_ohm
            a += [self.row[:, :-1].ravel(), self.bit[:, :-1].ravel()]
            b += [self.row[:, 1:].ravel(), self.bit[:, 1:].ravel()]
            g += [np.full(R * C, gw), np.full(R * C, gw)]
        if spec.sense is SenseKind.RESISTOR:
            a.append(self.sense)
            b.append(np.full(C, -1))
            g.append(np.full(C, 1.0 / spec.r_sense_ohm))
        self.lin_a = np.concatenate(a) if a else np.zeros(0, int)
        self.lin_b = np.concatenate(b) if b else np.zeros(0, int)
        self.lin_g = np.concatenate(g) if g else np.zeros(0)

        # Fill-reducing elimination order. With wires, every element joins nodes at the same or
        # neighbouring cell positions (a two-layer 2-D grid), so geometric nested dissection
        # applies; it gave 20 % less fill and 25-40 % faster factorizations than SuperLU's
        # MMD at 128x128-256x256. Merged lines (r_wire_ohm == 0) span the whole array: MMD.
        self.order = None
        if not merge:
            pos_r = np.empty(n, int)                  # grid position of every node
            pos_c = np.empty(n, int)
            ii, pp = np.indices((R, C + 1))
            pos_r[self.row], pos_c[self.row] = ii, pp - 1          # driver output at col -1
            jj, pp = np.indices((C, R + 1))
            pos_r[self.bit], pos_c[self.bit] = pp, jj               # sense node at row R
            if self.inp is not None:
                pos_r[self.inp], pos_c[self.inp] = np.arange(R), -1
            if self.one_t:
                ii, jj = np.indices((R, C))
                pos_r[self.drain], pos_c[self.drain] = ii, jj
            self.order = _nested_dissection(pos_r, pos_c)


def _nested_dissection(pos_r: np.ndarray, pos_c: np.ndarray, leaf: int = 16) -> np.ndarray:
    """Node order for nodes on a grid whose edges join only equal or 4-neighbouring grid
    positions: split the box across its longer side, order each half, the dividing grid line
    (a separator) last. Leaves of <= ``leaf`` nodes keep their index order."""
    out = []

    def split(idx, r0, r1, c0, c1):           # half-open box [r0, r1) x [c0, c1)
        if idx.size <= leaf or (r1 - r0 <= 1 and c1 - c0 <= 1):
            out.append(idx)
            return
        if r1 - r0 >= c1 - c0:
            m, key = (r0 + r1) // 2, pos_r[idx]
            split(idx[key < m], r0, m, c0, c1)
            split(idx[key > m], m + 1, r1, c0, c1)
        else:
            m, key = (c0 + c1) // 2, pos_c[idx]
            split(idx[key < m], r0, r1, c0, m)
            split(idx[key > m], r0, r1, m + 1, c1)
        out.append(idx[key == m])

    split(np.arange(pos_r.size), pos_r.min(), pos_r.max() + 1, pos_c.min(), pos_c.max() + 1)
    return np.concatenate(out)


@functools.lru_cache(maxsize=8)
def _topology(spec: ArraySpec) -> _Topology:
    """Topologies (and their orderings) are shared by every state of one spec."""
    return _Topology(spec)


def _stamp(a, b, g, n):
    """COO entries of conductances g between nodes a and b (b = -1: ground)."""
    to_gnd = b < 0
    bb = np.where(to_gnd, 0, b)
    keep = ~to_gnd
    rows = np.concatenate([a, bb[keep], a[keep], bb[keep]])
    cols = np.concatenate([a, bb[keep], bb[keep], a[keep]])
    vals = np.concatenate([g, g[keep], -g[keep], -g[keep]])
    return rows, cols, vals


class _MaskSystem:
    """Everything that depends on which rows float, for one array state: the free/fixed
    partition, the linear part G, the zero-bias matrix K and its LU, the Jacobian pattern.

    Nodes are renumbered free first, fixed (held by ideal sources) last, so the free block of
    a node-voltage array ``x`` (n_all, batch) is the view ``x[:n_free]``."""

    def __init__(self, topo: _Topology, xbar: Crossbar, floating: np.ndarray,
                 x_ref: np.ndarray | None = None, bias_v: float = 0.0):
        spec, R, C, n = topo.spec, topo.spec.rows, topo.spec.cols, topo.n_all
        self.floating = floating
        self.spec = spec
        driven = ~floating
        # fixed nodes and which input row sets each (-1: held at 0 V)
        fixed_node, fixed_src = [], []
        if topo.inp is not None:                     # source node behind the driver resistor
            fixed_node.append(topo.inp)
            fixed_src.append(np.where(driven, np.arange(R), -1))   # floating: isolated, 0 V
        else:                                        # ideal driver on the line's first node
            fixed_node.append(topo.row[driven, 0])
            fixed_src.append(np.arange(R)[driven])
        if spec.sense is SenseKind.VIRTUAL_GROUND:
            fixed_node.append(topo.sense)
            fixed_src.append(np.full(C, -1))
        fixed_old = np.concatenate(fixed_node)
        self.fixed_src = np.concatenate(fixed_src)
        is_free = np.ones(n, bool)
        is_free[fixed_old] = False
        self.n_free = nf = int(is_free.sum())
        new = np.empty(n, int)                       # old node index -> new
        free_old = (np.flatnonzero(is_free) if topo.order is None
                    else topo.order[is_free[topo.order]])  # free nodes in elimination order
        new[free_old] = np.arange(nf)
        self.ordered = topo.order is not None
        new[fixed_old] = np.arange(nf, n)
        self.n_all = n
        self.one_t = topo.one_t
        self.sense = new[topo.sense]
        self.mtj_t, self.mtj_b = new[topo.mtj_t], new[topo.mtj_b]

        # MTJs whose conductance does not depend on bias (P state, or tmr0 = 0) are plain
        # conductances of the linear network; only the others are evaluated per iteration
        cells = xbar.cells
        s = xbar.states.ravel().astype(float)
        r_p = np.asarray(cells.r_p_ohm, float).ravel()
        tmr0 = np.asarray(cells.tmr0, float).ravel()
        v_h = np.asarray(cells.v_h_v, float).ravel()
        nl = (s != 0) & (tmr0 != 0)
        self.nl = np.flatnonzero(nl)
        self.s, self.r_p, self.tmr0, self.v_h = s[nl], r_p[nl], tmr0[nl], v_h[nl]
        g_lin_mtj = 1.0 / r_p[~nl]

        # linear network: wires, sense resistors, linear MTJs, drivers of driven rows
        a = [topo.lin_a, topo.mtj_t[~nl]]
        b = [topo.lin_b, topo.mtj_b[~nl]]
        g = [topo.lin_g, g_lin_mtj]
        if topo.inp is not None:
            a.append(topo.inp[driven])
            b.append(topo.row[driven, 0])
            g.append(np.full(int(driven.sum()), 1.0 / spec.r_driver_ohm))
        a, b, g = np.concatenate(a), np.concatenate(b), np.concatenate(g)
        r, c, v = _stamp(new[a], np.where(b < 0, -1, new[np.maximum(b, 0)]), g, n)
        self.G = sp.csr_matrix((v, (r, c)), shape=(n, n))

        # incidence of the nonlinear devices, one matrix so the residual takes one product:
        # columns [nonlinear MTJs (+1 at t, -1 at b) | currents leaving drains | sources]
        t, bn = self.mtj_t[self.nl], self.mtj_b[self.nl]
        k = np.arange(t.size)
        inc_r, inc_c, inc_v = [t, bn], [k, k], [np.ones(k.size), -np.ones(k.size)]
        dev_r, dev_c = [t, bn, t, bn], [t, bn, bn, t]
        if self.one_t:
            self.mos_d, self.mos_s = new[topo.mos_d], new[topo.mos_s]
            m = np.arange(R * C)
            inc_r += [self.mos_d, self.mos_s]
            inc_c += [k.size + m, k.size + R * C + m]
            inc_v += [np.ones(m.size), np.ones(m.size)]
            d, s_ = self.mos_d, self.mos_s
            dev_r += [d, d, s_, s_]                  # rows d, d, s, s; cols d, s, d, s
            dev_c += [d, s_, d, s_]
        self.inc = sp.csr_matrix((np.concatenate(inc_v),
                                  (np.concatenate(inc_r), np.concatenate(inc_c))),
                                 shape=(n, k.size + (2 * R * C if self.one_t else 0)))

        # Jacobian pattern: G entries then device stamps (order of _dev_jac_vals)
        g_coo = self.G.tocoo()
        self._g_vals = g_coo.data
        self._all_r = np.concatenate([g_coo.row] + dev_r)
        self._all_c = np.concatenate([g_coo.col] + dev_c)
        keep = (self._all_r < nf) & (self._all_c < nf)
        self._pat_keep = keep
        self._pat_r, self._pat_c = self._all_r[keep], self._all_c[keep]

        # every MTJ's terminals and device parameters (flips are low-rank updates of K)
        self.cell_s, self.cell_r_p, self.cell_tmr0, self.cell_v_h = s, r_p, tmr0, v_h
        self.free_t = np.where(self.mtj_t < nf, self.mtj_t, -1)
        self.free_b = np.where(self.mtj_b < nf, self.mtj_b, -1)

        self.states_i8 = xbar.states.ravel().astype(np.int8).copy()
        self.linearize(None if x_ref is None else x_ref, bias_v)

    def linearize(self, x_ref: np.ndarray | None, bias_v: float = 0.0) -> None:
        """Linearization and its LU, reused by every read of this state. x_ref = None: zero
        bias (tangent = secant there). Otherwise the secant conductance of every device at
        node voltages x_ref (the read-bias operating point): that linear network reproduces
        the exact currents at x_ref, and K stays symmetric."""
        spec, C, n, nf = self.spec, self.spec.cols, self.n_all, self.n_free
        self.bias_v = float(bias_v)
        self.x_ref = np.zeros(n) if x_ref is None else np.asarray(x_ref, float)
        self.K_all = self._secant_all(self.x_ref)
        self.K = sp.csc_matrix(self.K_all[:nf, :nf])
        self.lu = _factor(self.K, self.ordered) if nf else None
        self.K_fc = sp.csr_matrix(self.K_all[:nf, nf:])     # free rows, fixed columns
        # output current as a linear function of all nodes (linearized network)
        if spec.sense is SenseKind.VIRTUAL_GROUND:
            O = -self.K_all[self.sense]              # current from the network into the sense
        else:
            O = sp.csr_matrix((np.full(C, 1.0 / spec.r_sense_ohm), (np.arange(C), self.sense)),
                              shape=(C, n))
        O = sp.csr_matrix(O)
        self.O_f, self.O_c = O[:, :nf], O[:, nf:]
        self._M = None
        self._est = None
        self._poly = None                       # cell_poly's cache (depends on x_ref)
        self._w_cache: dict[int, np.ndarray] = {}
        self._residual_setup()

    # --- node voltages and device currents ------------------------------------------------
    def fixed_values(self, v_in: np.ndarray) -> np.ndarray:
        """(n_fixed, batch) values of the fixed nodes for inputs (batch, rows)."""
        vals = np.zeros((self.fixed_src.size, v_in.shape[0]))
        src = self.fixed_src >= 0
        vals[src] = np.nan_to_num(v_in[:, self.fixed_src[src]].T)
        return vals

    def cell_voltages(self, x: np.ndarray) -> np.ndarray:
        """Voltage across every MTJ, t minus b, (cells, batch)."""
        return x[self.mtj_t] - x[self.mtj_b]

    def _residual_setup(self):
        """Per-system constants of ``residual`` (gathers, device columns)."""
        nl = self.nl
        self._r_nl_t, self._r_nl_b = self.mtj_t[nl], self.mtj_b[nl]
        self._r_s, self._r_rp = self.s[:, None], self.r_p[:, None]
        self._r_tmr0, self._r_vh = self.tmr0[:, None], self.v_h[:, None]
        if self.one_t:
            self._r_ds = np.concatenate([self.mos_d, self.mos_s])

    def residual(self, x: np.ndarray) -> np.ndarray:
        """KCL residual at every node: current leaving it into the elements, (n_all, batch).
        Zero at free nodes for a solution; at fixed nodes, what the source supplies.
        (The device equations of mtj_current, nmos_current and junction_current, with their
        gathers and both junctions in one array.)"""
        parts = []
        if self.nl.size:
            v = x[self._r_nl_t] - x[self._r_nl_b]
            parts.append(mtj_conductance_s(v, self._r_s, self._r_rp, self._r_tmr0,
                                           self._r_vh) * v)
        if self.one_t:
            m = self.mos_d.size
            vds = x[self._r_ds]                         # drains, then sources
            vd, vs = vds[:m], vds[m:]
            i_d = nmos_current(vd, vs, self.spec.v_gate_v, self.spec.transistor,
                               derivative=False)[0]
            jc = junction_current(vds, derivative=False)[0]
            jc[:m] += i_d
            jc[m:] -= i_d
            parts.append(jc)
        out = self.G @ x
        if parts:
            out += self.inc @ (np.concatenate(parts) if len(parts) > 1 else parts[0])
        return out

    def output_current(self, x, res=None):
        """Column currents into the sense, (batch, cols)."""
        if self.spec.sense is SenseKind.VIRTUAL_GROUND:
            if res is None:
                res = self.residual(x)
            return -res[self.sense].T                # what flows from the network into it
        return x[self.sense].T / self.spec.r_sense_ohm

    def _dev_jac_vals(self, x):
        v = x[self.mtj_t[self.nl]] - x[self.mtj_b[self.nl]]
        _, gd = mtj_current(v, self.s, self.r_p, self.tmr0, self.v_h)
        vals = [self._g_vals, gd, gd, -gd, -gd]
        if self.one_t:
            vd, vs = x[self.mos_d], x[self.mos_s]
            _, a, c = nmos_current(vd, vs, self.spec.v_gate_v, self.spec.transistor)
            _, g_d = junction_current(vd)
            _, g_s = junction_current(vs)
            vals += [a + g_d, c, -a, g_s - c]        # rows d, d, s, s; cols d, s, d, s
        return np.concatenate(vals)

    def cell_secant(self, v_cell, s):
        """Secant conductance I/V of MTJs with states s at voltages v_cell (all cells)."""
        return mtj_conductance_s(v_cell, s, self.cell_r_p, self.cell_tmr0, self.cell_v_h)

    def _secant_all(self, x):
        """Linearized nodal matrix over all nodes: G plus every device's secant conductance at
        node voltages x (MTJs: I/V; channel: I/(V_d - V_s), its slope where V_d = V_s;
        junctions: their slope). At x = 0 this is the tangent (Newton) matrix."""
        v = x[self.mtj_t[self.nl]] - x[self.mtj_b[self.nl]]
        gm = mtj_conductance_s(v, self.s, self.r_p, self.tmr0, self.v_h)
        vals = [self._g_vals, gm, gm, -gm, -gm]
        if self.one_t:
            vd, vs = x[self.mos_d], x[self.mos_s]
            i_d, a, _ = nmos_current(vd, vs, self.spec.v_gate_v, self.spec.transistor)
            dv = vd - vs
            with np.errstate(divide="ignore", invalid="ignore"):
                g = np.where(np.abs(dv) > 1e-12, i_d / dv, a)
            _, g_d = junction_current(vd)
            _, g_s = junction_current(vs)
            vals += [g + g_d, -g, -g, g_s + g]
        n = self.n_all
        return sp.csr_matrix((np.concatenate(vals), (self._all_r, self._all_c)), shape=(n, n))

    def jacobian_free(self, x):
        """Newton matrix dF/dx on the free nodes at node voltages x (n_all,)."""
        vals = self._dev_jac_vals(x)[self._pat_keep]
        return sp.csc_matrix((vals, (self._pat_r, self._pat_c)), shape=(self.n_free,) * 2)

    def _jacobian_all(self, x):
        n = self.n_all
        return sp.csr_matrix((self._dev_jac_vals(x), (self._all_r, self._all_c)), shape=(n, n))

    # --- solves -----------------------------------------------------------------------------
    def solve(self, rhs: np.ndarray, trans: str = "N") -> np.ndarray:
        """K^-1 rhs for rhs (n_free, k). Several right-hand sides go to SuperLU at once with
        BLAS limited to one thread: multithreaded OpenBLAS on SuperLU's tiny supernodes made
        2-D solves 5-20x slower than a loop of 1-D solves on this 2-core machine; on one
        thread a block of 8 costs 1.5 ms per vector against 4 ms for a 1-D solve (128x128)."""
        if rhs.shape[1] == 1:
            return self.lu.solve(np.ascontiguousarray(rhs[:, 0]), trans=trans)[:, None]
        with one_blas_thread():
            return self.lu.solve(np.asfortranarray(rhs), trans=trans)

    def linear_output(self, x: np.ndarray) -> np.ndarray:
        """Column currents (batch, cols) of the linearized network at node voltages x."""
        nf = self.n_free
        return (self.O_f @ x[:nf] + self.O_c @ x[nf:]).T

    def linear_solution(self, v_in: np.ndarray) -> np.ndarray:
        """All node voltages (n_all, batch) of the linearized network."""
        x = np.zeros((self.n_all, v_in.shape[0]))
        v_c = self.fixed_values(v_in)
        x[self.n_free:] = v_c
        if self.n_free:
            x[:self.n_free] = -self.solve(np.asarray(self.K_fc @ v_c))
        return x

    def input_map(self) -> np.ndarray:
        """T (n_fixed, rows): fixed node values = T v_in."""
        T = np.zeros((self.fixed_src.size, self.spec.rows))
        src = self.fixed_src >= 0
        T[np.flatnonzero(src), self.fixed_src[src]] = 1.0
        return T

    def effective_matrix(self) -> np.ndarray:
        """M (cols x rows): i_out = M v_in for the linearized network. Floating rows have zero
        columns. min(rows, cols) solves (direct or transposed)."""
        if self._M is None:
            R, C = self.spec.rows, self.spec.cols
            T = self.input_map()
            KT = np.asarray(self.K_fc @ T)              # (n_free, R)
            M = np.asarray(self.O_c @ T)
            if self.n_free:
                if R <= C:
                    M = M - np.asarray(self.O_f @ self.solve(KT))
                else:                                   # O_f K^-1 from C solves with K^T
                    Z = self.solve(self.O_f.T.toarray(), trans="T")
                    M = M - Z.T @ KT
            self._M = M
        return self._M

    # --- flips as low-rank updates ----------------------------------------------------------
    def flip_columns(self, cells: np.ndarray) -> np.ndarray:
        """W = K^-1 E_f (n_free, k): K^-1 applied to the free part of each cell's MTJ incidence
        (+1 at t, -1 at b), cached per cell (one solve each, batched)."""
        cache = self._w_cache
        new = [c for c in cells.tolist() if c not in cache]
        if new:
            new = np.array(new)
            k = np.arange(new.size)
            t, b = self.free_t[new], self.free_b[new]
            E = np.zeros((self.n_free, new.size))
            E[t[t >= 0], k[t >= 0]] = 1.0
            E[b[b >= 0], k[b >= 0]] = -1.0
            W = self.solve(E)
            for k, c in enumerate(new.tolist()):
                cache[c] = W[:, k].copy()
        return np.stack([cache[c] for c in cells.tolist()], axis=1)

    def incidence_free(self, cells: np.ndarray):
        """E_f (n_free, k): +1 at the free t node, -1 at the free b node of each cell."""
        k = np.arange(cells.size)
        t, b = self.free_t[cells], self.free_b[cells]
        r = np.concatenate([t[t >= 0], b[b >= 0]])
        c = np.concatenate([k[t >= 0], k[b >= 0]])
        v = np.concatenate([np.ones(int((t >= 0).sum())), -np.ones(int((b >= 0).sum()))])
        return sp.csc_matrix((v, (r, c)), shape=(self.n_free, cells.size))

    def incidence_all(self, cells: np.ndarray):
        k = np.arange(cells.size)
        return sp.csr_matrix((np.concatenate([np.ones(k.size), -np.ones(k.size)]),
                              (np.concatenate([self.mtj_t[cells], self.mtj_b[cells]]),
                               np.concatenate([k, k]))), shape=(self.n_all, cells.size))

    # --- a-posteriori estimate of the linearization error -----------------------------------
    def nonlinearity_poly(self, cells: np.ndarray | None = None, s=None):
        """Per cell, the deviation of the cell current from the linear map's as a polynomial of
        the row input v: d(v) ~ c1 v + c2 v^2 + c3 v^3 (3, cells). The cell sees
        u = a v across it (row node minus bit node), a = its share of the bias at the
        reference point (wire and driver drops), and d = f(u) - g u with f the cell's I(u)
        (MTJ, or MTJ in series with the access transistor) and g its secant at the reference.
        Ignores how the drops themselves change with the inputs (a second-order effect)."""
        cells = np.arange(self.cell_s.size) if cells is None else cells
        s = self.cell_s[cells] if s is None else s
        x = self.x_ref
        top = self.mtj_t if not self.one_t else self.mos_s     # row-side terminal
        bot = self.mtj_b if not self.one_t else self.mtj_t     # bit-side terminal
        u_ref = x[top[cells]] - x[bot[cells]]
        b = self.bias_v
        scale = b if b > 0 else 0.1
        a = np.where(np.abs(u_ref) > 1e-12, u_ref / b, 1.0) if b > 0 else np.ones(cells.size)
        samples = scale * np.array([-2.0, -1.0, -0.5, 0.5, 1.0, 1.5, 2.0])
        # the samples and the secant's point in one solve of the cells: (k, 7 + 1)
        h = 1e-6
        at = u_ref[:, None] if b > 0 else np.full((cells.size, 1), h)
        f = self._cell_iv(cells, s, np.concatenate([a[:, None] * samples[None, :], at], axis=1))
        f, f_at = f[:, :-1], f[:, -1]
        if b > 0:
            g = f_at / np.where(np.abs(u_ref) > 1e-12, u_ref, 1.0)
        else:
            g = f_at / h
        d = f - g[:, None] * a[:, None] * samples[None, :]
        design = np.stack([samples, samples ** 2, samples ** 3], axis=1)   # (7, 3)
        return (np.linalg.pinv(design) @ d.T)                              # (3, k)

    def _cell_iv(self, cells, s, u):
        """Current row side -> bit side of whole cells for voltages u (k, m) across them."""
        r_p, tmr0, v_h = (a[cells][:, None] for a in (self.cell_r_p, self.cell_tmr0,
                                                      self.cell_v_h))
        s = np.asarray(s, float)[:, None]
        if not self.one_t:
            return mtj_current(u, s, r_p, tmr0, v_h, derivative=False)[0]
        # 1T1R: source line at u, bit line at 0; drain V_d between them where the MTJ current
        # (bit -> drain) equals the channel current (drain -> source).
        # h(V_d) = MTJ current in - channel current out, strictly decreasing in V_d: Newton
        # steps kept inside the bracket [lo, hi] (a bisection when one would leave it), to
        # the bisection's resolution (it took 50 halvings; Newton ~5 steps)
        u = np.broadcast_to(u, np.broadcast_shapes(np.shape(u), s.shape)).astype(float)
        s, r_p, tmr0, v_h = (np.broadcast_to(a, u.shape) for a in (s, r_p, tmr0, v_h))
        lo, hi = np.minimum(u, 0.0), np.maximum(u, 0.0)
        tr, vg = self.spec.transistor, self.spec.v_gate_v
        vd = 0.5 * (lo + hi)
        eps = 4 * np.finfo(float).eps * np.maximum(np.abs(u), 1e-30)
        act = np.flatnonzero((hi - lo).ravel() > eps.ravel())
        vd, lo, hi, eps = vd.ravel(), lo.ravel(), hi.ravel(), eps.ravel()
        uf, sf, rf, tf, hf = (np.ascontiguousarray(a).ravel() for a in (u, s, r_p, tmr0, v_h))
        for _ in range(100):
            if not act.size:
                break
            x = vd[act]
            i_m, g_m = mtj_current(-x, sf[act], rf[act], tf[act], hf[act])
            i_c, g_c, _ = nmos_current(x, uf[act], vg, tr)
            h = i_m - i_c
            pos = h > 0
            lo_a = lo[act] = np.where(pos, x, lo[act])
            hi_a = hi[act] = np.where(pos, hi[act], x)
            with np.errstate(divide="ignore", invalid="ignore"):
                step = h / (g_m + g_c)                       # -h / dh, dh = -(g_m + g_c) < 0
            x_new = x + step
            done = (np.abs(step) <= eps[act]) | (h == 0)
            out = ~done & ~((x_new > lo_a) & (x_new < hi_a))
            vd[act] = np.where(out, 0.5 * (lo_a + hi_a), np.where(h == 0, x, x_new))
            act = act[~done & (hi_a - lo_a > eps[act])]
        vd = vd.reshape(u.shape)
        return -mtj_current(-vd, s, r_p, tmr0, v_h, derivative=False)[0]

    def estimate_terms(self):
        """(C1, C2, C3), each (rows, cols): the linearization error of the column currents is
        estimated as v @ C1 + v^2 @ C2 + v^3 @ C3 (a cell's row-to-bit current reaches the
        column's sense)."""
        if self._est is None:
            R, C = self.spec.rows, self.spec.cols
            n = self.cell_s.size
            # every cell in both states in one solve: a flipped cell's terms are then ready
            # for the low-rank views of this system (no per-view solve of a few cells)
            both = np.concatenate([np.arange(n), np.arange(n)])
            c = self.cell_poly(both, np.concatenate([self.cell_s, 1 - self.cell_s]))[:, :n]
            self._est = tuple(c[k].reshape(R, C) for k in range(3))
        return self._est

    def cell_poly(self, cells: np.ndarray, s: np.ndarray) -> np.ndarray:
        """``nonlinearity_poly(cells, s)`` (3, k) for states s in {0, 1}, kept per (cell,
        state): the reference point is this system's, so a cell that flips (a low-rank view)
        reuses what an earlier view of the same flip computed."""
        cache = self._poly
        if cache is None:
            cache = self._poly = np.full((2, self.cell_s.size, 3), np.nan)
        si = np.asarray(s).astype(np.intp)
        c = cache[si, cells]                                      # (k, 3)
        miss = np.flatnonzero(np.isnan(c[:, 0]))
        if miss.size:
            c[miss] = self.nonlinearity_poly(cells[miss], np.asarray(s, float)[miss]).T
            cache[si[miss], cells[miss]] = c[miss]
        return c.T


class _Flipped:
    """A state that differs from a factored base state (``_MaskSystem``) in a few cells.

    Each flipped MTJ changes the linearized nodal matrix by a rank-1 term,
    K' = K + E D E^T (E: +1 at the cell's t node, -1 at b; D: the change of its linearized
    conductance at the base reference point), so K'^-1 r = y - W Cap^-1 D E^T y with
    y = K^-1 r, W = K^-1 E (cached per cell by the base) and Cap = I + D E^T W (k x k).
    The residual is the base one plus the flipped cells' current change, so refined answers
    are exact for the new state; the effective matrix gets the same low-rank correction."""

    def __init__(self, base: _MaskSystem, cells: np.ndarray, s_new: np.ndarray):
        self.base = base
        self.cells = cells
        self.s_new = s_new.astype(float)
        self.s_old = base.cell_s[cells]
        for name in ("spec", "n_free", "n_all", "sense", "ordered", "one_t", "mtj_t", "mtj_b",
                     "fixed_src", "K_fc", "O_f", "O_c", "bias_v", "x_ref"):
            setattr(self, name, getattr(base, name))
        x = base.x_ref
        self.v_ref = x[base.mtj_t[cells]] - x[base.mtj_b[cells]]
        self.dg = (self._g(self.v_ref, self.s_new) - self._g(self.v_ref, self.s_old))
        # the flipped cells' incidences as index arrays, for the per-iteration products
        # (E_f, E: the sparse matrices, made when a rarely used method asks)
        self._t, self._b = base.mtj_t[cells], base.mtj_b[cells]
        ft, fb = base.free_t[cells], base.free_b[cells]
        self._ft_k, self._fb_k = np.flatnonzero(ft >= 0), np.flatnonzero(fb >= 0)
        self._ft, self._fb = ft[self._ft_k], fb[self._fb_k]
        self._rp, self._tmr0, self._vh = (a[cells][:, None] for a in (
            base.cell_r_p, base.cell_tmr0, base.cell_v_h))
        self.W = base.flip_columns(cells)
        k = cells.size
        self.cap = np.eye(k) + self.dg[:, None] * self._et_free(self.W)
        # K'^-1 r = y - W Cap^-1 D E_f^T y: W Cap^-1 D once per view
        self._WCD = self.W @ np.linalg.solve(self.cap, np.diag(self.dg))
        self._M = None
        self._est = None

    @functools.cached_property
    def E_f(self):
        return self.base.incidence_free(self.cells)

    @functools.cached_property
    def E(self):
        return self.base.incidence_all(self.cells)

    @functools.cached_property
    def _e_sense(self):
        """E[sense] dense (cols, k)."""
        sn = self.sense[:, None]
        return (sn == self._t[None, :]).astype(float) - (sn == self._b[None, :])

    def _e_free_times(self, z):
        """E_f z (n_free, batch) for z (k, batch)."""
        out = np.zeros((self.n_free, z.shape[1]))
        np.add.at(out, self._ft, z[self._ft_k])
        np.add.at(out, self._fb, -z[self._fb_k])
        return out

    def _et_free(self, y):
        """E_f^T y (k, batch) for y (n_free, batch): y at each cell's free t minus free b."""
        out = np.zeros((self.cells.size, y.shape[1]))
        out[self._ft_k] = y[self._ft]
        out[self._fb_k] -= y[self._fb]
        return out

    def _g(self, v, s):
        b, c = self.base, self.cells
        return mtj_conductance_s(v, s, b.cell_r_p[c], b.cell_tmr0[c], b.cell_v_h[c])

    def _i(self, v, s, derivative=False):
        b, c = self.base, self.cells
        return mtj_current(v, s[:, None], b.cell_r_p[c][:, None], b.cell_tmr0[c][:, None],
                           b.cell_v_h[c][:, None], derivative=derivative)

    @property
    def lu(self):
        return self.base.lu

    def fixed_values(self, v_in):
        return self.base.fixed_values(v_in)

    def cell_voltages(self, x):
        return self.base.cell_voltages(x)

    def solve(self, rhs, trans: str = "N"):
        y = self.base.solve(rhs, trans)
        if trans != "N":                     # K' is symmetric, but keep the general form
            z = np.linalg.solve(self.cap, self.dg[:, None] * self._et_free(y))
            return y - self.W @ z
        return y - self._WCD @ self._et_free(y)

    def residual(self, x):
        v = x[self._t] - x[self._b]
        di = (mtj_conductance_s(v, self.s_new[:, None], self._rp, self._tmr0, self._vh)
              - mtj_conductance_s(v, self.s_old[:, None], self._rp, self._tmr0, self._vh)) * v
        out = self.base.residual(x)
        np.add.at(out, self._t, di)
        np.add.at(out, self._b, -di)
        return out

    def output_current(self, x, res=None):
        if self.spec.sense is SenseKind.VIRTUAL_GROUND:
            if res is None:
                res = self.residual(x)
            return -res[self.sense].T
        return x[self.sense].T / self.spec.r_sense_ohm

    def jacobian_free(self, x):
        v = x[self.mtj_t[self.cells]] - x[self.mtj_b[self.cells]]
        dd = self._i(v[:, None], self.s_new, True)[1][:, 0] - \
            self._i(v[:, None], self.s_old, True)[1][:, 0]
        return sp.csc_matrix(self.base.jacobian_free(x)
                             + self.E_f @ sp.diags(dd) @ self.E_f.T)

    def _lin_extra(self, x):
        """Current of the extra conductances D (E^T x), (k, batch)."""
        return self.dg[:, None] * (x[self._t] - x[self._b])

    def linear_output(self, x):
        out = self.base.linear_output(x)
        if self.spec.sense is SenseKind.VIRTUAL_GROUND:
            out = out - (self._e_sense @ self._lin_extra(x)).T
        return out

    def linear_solution(self, v_in):
        x = np.zeros((self.n_all, v_in.shape[0]))
        nf = self.n_free
        x[nf:] = self.fixed_values(v_in)
        rhs = np.asarray(self.K_fc @ x[nf:]) + self._e_free_times(self._lin_extra(x))
        if nf:
            x[:nf] = -self.solve(rhs)
        return x

    def effective_matrix(self):
        """M' = M + Q Cap^-1 D P: Q (cols, k) output response to a unit current through each
        flipped cell, P (k, rows) the cells' voltage response to the inputs (K symmetric)."""
        if self._M is None:
            b = self.base
            T = b.input_map()
            Q = -np.asarray(b.O_f @ self.W)
            if self.spec.sense is SenseKind.VIRTUAL_GROUND:
                Q = Q - self._e_sense
            T_all = np.zeros((self.n_all, T.shape[1]))
            T_all[self.n_free:] = T
            P = (T_all[self._t] - T_all[self._b]) - np.asarray((b.K_fc.T @ self.W).T @ T)
            self._M = b.effective_matrix() + Q @ np.linalg.solve(self.cap, self.dg[:, None] * P)
        return self._M

    def estimate_terms(self):
        if self._est is None:
            b = self.base
            R, C = self.spec.rows, self.spec.cols
            est = [t.copy().ravel() for t in b.estimate_terms()]
            c = b.cell_poly(self.cells, self.s_new)
            for k in range(3):
                est[k][self.cells] = c[k]
            self._est = tuple(t.reshape(R, C) for t in est)
        return self._est



def _factor(K, ordered: bool):
    """Sparse LU of a nodal matrix. ``ordered``: the unknowns are already numbered in a
    fill-reducing order (nested dissection), so keep it and prefer diagonal pivots (nodal
    matrices are close to diagonally dominant); otherwise let SuperLU order them: MMD on
    A^T + A suits the structurally symmetric matrix (~25 % less fill than its default
    COLAMD on crossbars, measured)."""
    try:
        if ordered:
            return spla.splu(K, permc_spec="NATURAL", diag_pivot_thresh=0.01)
        return spla.splu(K, permc_spec="MMD_AT_PLUS_A")
    except RuntimeError as e:
        raise RuntimeError(f"fast engine: the nodal matrix of the read is singular ({e}); "
                           "a node has no DC path to a source or to ground") from e


def _state_key(xbar: Crossbar):
    """What a factorization depends on: spec, states and per-cell devices."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(xbar.states, dtype=np.int8).tobytes())
    for arr in (xbar.cells.r_p_ohm, xbar.cells.tmr0, xbar.cells.v_h_v):
        h.update(np.ascontiguousarray(arr, dtype=float).tobytes())
    return (xbar.spec, h.hexdigest())


def as_fast_inputs(v_in, rows: int) -> np.ndarray:
    """(rows,) or (batch, rows) volts, NaN = floating row. Unlike ngspice's batched read, the
    floating rows may differ from vector to vector (vectors are grouped by their pattern)."""
    v = np.asarray(v_in, dtype=float)
    if v.ndim == 1:
        v = v[None, :]
    if v.ndim != 2 or v.shape[1] != rows:
        raise ValueError(f"v_in shape {np.shape(v_in)}: must be (rows,) or (batch, rows) with "
                         f"rows = {rows}")
    if v.shape[0] == 0:
        raise ValueError("v_in: batch must hold at least one input vector")
    if np.isinf(v).any():
        raise ValueError("v_in: voltages must be finite (NaN = floating row)")
    return v


class FastReadEngine:
    """Reads of one Crossbar with the factorizations cached.

    The cache is keyed on (spec, per-cell devices) and the states are compared at every read:
    a state that differs from the factored one in at most ``max_low_rank`` cells is solved as
    a low-rank update of that factorization (exact after refinement, as a refactorization
    would be); more flips refactor at the new state. ``invalidate()`` drops everything.
    ``n_factorizations`` counts builds of a linearized matrix and its LU (one per floating
    pattern and factored state; two with ``bias_v``: zero bias, then the read bias).

    ``bias_v``: where the devices are linearized. ``None`` or 0: zero bias. A read bias
    (e.g. 0.1 V, the inputs' typical magnitude): secant conductances at the operating point
    of every driven row at ``bias_v`` (found with the zero-bias network), so the linear map
    is exact there: the LINEAR answer of binary inputs at ``bias_v`` is close to the exact
    one, and the chord refinement needs fewer iterations.

    ``tol_rel``: convergence tolerance on the column currents, relative to the largest column
    current of the vector (plus ``abstol_a``); ``tol_v``: on the node voltages, V.
    ``max_iter``: refinement iterations per vector (chord and Newton together).
    ``linear_tol``: ReadMode.CHECKED refines the vectors whose estimated linearization error
    exceeds this fraction of their largest column current. The estimate: a per-cell
    polynomial model of each device's deviation from its secant at the cell's row input
    (matrix products), plus twice the largest error it failed to explain on ``n_check``
    vectors of the batch that are solved exactly (those come back exact, ``refined`` False).
    ``sample_tol``: solve those ``n_check`` vectors only to this tolerance (relative to their
    largest column current, and times their largest input on the node voltages) instead of
    ``tol_rel``/``tol_v``; they then come back within ~``sample_tol`` of the exact answer.
    Meant for ``sample_tol << linear_tol`` (``engine_options`` takes ``linear_tol / 100``): the
    error they measure is then known far more closely than the tolerance it is compared with,
    and the chord needs ~2 iterations instead of ~9. None (default): exact. The vectors
    flagged for refinement are always solved to ``tol_rel``/``tol_v``.

    ``solver``: ``"lu"`` (default) solves every read with the sparse LU above. ``"lines"``:
    EXACT reads of up to ``LINES_MAX_BATCH`` vectors of a passive array with wire resistance go
    to the line-relaxation solver (``mtjsim.engines.fast_lines``: block SOR between the row and
    bit lines, one tridiagonal LAPACK solve per layer and sweep, warm-started from this
    engine's previous read, no factorization of the network), the fastest exact read of a
    training-like sequence (a few flips and a new input vector per read); ``FastRead.iterations``
    then counts sweeps. Anything else, and any vector the line solver does not converge on
    within ``max_iter`` sweeps, takes the LU path.
    """

    LINES_MAX_BATCH = 8

    def __init__(self, xbar: Crossbar, *, tol_rel: float = 1e-10, tol_v: float = 1e-9,
                 abstol_a: float = 1e-15, max_iter: int = 100, max_chord_iter: int = 60,
                 chord_rate_limit: float = 0.5, bias_v: float | None = None,
                 max_low_rank: int = 48, linear_tol: float = 1e-3, n_check: int = 2,
                 sample_tol: float | None = None, solver: str = "lu"):
        if solver not in ("lu", "lines"):
            raise ValueError(f"solver={solver!r}: must be 'lu' or 'lines'")
        self.solver = solver
        self._lines: fast_lines.LineSolver | None = None
        self.xbar = xbar
        self.n_check = max(1, int(n_check))
        if sample_tol is not None and not 0 < sample_tol < 1:
            raise ValueError(f"sample_tol={sample_tol!r}: must be within (0, 1) or None")
        self.sample_tol = None if sample_tol is None else float(sample_tol)
        self.tol_rel, self.tol_v, self.abstol_a = tol_rel, tol_v, abstol_a
        self.max_iter, self.max_chord_iter = max_iter, max_chord_iter
        self.chord_rate_limit = chord_rate_limit
        self.bias_v = float(bias_v or 0.0)
        if self.bias_v < 0 or self.bias_v > 5:
            raise ValueError(f"bias_v={bias_v!r}: must be within 0..5 V (0 or None: zero bias)")
        self.max_low_rank = int(max_low_rank)
        self.linear_tol = float(linear_tol)
        self.n_factorizations = 0
        self._key = None
        self._topo = None
        self._systems: dict[bytes, _MaskSystem] = {}

    def invalidate(self) -> None:
        """Forget every factorization (the next read rebuilds)."""
        self._key = None
        self._topo = None
        self._systems.clear()
        self._lines = None

    def _build(self, floating: np.ndarray) -> _MaskSystem:
        sysm = _MaskSystem(self._topo, self.xbar, floating)
        self.n_factorizations += 1
        if self.bias_v > 0 and sysm.n_free:
            # operating point with every driven row at bias_v, from the zero-bias network
            # (one linear solve: its cell voltages are within ~1 % of the exact ones)
            v = np.where(floating, np.nan, self.bias_v)[None, :]
            x_ref = sysm.linear_solution(v)[:, 0]
            sysm.linearize(x_ref, self.bias_v)
            self.n_factorizations += 1
        return sysm

    def _check_devices(self) -> None:
        """Drop everything cached when the spec or the per-cell devices changed (compared by
        value: a hash of the per-cell arrays cost ~0.5 ms per read at 128x128)."""
        c = self.xbar.cells
        now = (self.xbar.spec, c.r_p_ohm, c.tmr0, c.v_h_v)
        if self._key is None or self._key[0] != now[0] or not all(
                np.array_equal(a, b) for a, b in zip(self._key[1:], now[1:])):
            self.invalidate()
            self._key = (now[0],) + tuple(np.array(a, dtype=float) for a in now[1:])

    def _system(self, floating: np.ndarray):
        """(system, factorized, flipped cells): the base system of this floating pattern, or a
        low-rank view of it when the states differ from the factored ones in a few cells."""
        self._check_devices()
        if self._topo is None:
            self._topo = _topology(self.xbar.spec)
        mk = np.packbits(floating).tobytes() + bytes([floating.size % 8])
        sysm = self._systems.get(mk)
        states = np.asarray(self.xbar.states, np.int8).ravel()
        if sysm is not None:
            diff = np.flatnonzero(states != sysm.states_i8)
            if diff.size == 0:
                return sysm, False, 0
            if diff.size <= self.max_low_rank:
                view = sysm.views.get(diff.tobytes())
                if view is None:
                    view = _Flipped(sysm, diff, states[diff])
                    sysm.views = {diff.tobytes(): view}      # keep the latest view only
                return view, False, diff.size
        sysm = self._build(floating)
        sysm.views = {}
        self._systems[mk] = sysm
        return sysm, True, 0

    @property
    def linear_network(self) -> bool:
        """True when every device is linear (passive array, cells in P or tmr0 == 0)."""
        return self.xbar.spec.kind is ArrayKind.PASSIVE and bool(
            np.all((self.xbar.states == 0) | (np.asarray(self.xbar.cells.tmr0) == 0)))

    def effective_matrix(self, floating=None) -> np.ndarray:
        """M (cols x rows), i_out_a = M @ v_in for the network linearized at ``bias_v`` with
        the given rows floating (bool (rows,), default none). Exact for a linear network."""
        R = self.xbar.spec.rows
        fl = np.zeros(R, bool) if floating is None else np.asarray(floating, bool)
        with one_blas_thread():
            return self._system(fl)[0].effective_matrix().copy()

    def read(self, v_in, *, mode: ReadMode = ReadMode.EXACT, cell_voltages: bool = True,
             max_iter: int | None = None) -> FastRead:
        """Solve reads for ``v_in`` ((rows,) or (batch, rows) volts, NaN = floating row).

        EXACT: linear answer, then chord/Newton refinement of the vectors that need it;
        raises FastReadConvergenceError when a vector does not converge in max_iter.
        LINEAR: the linear map only (``i_out = M v``, devices linearized at ``bias_v``), exact
        for a linear network. CHECKED: the linear map, an a-posteriori estimate of each
        vector's linearization error (``FastRead.error_estimate``), and exact refinement of
        the vectors whose estimate exceeds ``linear_tol`` (``FastRead.refined``).
        ``cell_voltages=False`` skips v_cell_v (then a LINEAR read is a pure matrix product).
        """
        if not isinstance(mode, ReadMode):
            raise ValueError(f"mode={mode!r}: must be one of {[m.value for m in ReadMode]}")
        # one BLAS thread: the dense products here are small (Woodbury corrections, M v) and
        # multithreaded OpenBLAS made them 5-20x slower on this 2-core machine under load
        with one_blas_thread():
            return self._read(v_in, mode, cell_voltages, max_iter)

    def _read(self, v_in, mode, cell_voltages, max_iter) -> FastRead:
        spec = self.xbar.spec
        v = as_fast_inputs(v_in, spec.rows)
        max_iter = self.max_iter if max_iter is None else int(max_iter)
        B, R, C = v.shape[0], spec.rows, spec.cols
        if (self.solver == "lines" and mode is ReadMode.EXACT and B <= self.LINES_MAX_BATCH
                and fast_lines.supported(spec)):
            res = self._read_lines(v, cell_voltages, max_iter)
            if res is not None:
                return res
        t0 = time.perf_counter()
        i_out = np.zeros((B, C))
        v_cell = np.zeros((B, R, C)) if cell_voltages else None
        iters = np.zeros(B, int)
        newton = np.zeros(B, bool)
        step_v = np.zeros(B)
        estimate = np.zeros(B)
        refined = np.zeros(B, bool)
        factorized = False
        low_rank = 0
        linear = self.linear_network
        timings = {"factor_s": 0.0, "linear_s": 0.0, "refine_s": 0.0}
        floating = np.isnan(v)
        if floating.any():
            patterns, which = np.unique(floating, axis=0, return_inverse=True)
        else:                          # the common case, without unique's sort of the batch
            patterns, which = np.zeros((1, R), bool), np.zeros(B, int)
        for p, pattern in enumerate(patterns):
            sel = np.flatnonzero(which.ravel() == p)
            t1 = time.perf_counter()
            sysm, new, nflip = self._system(pattern)
            factorized |= new
            low_rank = max(low_rank, nflip)
            t2 = time.perf_counter()
            timings["factor_s"] += t2 - t1
            vs = v[sel]
            exact = mode is ReadMode.EXACT and not linear
            if mode is ReadMode.CHECKED:
                vz = np.nan_to_num(vs)
                i_lin = vz @ sysm.effective_matrix().T
                i_out[sel] = i_lin
                if not linear:
                    c1, c2, c3 = sysm.estimate_terms()
                    err = np.abs(vz @ c1 + (vz * vz) @ c2 + (vz * vz * vz) @ c3).max(axis=1)
                    scale = np.abs(i_lin).max(axis=1) + self.abstol_a
                    est = err / scale
                    # The per-cell estimate misses how the wire and driver drops (hence the
                    # cells' operating points) move with the input pattern, which dominates
                    # on big arrays. Solve a few vectors exactly (largest estimate, largest
                    # drive) and add twice the largest unexplained error to every estimate.
                    samp = np.unique([int(np.argmax(est)), int(np.argmax(np.abs(vz).sum(1))),
                                      0])[:self.n_check]
                    xs = sysm.linear_solution(vs[samp])
                    tol = None
                    if self.sample_tol is not None:
                        tr = max(self.sample_tol, self.tol_rel)
                        tol = (tr, max(self.tol_v, tr * float(np.abs(vz[samp]).max())))
                    i_s = self._refine(sysm, xs, sel[samp], max_iter, tol, return_i=True)[3]
                    actual = np.abs(i_s - i_lin[samp]).max(axis=1) / scale[samp]
                    excess = max(float((actual - est[samp]).max()), 0.0)
                    estimate[sel] = est + 2 * excess
                    estimate[sel[samp]] = actual
                    refined[sel] = estimate[sel] > self.linear_tol
                    refined[sel[samp]] = False
                    i_out[sel[samp]] = i_s
                    iters[sel[samp]] = 1
                timings["linear_s"] += time.perf_counter() - t2
                if not cell_voltages and not refined[sel].any():
                    continue
                exact = not linear
            if mode is ReadMode.LINEAR and not cell_voltages:
                i_out[sel] = np.nan_to_num(vs) @ sysm.effective_matrix().T
                timings["linear_s"] += time.perf_counter() - t2
                continue
            if mode is ReadMode.CHECKED and not cell_voltages:
                sub = sel[refined[sel]]          # only the flagged vectors are solved
            else:
                sub = sel
            t2 = time.perf_counter()
            x = sysm.linear_solution(v[sub])
            t3 = time.perf_counter()
            timings["linear_s"] += t3 - t2
            if exact:
                if mode is ReadMode.CHECKED:
                    keep = refined[sub]
                    if keep.any():
                        xs = x[:, keep]
                        it, nw, st = self._refine(sysm, xs, sub[keep], max_iter)
                        x[:, keep] = xs
                        iters[sub[keep]], newton[sub[keep]], step_v[sub[keep]] = it, nw, st
                else:
                    it, nw, st = self._refine(sysm, x, sub, max_iter)
                    iters[sub], newton[sub], step_v[sub] = it, nw, st
                timings["refine_s"] += time.perf_counter() - t3
            if mode is ReadMode.LINEAR:
                # the linearized network's own output (= M v), not the nonlinear KCL
                i_out[sub] = sysm.linear_output(x)
            elif mode is ReadMode.CHECKED:
                keep = refined[sub]
                if keep.any():
                    i_out[sub[keep]] = sysm.output_current(x[:, keep])
            else:
                i_out[sub] = sysm.output_current(x)
            if cell_voltages:
                v_cell[sub] = sysm.cell_voltages(x).T.reshape(-1, R, C)
        timings["total_s"] = time.perf_counter() - t0
        return FastRead(i_out_a=i_out, v_cell_v=v_cell, v_in_v=v, iterations=iters,
                        newton=newton, converged=mode is ReadMode.EXACT or linear,
                        linear_network=linear, mode=mode,
                        step_v=step_v, factorized=factorized, timings_s=timings,
                        low_rank=low_rank, error_estimate=estimate, refined=refined)

    def _read_lines(self, v, cell_voltages, max_iter) -> FastRead | None:
        """Every vector with the line solver, each warm-started from the previous solution;
        None (the caller takes the LU path) when one does not converge."""
        t0 = time.perf_counter()
        c = self.xbar.cells
        if self._lines is None or not self._lines.matches(self.xbar.spec, c.r_p_ohm, c.tmr0,
                                                          c.v_h_v):
            self._lines = fast_lines.LineSolver(self.xbar.spec, c.r_p_ohm, c.tmr0, c.v_h_v)
        B, (R, C) = v.shape[0], self.xbar.spec.shape
        i_out = np.zeros((B, C))
        v_cell = np.zeros((B, R, C)) if cell_voltages else None
        sweeps = np.zeros(B, int)
        step_v = np.zeros(B)
        for b in range(B):
            sol = self._lines.solve(self.xbar.states, v[b], tol_rel=self.tol_rel,
                                    tol_v=self.tol_v, abstol_a=self.abstol_a,
                                    max_sweeps=max_iter)
            if not sol.converged:
                return None
            i_out[b], sweeps[b], step_v[b] = sol.i_out_a, sol.sweeps, sol.step_v
            if cell_voltages:
                v_cell[b] = sol.cell_voltages()
        dt = time.perf_counter() - t0
        return FastRead(i_out_a=i_out, v_cell_v=v_cell, v_in_v=v, iterations=sweeps,
                        newton=np.zeros(B, bool), converged=True,
                        linear_network=self.linear_network, mode=ReadMode.EXACT,
                        step_v=step_v, factorized=False,
                        timings_s={"factor_s": 0.0, "linear_s": 0.0, "refine_s": dt,
                                   "lines_s": dt, "total_s": dt})

    # --- nonlinear refinement -----------------------------------------------------------------
    def _tol_a(self, i_out, tol_rel=None):
        tol_rel = self.tol_rel if tol_rel is None else tol_rel
        return tol_rel * np.abs(i_out).max(axis=1) + self.abstol_a

    def _refine(self, sysm: _MaskSystem, x, batch_idx, max_iter, tol=None,
                return_i: bool = False):
        """Refine node voltages x (n_all, batch) in place from the linear answer.

        Chord iterations x <- x - K^-1 F(x) on all vectors at once: the LU of the zero-bias
        matrix K is reused, so an iteration costs one residual and one triangular solve per
        vector. A vector whose contraction rate exceeds chord_rate_limit, or that is still
        unconverged after max_chord_iter, continues with damped Newton. ``tol``: (tol_rel,
        tol_v) instead of the engine's. ``return_i``: also return the column currents
        (batch, cols) at the refined x (as ``sysm.output_current(x)``)."""
        tol_rel, tol_v = (self.tol_rel, self.tol_v) if tol is None else tol
        B, nf = x.shape[1], sysm.n_free
        iters = np.zeros(B, int)
        newton = np.zeros(B, bool)           # vectors that ran Newton iterations
        to_newton = np.zeros(B, bool)
        step_v = np.zeros(B)
        step_a = np.zeros(B)
        if nf == 0:                          # every node held by a source: nothing to solve
            if return_i:
                return iters, newton, step_v, sysm.output_current(x)
            return iters, newton, step_v
        res = sysm.residual(x)
        i_prev = sysm.output_current(x, res)
        prev_step = np.full(B, np.inf)
        active = np.arange(B)
        k = 0
        while active.size and k < min(self.max_chord_iter, max_iter):
            k += 1
            every = active.size == B         # avoid fancy-index copies while all iterate
            xa = x if every else x[:, active]
            dx = -sysm.solve(res[:nf] if every else res[:nf, active])
            xa[:nf] += dx
            if not every:
                x[:, active] = xa
            res_a = sysm.residual(xa)
            i_new = sysm.output_current(xa, res_a)
            sv = np.abs(dx).max(axis=0)
            sa = np.abs(i_new - i_prev[active]).max(axis=1)
            rate = sv / prev_step[active]
            # a chord converges linearly: the remaining error is ~ rate/(1-rate) * last step
            with np.errstate(divide="ignore", invalid="ignore"):
                amp = np.where(rate < 1, np.maximum(1.0, rate / (1 - rate)), np.inf)
            done = (sv * amp <= tol_v) & (sa * amp <= self._tol_a(i_new, tol_rel))
            if every:
                res = res_a
            else:
                res[:, active] = res_a
            i_prev[active] = i_new
            iters[active] += 1
            step_v[active], step_a[active], prev_step[active] = sv, sa, sv
            slow = (k >= 2) & (rate > self.chord_rate_limit) & ~done
            to_newton[active[slow]] = True
            active = active[~done & ~slow]
        # what the chord left (too slow, or out of chord iterations) goes to damped Newton
        to_newton[active] = True
        failed = []
        for b in np.flatnonzero(to_newton):
            budget = max_iter - iters[b]
            ok = False
            if budget > 0:
                newton[b] = True
                ok, n_it, step_v[b], step_a[b] = self._newton(sysm, x, b, budget, tol_rel,
                                                              tol_v)
                iters[b] += n_it
            if not ok:
                failed.append(b)
        if failed:
            failed = np.array(failed)
            tol_a = self._tol_a(sysm.output_current(x[:, failed]), tol_rel)
            w = int(np.argmax(np.maximum(step_v[failed] / tol_v, step_a[failed] / tol_a)))
            worst = failed[w]
            raise FastReadConvergenceError(
                f"fast_read: {failed.size} of {B} input vector(s) did not converge within "
                f"max_iter={max_iter} iterations (first: vector {batch_idx[failed[0]]}); worst "
                f"(vector {batch_idx[worst]}): last node-voltage step {step_v[worst]:.3g} V "
                f"(tolerance {tol_v:.3g} V), last column-current change "
                f"{step_a[worst]:.3g} A (tolerance {tol_a[w]:.3g} A). Raise max_iter, loosen "
                "tol_rel/tol_v, or check the inputs (|V| >> V_h makes the TMR roll-off "
                "strongly nonlinear).",
                vectors=batch_idx[failed], iterations=max_iter, step_v=step_v[failed],
                step_a=step_a[failed], tol_v=tol_v, tol_a=tol_a)
        if return_i:
            nw = np.flatnonzero(newton)
            if nw.size:
                i_prev[nw] = sysm.output_current(x[:, nw])
            return iters, newton, step_v, i_prev
        return iters, newton, step_v

    def _newton(self, sysm: _MaskSystem, x_all, b, max_iter, tol_rel=None, tol_v=None,
                max_step_v=0.5):
        """Damped Newton on vector b of x_all (in place): Jacobian refactored every iteration,
        node steps limited to max_step_v, halved while the residual norm grows."""
        tol_v = self.tol_v if tol_v is None else tol_v
        nf = sysm.n_free
        x = x_all[:, b].copy()
        res = sysm.residual(x[:, None])[:, 0]
        i_prev = sysm.output_current(x[:, None], res[:, None])
        sv = sa = np.inf
        for it in range(1, max_iter + 1):
            try:
                dx = -_factor(sysm.jacobian_free(x), sysm.ordered).solve(res[:nf])
            except RuntimeError:             # singular Jacobian (e.g. all off): chord step
                dx = -sysm.solve(res[:nf, None])[:, 0]
            big = np.abs(dx).max()
            t = min(1.0, max_step_v / big) if big > 0 else 1.0
            norm0 = np.abs(res[:nf]).max()
            for _ in range(30):
                x_try = x.copy()
                x_try[:nf] += t * dx
                res_try = sysm.residual(x_try[:, None])[:, 0]
                # near the solution the residual is rounding noise: take small steps as they are
                if big <= tol_v or np.abs(res_try[:nf]).max() <= norm0 or t < 1e-6:
                    break
                t *= 0.5
            x, res = x_try, res_try
            i_new = sysm.output_current(x[:, None], res[:, None])
            sv, sa = t * big, np.abs(i_new - i_prev).max()
            i_prev = i_new
            # quadratic convergence: after a small full step the error is far smaller still
            if t == 1.0 and big <= tol_v and sa <= self._tol_a(i_new, tol_rel)[0]:
                x_all[:, b] = x
                return True, it, sv, sa
        x_all[:, b] = x
        return False, max_iter, sv, sa


# --- module-level convenience with a small cache of engines ------------------------------
_ENGINES: OrderedDict = OrderedDict()     # serial -> (engine, options)
_CACHE_SIZE = 8
_SERIAL = itertools.count()


def fast_read(xbar: Crossbar, v_in, *, mode: ReadMode = ReadMode.EXACT,
              cell_voltages: bool = True, max_iter: int | None = None, **options) -> FastRead:
    """Read ``xbar`` with the fast engine. ``v_in``: (rows,) or (batch, rows) volts, NaN =
    floating row. ``options``: FastReadEngine's keywords (tolerances, ``bias_v``,
    ``max_low_rank``, ``linear_tol``, ``solver``).

    The engines of the last few arrays are kept: the engine that last read this Crossbar
    object (its states may have changed since: a few flips are a low-rank update of its
    factorization), else one whose array has the same content (hashed only on that miss)."""
    opts = tuple(sorted(options.items()))
    pick = next((k for k, (eng, eopts) in reversed(_ENGINES.items())
                 if eopts == opts and eng.xbar is xbar), None)
    if pick is None:
        key = _state_key(xbar)
        pick = next((k for k, (eng, eopts) in reversed(_ENGINES.items())
                     if eopts == opts and _state_key(eng.xbar) == key), None)
        if pick is not None:
            _ENGINES[pick][0].xbar = xbar              # same content, another object
    if pick is None:
        pick = next(_SERIAL)
        _ENGINES[pick] = (FastReadEngine(xbar, **options), opts)
        while len(_ENGINES) > _CACHE_SIZE:
            _ENGINES.popitem(last=False)
    _ENGINES.move_to_end(pick)
    return _ENGINES[pick][0].read(v_in, mode=mode, cell_voltages=cell_voltages,
                                  max_iter=max_iter)


def clear_cache() -> None:
    """Drop the engines kept by ``fast_read``."""
    _ENGINES.clear()
