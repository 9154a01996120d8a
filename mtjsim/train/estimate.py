"""Cell currents during the pulses of a column-parallel write, from a DC solve of each pulse.

Training asks for switching probabilities; a pulse width realizes one only if we know the
current the circuit drives through each target device. This module solves, for every pulse
of a column-parallel program, the DC network of that pulse's line levels (the levels of
``mtjsim.ops.write.line_levels``) with the devices of ``Crossbar.cells``:

* passive: every row line (driver ``r_driver_ohm``, ``cols`` segments of ``r_wire_ohm``),
  every bit line (driven at its bottom end), every MTJ (``G(V, s)`` of models/mtj_stt.lib);
  half-selected cells and sneak currents are in the solve;
* 1T1R: the selected column only (other cells of the selected rows sit at 0 V bias and the
  other gates are off): its bit line, and per selected row the MTJ, the access NMOS (SPICE
  level 1 of models/nmos.lib, symmetric, gate at ``v_gate_write_v``) and the source line as
  one series resistance (driver + ``j + 1`` segments: it carries only that cell's current).

States may be fractional (``G = (1-s)/R_P + s/R_AP(V)``): the programs module passes the
expected state of cells that switch during the program (a mean-field view of the cells of a
column that flip part-way through their shared pulse).

Newton on all pulses at once (a block-diagonal sparse system), capacitors open. This is a
quasi-static estimate for choosing pulses, not an engine: the write itself is still solved
by ngspice or the fast engine.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from mtjsim.circuit.crossbar import ArrayKind, Crossbar
from mtjsim.engines.fast import mtj_current
from mtjsim.ops.write import PulseProgram, line_levels

R_MIN_OHM = 1e-3        # stands in for a 0-ohm wire or driver (SPICE merges those nodes)


def nmos_iv(v_d, v_s, v_g, beta, vto, lam):
    """SPICE level-1 drain current (drain -> source terminal as given) and its derivatives
    (dI/dv_d, dI/dv_s), symmetric: the lower-potential terminal acts as the source."""
    swap = v_d < v_s
    hi = np.where(swap, v_s, v_d)
    lo = np.where(swap, v_d, v_s)
    vds = hi - lo
    vgst = v_g - lo - vto
    on = vgst > 0
    lin = on & (vds < vgst)
    sat = on & ~lin
    f = np.zeros_like(vds)
    gm = np.zeros_like(vds)
    gds = np.zeros_like(vds)
    k = 1 + lam * vds
    f = np.where(lin, beta * (vgst - vds / 2) * vds * k, f)
    gm = np.where(lin, beta * vds * k, gm)
    gds = np.where(lin, beta * ((vgst - vds) * k + (vgst - vds / 2) * vds * lam), gds)
    f = np.where(sat, beta / 2 * vgst ** 2 * k, f)
    gm = np.where(sat, beta * vgst * k, gm)
    gds = np.where(sat, beta / 2 * vgst ** 2 * lam, gds)
    # f flows hi -> lo; d f/d v_hi = gds, d f/d v_lo = -gm - gds
    i = np.where(swap, -f, f)
    di_dd = np.where(swap, gm + gds, gds)
    di_ds = np.where(swap, -gds, -gm - gds)
    return i, di_dd, di_ds


class _Net:
    """A growing nodal description: linear conductances, fixed-voltage ties, devices."""

    def __init__(self):
        self.n = 0
        self.lin = []         # (a, b, g) arrays; b = -1 is a fixed voltage in tie_v
        self.ties = []        # (node, g, v_fixed)
        self.mtj = []         # (t, b, r_p, tmr0, v_h, s, tag)
        self.fet = []         # (d, s, v_g, tag)

    def nodes(self, k: int) -> np.ndarray:
        out = np.arange(self.n, self.n + k)
        self.n += k
        return out


def _as(x):
    return np.atleast_1d(np.asarray(x, dtype=float))


def pulse_currents(xbar: Crossbar, program: PulseProgram, states=None, *, frac: float = 1.0,
                   tol_v: float = 1e-9, max_iter: int = 60, return_voltage: bool = False):
    """Current through each MTJ (t -> b, amperes; SET drives it positive) during each pulse.

    Returns ``(n_pulses, rows, cols)`` (and the MTJ voltages t - b with ``return_voltage``);
    NaN where a cell is not part of the solved network (1T1R cells outside the pulse's
    column or with their gate off carry ~0 A).
    ``states``: (rows, cols) float states to solve with (default: ``xbar.states``), or
    (n_pulses, rows, cols) to give each pulse its own. ``frac``: every line (gates
    included) at that fraction of its level, as on a pulse's edges.
    """
    spec = xbar.spec
    rows, cols = spec.shape
    cells = xbar.cells
    pulses = program.pulses()
    s_all = np.asarray(xbar.states if states is None else states, dtype=float)
    if s_all.ndim == 2:
        s_all = np.broadcast_to(s_all, (len(pulses), rows, cols))
    g_w = 1.0 / max(spec.r_wire_ohm, R_MIN_OHM)
    g_d = 1.0 / max(spec.r_driver_ohm, R_MIN_OHM)
    net = _Net()
    passive = spec.kind is ArrayKind.PASSIVE
    tr = spec.transistor
    beta = tr.kp_a_per_v2 * tr.w_m / tr.l_m
    for p, (sel_rows, sel_cols) in enumerate(pulses):
        row_v, col_v, gate_v = (None if lv is None else frac * lv for lv in
                                line_levels(program, spec.kind, sel_rows, sel_cols))
        s = s_all[p]
        if passive:
            r_nodes = net.nodes(rows * (cols + 1)).reshape(rows, cols + 1)
            b_nodes = net.nodes(cols * (rows + 1)).reshape(cols, rows + 1)
            net.ties.append((r_nodes[:, 0], np.full(rows, g_d), row_v))
            net.ties.append((b_nodes[:, rows], np.full(cols, g_d), col_v))
            net.lin.append((r_nodes[:, :-1].ravel(), r_nodes[:, 1:].ravel(), g_w))
            net.lin.append((b_nodes[:, :-1].ravel(), b_nodes[:, 1:].ravel(), g_w))
            ii, jj = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
            t = r_nodes[ii, jj + 1].ravel()
            b = b_nodes[jj, ii].ravel()
            net.mtj.append((t, b, cells.r_p_ohm.ravel(), cells.tmr0.ravel(), cells.v_h_v.ravel(),
                            s.ravel(), (np.full(t.size, p), ii.ravel(), jj.ravel())))
        else:
            (j,) = np.flatnonzero(sel_cols)
            sel = np.flatnonzero(sel_rows & (gate_v > tr.vto_v))
            b_nodes = net.nodes(rows + 1)
            net.ties.append((b_nodes[rows:], np.array([g_d]), _as(col_v[j])))
            net.lin.append((b_nodes[:-1], b_nodes[1:], g_w))
            if sel.size == 0:
                continue
            d_nodes = net.nodes(sel.size)
            s_nodes = net.nodes(sel.size)
            g_sl = 1.0 / max(spec.r_driver_ohm + (j + 1) * spec.r_wire_ohm, R_MIN_OHM)
            net.ties.append((s_nodes, np.full(sel.size, g_sl), row_v[sel]))
            net.mtj.append((b_nodes[sel], d_nodes, cells.r_p_ohm[sel, j], cells.tmr0[sel, j],
                            cells.v_h_v[sel, j], s[sel, j],
                            (np.full(sel.size, p), sel, np.full(sel.size, j))))
            net.fet.append((d_nodes, s_nodes, gate_v[sel], None))
    i_a, v_v = _solve(net, len(pulses), rows, cols, beta, tr.vto_v, tr.lambda_per_v, tol_v,
                      max_iter)
    return (i_a, v_v) if return_voltage else i_a


def _solve(net: _Net, n_pulses, rows, cols, beta, vto, lam, tol_v, max_iter) -> np.ndarray:
    n = net.n
    a_l = np.concatenate([np.broadcast_to(a, np.shape(a)) for a, _, _ in net.lin])
    b_l = np.concatenate([b for _, b, _ in net.lin])
    g_l = np.concatenate([np.broadcast_to(g, np.shape(a)) for a, _, g in net.lin])
    tn = np.concatenate([x for x, _, _ in net.ties])
    tg = np.concatenate([g for _, g, _ in net.ties])
    tv = np.concatenate([_as(v) for _, _, v in net.ties])
    lin = sp.coo_matrix((np.concatenate([g_l, g_l, -g_l, -g_l, tg]),
                         (np.concatenate([a_l, b_l, a_l, b_l, tn]),
                          np.concatenate([a_l, b_l, b_l, a_l, tn]))), shape=(n, n)).tocsr()
    rhs = np.bincount(tn, weights=tg * tv, minlength=n)
    cat = (lambda k: np.concatenate([m[k] for m in net.mtj])) if net.mtj else None
    mt, mb, rp, tmr0, vh, ms = (cat(k) for k in range(6)) if net.mtj else ([],) * 6
    tags = [np.concatenate([m[6][k] for m in net.mtj]) for k in range(3)] if net.mtj else None
    if net.fet:
        fd = np.concatenate([f[0] for f in net.fet])
        fs = np.concatenate([f[1] for f in net.fet])
        fg = np.concatenate([_as(f[2]) for f in net.fet])
    else:
        fd = fs = fg = np.zeros(0, dtype=int)
    # Start: MTJs at zero-bias conductance, transistors as their on-resistance.
    g0 = (1 - ms) / rp + ms / (rp * (1 + tmr0)) if len(mt) else np.zeros(0)
    g_on = beta * np.maximum(fg - vto, 1e-3)
    k0 = lin + _stamp2(mt, mb, g0, n) + _stamp2(fd, fs, g_on, n)
    v = spla.spsolve(k0.tocsc(), rhs)
    for _ in range(max_iter):
        vm = v[mt] - v[mb]
        im, dm = mtj_current(vm, ms, rp, tmr0, vh)
        if len(fd):
            i_f, di_d, di_s = nmos_iv(v[fd], v[fs], fg, beta, vto, lam)
        else:
            i_f = di_d = di_s = np.zeros(0)
        f = lin @ v - rhs
        f += np.bincount(mt, weights=im, minlength=n) - np.bincount(mb, weights=im, minlength=n)
        f += np.bincount(fd, weights=i_f, minlength=n) - np.bincount(fs, weights=i_f, minlength=n)
        jac = lin + _stamp2(mt, mb, dm, n)
        if len(fd):
            jac = jac + sp.coo_matrix(
                (np.concatenate([di_d, di_s, -di_d, -di_s]),
                 (np.concatenate([fd, fd, fs, fs]), np.concatenate([fd, fs, fd, fs]))),
                shape=(n, n)).tocsr()
        dv = spla.spsolve(jac.tocsc(), -f)
        step = np.max(np.abs(dv)) if dv.size else 0.0
        if step > 0.2:
            dv *= 0.2 / step
        v += dv
        if step < tol_v:
            break
    out = np.full((n_pulses, rows, cols), np.nan)
    volt = np.full((n_pulses, rows, cols), np.nan)
    if tags is not None:
        vm = v[mt] - v[mb]
        im, _ = mtj_current(vm, ms, rp, tmr0, vh, derivative=False)
        out[tags[0], tags[1], tags[2]] = im
        volt[tags[0], tags[1], tags[2]] = vm
    return out, volt


def _stamp2(a, b, g, n):
    a = np.asarray(a, dtype=int)
    b = np.asarray(b, dtype=int)
    g = np.asarray(g, dtype=float)
    return sp.coo_matrix((np.concatenate([g, g, -g, -g]),
                          (np.concatenate([a, b, a, b]), np.concatenate([a, b, b, a]))),
                         shape=(n, n)).tocsr()
