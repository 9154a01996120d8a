"""DC solve of a crossbar with every line driven (the write network), for the fast engine's
quasi-static writes: the network of ``build_write_circuit`` with capacitors open.

Row lines: source ``v_row[i]`` behind ``r_driver_ohm`` (or ideal at the line's first node),
``cols`` wire segments. Bit lines: ``rows`` segments down to the bottom node, driven there by
``v_col[j]`` behind ``r_driver_ohm``. MTJs with the states given; 1T1R access NMOS with the
gate of row i at ``v_gate[i]`` (gate lines carry no DC current), using the same level-1 and
junction equations as the fast read engine (mtjsim.engines.fast).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from mtjsim.circuit.crossbar import Crossbar
from mtjsim.engines.fast import _stamp, _topology, junction_current, mtj_current, nmos_current


class FastSolveError(RuntimeError):
    """Newton did not converge on the write network."""


@dataclass
class Solution:
    x: np.ndarray              # all node voltages
    i_cell_a: np.ndarray       # (rows, cols) MTJ current t -> b
    v_cell_v: np.ndarray       # (rows, cols) MTJ voltage t - b
    power_w: dict              # delivered, array, wires, access, periphery
    iterations: int


class WriteNetwork:
    def __init__(self, xbar: Crossbar):
        spec = xbar.spec
        self.spec, self.cells = spec, xbar.cells
        topo = _topology(spec)
        self.topo = topo
        R, C = spec.rows, spec.cols
        n = topo.n_all
        self.one_t = topo.one_t
        lin_a, lin_b, lin_g, group = [], [], [], []
        if spec.r_wire_ohm > 0:
            gw = 1.0 / spec.r_wire_ohm
            lin_a += [topo.row[:, :-1].ravel(), topo.bit[:, :-1].ravel()]
            lin_b += [topo.row[:, 1:].ravel(), topo.bit[:, 1:].ravel()]
            lin_g += [np.full(2 * R * C, gw)]
            group += ["wires"] * (2 * R * C)
        if spec.r_driver_ohm > 0:
            col_src = n + np.arange(C)
            n += C
            gd = 1.0 / spec.r_driver_ohm
            lin_a += [topo.inp, col_src]
            lin_b += [topo.row[:, 0], topo.sense]
            lin_g += [np.full(R + C, gd)]
            group += ["periphery"] * (R + C)
            self.fixed = np.concatenate([topo.inp, col_src])
        else:
            self.fixed = np.concatenate([topo.row[:, 0], topo.sense])
        self.n = n
        self.lin_a = np.concatenate(lin_a) if lin_a else np.zeros(0, int)
        self.lin_b = np.concatenate(lin_b) if lin_b else np.zeros(0, int)
        self.lin_g = np.concatenate(lin_g) if lin_g else np.zeros(0)
        self.lin_group = np.array(group)
        r, c, v = _stamp(self.lin_a, self.lin_b, self.lin_g, n)
        self.G = sp.csr_matrix((v, (r, c)), shape=(n, n))
        is_free = np.ones(n, bool)
        is_free[self.fixed] = False
        self.free = np.flatnonzero(is_free)
        self.t, self.b = topo.mtj_t, topo.mtj_b
        self.rp = np.asarray(self.cells.r_p_ohm, float).ravel()
        self.tmr0 = np.asarray(self.cells.tmr0, float).ravel()
        self.vh = np.asarray(self.cells.v_h_v, float).ravel()

    def _currents(self, x, s, v_gate_cells):
        """Device currents leaving each node (and Jacobian entries)."""
        v = x[self.t] - x[self.b]
        i_m, g_m = mtj_current(v, s, self.rp, self.tmr0, self.vh)
        f = np.zeros(self.n)
        np.add.at(f, self.t, i_m)
        np.add.at(f, self.b, -i_m)
        rows = [self.t, self.b, self.t, self.b]
        cols = [self.t, self.b, self.b, self.t]
        vals = [g_m, g_m, -g_m, -g_m]
        i_d = p_junction = None
        if self.one_t:
            d, so = self.topo.mos_d, self.topo.mos_s
            i_d, a, c = nmos_current(x[d], x[so], v_gate_cells, self.spec.transistor)
            j_d, gj_d = junction_current(x[d])
            j_s, gj_s = junction_current(x[so])
            np.add.at(f, d, i_d + j_d)
            np.add.at(f, so, j_s - i_d)
            rows += [d, d, so, so]
            cols += [d, so, d, so]
            vals += [a + gj_d, c, -a, gj_s - c]
            p_junction = float(np.dot(x[d], j_d) + np.dot(x[so], j_s))
        jac = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                            shape=(self.n, self.n))
        return f, jac, i_m, v, i_d, p_junction

    def solve(self, states, v_row, v_col, v_gate=None, x0=None, *, tol_v=1e-9,
              max_iter=60) -> Solution:
        """Node voltages for fixed line voltages; damped Newton from ``x0`` (or zero)."""
        R, C = self.spec.rows, self.spec.cols
        s = np.asarray(states, float).ravel()
        x = np.zeros(self.n) if x0 is None else x0.copy()
        x[self.fixed] = np.concatenate([v_row, v_col])
        vg = None
        if self.one_t:
            vg = np.repeat(np.asarray(v_gate, float), C)
        fr = self.free
        for it in range(1, max_iter + 1):
            f_dev, jac_dev, *_ = self._currents(x, s, vg)
            res = self.G @ x + f_dev
            jac = (self.G + jac_dev).tocsc()[fr][:, fr]
            dx = spla.spsolve(jac, -res[fr])
            step = np.abs(dx).max() if dx.size else 0.0
            if step > 0.2:                      # damp large steps (exponential junctions)
                dx *= 0.2 / step
            x[fr] += dx
            if step < tol_v:
                break
        else:
            raise FastSolveError(f"fast write solve: Newton did not converge in {max_iter} "
                                 f"iterations (last step {step:.3g} V > {tol_v:g} V)")
        f_dev, _, i_m, v, i_d, p_junction = self._currents(x, s, vg)
        res = self.G @ x + f_dev
        dv = x[self.lin_a] - np.where(self.lin_b < 0, 0.0, x[np.maximum(self.lin_b, 0)])
        p_lin = self.lin_g * dv * dv
        power = {
            "delivered": float(np.dot(x[self.fixed], res[self.fixed])),
            "array": float(np.dot(v, i_m)),
            "wires": float(p_lin[self.lin_group == "wires"].sum()),
            "periphery": float(p_lin[self.lin_group == "periphery"].sum()),
            "access": 0.0,
        }
        if self.one_t:
            d, so = self.topo.mos_d, self.topo.mos_s
            power["access"] = float(np.dot(x[d] - x[so], i_d)) + p_junction
        return Solution(x, i_m.reshape(R, C), v.reshape(R, C), power, it)
