"""An independent nodal solver for passive crossbar reads, written from the topology stated in
the issue (not from mtjsim's netlist): used by tests as the second path to the answer.

Word line i: driver (V_i, R_drv) -> one segment -> cell (i,0) -> segment -> ... (i,cols-1).
Bit line j: cell (0,j) -> segment -> ... -> (rows-1,j) -> segment -> sense (0 V or R_sense).
MTJ at (i,j) from word-line node (i,j) to bit-line node (i,j):
G = (1-s)/R_P + s/(R_P (1 + TMR0/(1 + (V/Vh)^2))).
"""

import math

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla


def r_p(diameter_m, ra_ohm_m2):
    return ra_ohm_m2 / (math.pi * diameter_m ** 2 / 4)


def mtj_g(v, s, rp, tmr0, vh):
    return (1 - s) / rp + s / (rp * (1 + tmr0 / (1 + (v / vh) ** 2)))


def mtj_dg(v, s, rp, tmr0, vh, h=1e-7):
    """d(I)/dV of I = G(V) V, numerically (the test needs no closed form)."""
    return ((v + h) * mtj_g(v + h, s, rp, tmr0, vh) - (v - h) * mtj_g(v - h, s, rp, tmr0, vh)) / (2 * h)


def solve_passive(states, v_in, rp, tmr0, vh, r_wire, r_drv, r_sense=0.0, tol=1e-13):
    """Bit-line currents into the sense for one input vector (NaN = floating row)."""
    rows, cols = states.shape
    # unknowns: word-line nodes (i, k) k=0..cols (k=0 driver output), bit-line nodes (j, k) k=0..rows
    # (k=rows the sense node; it is an unknown only with a sense resistor).
    wl = lambda i, k: i * (cols + 1) + k                      # noqa: E731
    nw = rows * (cols + 1)
    bl = lambda j, k: nw + j * (rows + 1) + k                 # noqa: E731
    n = nw + cols * (rows + 1)
    lin = sp.lil_matrix((n, n))
    rhs = np.zeros(n)

    def g(a, b, gval):
        lin[a, a] += gval
        if b is not None:
            lin[b, b] += gval
            lin[a, b] -= gval
            lin[b, a] -= gval

    for i in range(rows):
        if not np.isnan(v_in[i]):
            g(wl(i, 0), None, 1 / r_drv)
            rhs[wl(i, 0)] += v_in[i] / r_drv
        for k in range(cols):
            g(wl(i, k), wl(i, k + 1), 1 / r_wire)
    for j in range(cols):
        for k in range(rows):
            g(bl(j, k), bl(j, k + 1), 1 / r_wire)
        if r_sense > 0:
            g(bl(j, rows), None, 1 / r_sense)
        else:  # virtual ground: a huge conductance pins the node at 0 V
            g(bl(j, rows), None, 1e12)
    lin = lin.tocsr()
    a_idx = np.array([[wl(i, j + 1) for j in range(cols)] for i in range(rows)]).ravel()
    b_idx = np.array([[bl(j, i) for j in range(cols)] for i in range(rows)]).ravel()
    s = states.ravel().astype(float)
    x = spla.spsolve((lin + sp.eye(n) * 1e-15).tocsc(), rhs)
    for _ in range(100):  # Newton on the MTJ nonlinearity
        v = x[a_idx] - x[b_idx]
        i_cell = mtj_g(v, s, rp, tmr0, vh) * v
        gd = mtj_dg(v, s, rp, tmr0, vh)
        jac = lin.tolil()
        f = lin @ x - rhs
        np.add.at(f, a_idx, i_cell)
        np.add.at(f, b_idx, -i_cell)
        for a, b, gg in zip(a_idx, b_idx, gd):
            jac[a, a] += gg
            jac[b, b] += gg
            jac[a, b] -= gg
            jac[b, a] -= gg
        dx = spla.spsolve(jac.tocsc(), -f)
        x += dx
        if np.abs(dx).max() < tol:
            break
    sense = np.array([x[bl(j, rows)] for j in range(cols)])
    last = np.array([x[bl(j, rows - 1)] for j in range(cols)])
    return (last - sense) / r_wire, x
